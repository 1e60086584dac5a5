"""The Python environment a reproduction runs in.

Built from the lock recorded with the commit (``locks/<platform>.txt`` in the worktree,
hash-checked, the same two commands as scripts/bootstrap.sh), or, for a commit older than
the locks, from the package versions its evidence recorded (each one the index no longer
has is listed, and left to pyproject's ranges). ``reuse`` takes this interpreter instead
(fast: the tests use it); the worktree then goes first on PYTHONPATH so its code is run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kakeya_evidence.reproduce.errors import CannotReproduce
from kakeya_evidence.reproduce.locks import host_lock, lock_sha256

__all__ = ["Environment", "build_environment", "unavailable_versions"]

_INSTALL_TIMEOUT_S = 3600.0
_INDEX_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Environment:
    """Where the reproduction's Python lives and how it was made.

    Attributes:
        python: The interpreter to run.
        how: "reused", "lock" or "recorded versions".
        lock: The lock file installed (relative to the worktree), or "".
        lock_sha256: Its sha256, or None.
        missing_versions: Recorded ``name==version`` pins the index no longer has.
        env: Environment variables for every process of the reproduction.
    """

    python: str
    how: str
    lock: str = ""
    lock_sha256: str | None = None
    missing_versions: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


def build_environment(
    worktree: Path, venv: Path, packages: dict[str, Any], reuse: bool = False
) -> Environment:
    """Make (or reuse) the environment for the checked-out commit.

    Args:
        worktree: The scratch checkout of the recorded commit.
        venv: Where to create the virtual environment.
        packages: The evidence's recorded package versions (name -> version or None).
        reuse: Run with this interpreter instead of building one.

    Raises:
        CannotReproduce: The virtual environment could not be built.
    """
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    target = host_lock()
    lock = worktree / target.path if target else None
    if reuse:
        path = os.pathsep.join(p for p in (str(worktree), env.get("PYTHONPATH", "")) if p)
        return Environment(sys.executable, "reused", env={**env, "PYTHONPATH": path})
    python = _create_venv(venv)
    if lock is not None and lock.is_file() and target is not None:
        _pip_install(python, "--require-hashes", "-r", str(lock))
        _pip_install(python, "--no-deps", "--no-build-isolation", "-e", str(worktree))
        return Environment(python, "lock", target.path, lock_sha256(lock), env=env)
    pins = {name: v for name, v in packages.items() if v and name != "kakeya"}
    missing = unavailable_versions(python, pins)
    constraints = venv / "recorded-versions.txt"
    kept = [f"{n}=={v}" for n, v in sorted(pins.items()) if f"{n}=={v}" not in missing]
    constraints.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
    _pip_install(python, "-c", str(constraints), "-e", f"{worktree}[test]")
    return Environment(python, "recorded versions", missing_versions=tuple(missing), env=env)


def unavailable_versions(python: str, pins: dict[str, str]) -> list[str]:
    """``name==version`` for each recorded version the package index does not offer."""
    missing = []
    for name, version in sorted(pins.items()):
        proc = subprocess.run(
            [python, "-m", "pip", "index", "versions", name],
            capture_output=True,
            text=True,
            timeout=_INDEX_TIMEOUT_S,
            check=False,
        )
        if version not in _offered(proc.stdout):
            missing.append(f"{name}=={version}")
    return missing


def _offered(pip_index_output: str) -> set[str]:
    match = re.search(r"Available versions:(.*)", pip_index_output)
    offered = {v.strip() for v in match.group(1).split(",")} if match else set()
    # a local build (2.13.0+cpu) also offers its public version
    return offered | {v.split("+", 1)[0] for v in offered}


def _create_venv(venv: Path) -> str:
    base = getattr(sys, "_base_executable", sys.executable)
    _run([base, "-m", "venv", str(venv)], "python -m venv")
    return str(venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))


def _pip_install(python: str, *args: str) -> None:
    _run([python, "-m", "pip", "install", "--quiet", *args], f"pip install {' '.join(args)}")


def _run(command: list[str], what: str) -> None:
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CannotReproduce(f"{what} could not run: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise CannotReproduce(f"{what} failed: {' | '.join(tail)}")
