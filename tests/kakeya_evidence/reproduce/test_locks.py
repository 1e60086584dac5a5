"""locks/*.txt: present, hash-checked, fresh against pyproject.toml, torch's CPU wheel on Linux."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from kakeya_evidence.reproduce.locks import (
    LOCKS,
    host_lock,
    input_digest,
    lock_sha256,
    recorded_digest,
    stale_locks,
)

REPO = Path(__file__).resolve().parents[3]
REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
# The CPU build the Linux lock installs (the file in /opt/wheels, and download.pytorch.org's).
TORCH_CPU_SHA256 = "6746dbcbeb526eb61330b76b41ff1b4eb848951103a892eeb080dfa2b264667b"


def pins(text: str) -> dict[str, list[str]]:
    """name==version -> its hashes, from a pip requirements file with continuation lines."""
    found: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        match = REQUIREMENT.match(line)
        if match:
            current = f"{match.group(1).lower()}=={match.group(2)}"
            found[current] = []
        elif current and "--hash=sha256:" in line:
            found[current].append(line.split("--hash=sha256:")[1].split()[0])
    return found


def test_the_committed_locks_are_fresh_against_pyproject():
    assert stale_locks(REPO) == []


@pytest.mark.parametrize("target", LOCKS.values(), ids=list(LOCKS))
def test_every_pin_of_a_lock_is_exact_and_hashed(target):
    locked = pins((REPO / target.path).read_text(encoding="utf-8"))
    assert len(locked) > 50
    assert [name for name, hashes in locked.items() if not hashes] == []
    names = {pin.split("==")[0] for pin in locked}
    assert {"torch", "transformers", "jupyterlab", "pytest", "setuptools"} <= names
    assert "kakeya" not in names  # the project itself is installed from the checkout


def test_the_linux_lock_takes_torchs_cpu_wheel_and_no_cuda():
    locked = pins((REPO / LOCKS["linux-cpu"].path).read_text(encoding="utf-8"))
    assert locked["torch==2.13.0+cpu"] == [TORCH_CPU_SHA256]
    assert not [pin for pin in locked if pin.startswith(("nvidia-", "triton", "cuda-"))]
    local = Path("/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")
    if local.is_file():  # this machine's copy is the very file the lock names
        assert lock_sha256(local) == TORCH_CPU_SHA256


def test_the_mac_lock_takes_the_same_torch_release_from_pypi():
    locked = pins((REPO / LOCKS["macos-arm64"].path).read_text(encoding="utf-8"))
    assert len(locked["torch==2.13.0"]) > 1  # PyPI's wheels, arm64 among them


def test_an_edit_to_a_dependency_table_makes_the_locks_stale(tmp_path):
    shutil.copytree(REPO / "locks", tmp_path / "locks")
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    assert stale_locks(tmp_path) == []
    edited = pyproject.replace('"psutil>=5.9"', '"psutil>=6"')
    assert edited != pyproject
    (tmp_path / "pyproject.toml").write_text(edited, encoding="utf-8")
    assert stale_locks(tmp_path) == [
        f"{t.path} is stale against pyproject.toml: run `make lock`" for t in LOCKS.values()
    ]
    # a comment or another table does not count: only what the lock is compiled from
    unrelated = pyproject.replace("[tool.ruff]", "# a note\n[tool.ruff]")
    (tmp_path / "pyproject.toml").write_text(unrelated, encoding="utf-8")
    assert stale_locks(tmp_path) == []


def test_the_recorded_digest_is_the_one_computed_from_pyproject():
    for target in LOCKS.values():
        text = (REPO / target.path).read_text(encoding="utf-8")
        assert recorded_digest(text) == input_digest(REPO / "pyproject.toml", target)


def test_this_host_has_a_lock():
    target = host_lock()
    if target is None:
        pytest.skip("the project keeps locks for Linux x86_64 and macOS arm64 only")
    assert (REPO / target.path).is_file()
