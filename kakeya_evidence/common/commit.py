"""Which commit a measurement belongs to: bench.json is stamped, and a run refuses another's.

A ``bench.json`` left in the output directory by an earlier run of another commit would
otherwise be compared with the baseline as if it measured this one.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["bench_commit_problem", "head_commit", "stamp_commit"]

_GIT_TIMEOUT_S = 10.0


def head_commit(cwd: Path | str | None = None) -> str | None:
    """HEAD of the git repository at cwd (the current directory), or None outside one."""
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def stamp_commit(bench: dict[str, Any]) -> dict[str, Any]:
    """The bench with the commit it measured (HEAD here) under ``commit``."""
    return {**bench, "commit": bench.get("commit") or head_commit()}


def bench_commit_problem(path: Path) -> str | None:
    """Why the bench at path must not be used for this commit, or None when it may.

    A bench that records no commit (written before benches were stamped) is accepted;
    one stamped with a commit other than HEAD is refused, naming both.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # unreadable: the report says so where it loads it
    commit = data.get("commit") if isinstance(data, dict) else None
    head = head_commit()
    if not commit or not head or commit == head:
        return None
    return (
        f"bench file {path} was measured at commit {str(commit)[:12]}, but this is commit "
        f"{head[:12]}: re-measure it (kakeya-evidence bench) or remove it"
    )
