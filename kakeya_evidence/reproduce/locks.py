"""The locked environments: ``locks/<platform>.txt``, compiled from pyproject.toml by uv.

One lock per platform, pip requirements format with a hash on every line, so
``pip install --require-hashes -r locks/linux-cpu.txt`` installs exactly the
recorded files:

- ``linux-cpu``: Linux x86_64, CPython 3.11, torch's CPU build (``torch==2.13.0+cpu``,
  the wheel in /opt/wheels here, the same file as download.pytorch.org/whl/cpu's);
- ``macos-arm64``: macOS on Apple Silicon, CPython 3.12 (the runner's Homebrew Python),
  PyPI's torch wheel (the MPS build).

Each lock's second comment line records the sha256 of the pyproject.toml tables it was
compiled from (``requires-python``, ``dependencies``, ``optional-dependencies``) and of the
compile options, so a lock that no longer matches pyproject.toml is found without a
network (:func:`stale_locks`, tests/kakeya_evidence/reproduce/test_locks.py).
``make lock`` (``python -m kakeya_evidence.reproduce.locks``) recompiles both.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "LOCKS",
    "LockTarget",
    "host_lock",
    "input_digest",
    "lock_sha256",
    "recorded_digest",
    "stale_locks",
    "write_lock",
]

INPUT_MARK = "# kakeya-lock-input: sha256="
EXTRAS = ("test",)  # test pulls notebook, evidence and runtime in: everything make test needs
LOCAL_WHEELS = "/opt/wheels"  # where this project's Linux boxes keep torch's CPU wheel


@dataclass(frozen=True)
class LockTarget:
    """One platform's lock: its file name and the uv options that resolve for it."""

    name: str
    python_platform: str
    python_version: str
    find_links: tuple[str, ...] = ()
    macos_target: str = ""  # the oldest macOS the wheels may need (torch's arm64 wheels: 14)

    @property
    def path(self) -> str:
        return f"locks/{self.name}.txt"

    def uv_options(self) -> list[str]:
        options = [
            f"--python-platform={self.python_platform}",
            f"--python-version={self.python_version}",
        ]
        for link in self.find_links:
            options += [f"--find-links={link}", "--emit-find-links"]
        return options


LOCKS = {
    "linux-cpu": LockTarget("linux-cpu", "x86_64-manylinux_2_28", "3.11", (LOCAL_WHEELS,)),
    "macos-arm64": LockTarget("macos-arm64", "aarch64-apple-darwin", "3.12", (), "14.0"),
}
CONSTRAINTS = "locks/constraints.txt"  # lock-time pins (one torch release on every platform)


def host_lock() -> LockTarget | None:
    """The lock for this machine's platform (None where the project keeps none)."""
    machine = platform.machine().lower()
    if sys.platform.startswith("linux") and machine in ("x86_64", "amd64"):
        return LOCKS["linux-cpu"]
    if sys.platform == "darwin" and machine in ("arm64", "aarch64"):
        return LOCKS["macos-arm64"]
    return None


def input_digest(pyproject: Path | str, target: LockTarget) -> str:
    """sha256 of what a lock is compiled from: pyproject's dependency tables and uv options."""
    project: dict[str, Any] = tomllib.loads(Path(pyproject).read_text(encoding="utf-8"))["project"]
    inputs = {
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
        "extras": list(EXTRAS),
        "options": target.uv_options(),
        "macos_target": target.macos_target,
        "constraints": _read(Path(pyproject).parent / CONSTRAINTS),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def recorded_digest(lock_text: str) -> str | None:
    """The input digest a lock file records (None when it records none)."""
    match = re.search(rf"^{re.escape(INPUT_MARK)}([0-9a-f]{{64}})", lock_text, re.MULTILINE)
    return match.group(1) if match else None


def lock_sha256(path: Path | str) -> str | None:
    """sha256 of a lock file's bytes (the runner's venv key), None when it is missing."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def stale_locks(repo: Path | str) -> list[str]:
    """Name every lock that is missing or was compiled from another pyproject.toml."""
    repo = Path(repo)
    problems = []
    for target in LOCKS.values():
        lock = repo / target.path
        if not lock.is_file():
            problems.append(f"{target.path} is missing: run `make lock`")
            continue
        want = input_digest(repo / "pyproject.toml", target)
        if recorded_digest(lock.read_text(encoding="utf-8")) != want:
            problems.append(f"{target.path} is stale against pyproject.toml: run `make lock`")
    return problems


def write_lock(repo: Path | str, target: LockTarget, upgrade: bool = False) -> Path:
    """Compile one lock with uv (from the index) and record its input digest.

    Raises:
        subprocess.CalledProcessError: uv could not resolve the dependencies.
    """
    repo = Path(repo)
    extras = [f"--extra={extra}" for extra in EXTRAS]
    command = [sys.executable, "-m", "uv", "pip", "compile", "pyproject.toml", *extras]
    command += [*target.uv_options(), "--generate-hashes", "--quiet"]
    command += [f"--constraints={CONSTRAINTS}", "--custom-compile-command=make lock"]
    # uv keeps the pins of an existing output file that still fit, unless told to upgrade
    command += [f"--output-file={target.path}", *(["--upgrade"] if upgrade else [])]
    env = {
        **os.environ,
        **({"MACOSX_DEPLOYMENT_TARGET": target.macos_target} if target.macos_target else {}),
    }
    (repo / target.path).parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(command, cwd=repo, env=env, capture_output=True, check=True, timeout=900)
    out = repo / target.path
    lines = [
        line
        for line in out.read_text(encoding="utf-8").splitlines(keepends=True)
        if not line.startswith(INPUT_MARK)
    ]
    digest = input_digest(repo / "pyproject.toml", target)
    header = f"{INPUT_MARK}{digest} (pyproject.toml dependency tables + uv options)\n"
    out.write_text("".join(lines[:2]) + header + "".join(lines[2:]), encoding="utf-8")
    return out


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def main(argv: Sequence[str] | None = None) -> int:
    """``make lock``: recompile every lock (``--check``: only report stale ones, exit 1)."""
    parser = argparse.ArgumentParser(prog="python -m kakeya_evidence.reproduce.locks")
    parser.add_argument("--repo", default=".", help="the repository root")
    parser.add_argument("--check", action="store_true", help="only name stale locks")
    parser.add_argument("--upgrade", action="store_true", help="take the newest versions")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale_locks(args.repo)
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    for target in LOCKS.values():
        print(f"wrote {write_lock(args.repo, target, upgrade=args.upgrade)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
