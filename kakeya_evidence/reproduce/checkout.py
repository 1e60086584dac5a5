"""The recorded commit, checked out in a scratch ``git worktree`` (removed afterwards)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kakeya_evidence.reproduce.errors import CannotReproduce

__all__ = ["dirty_refusal", "find_repository", "map_path", "scratch_worktree"]

_GIT_TIMEOUT_S = 120.0


def dirty_refusal(provenance: dict[str, Any]) -> str | None:
    """Why a dirty original cannot be reproduced (None when it was clean)."""
    if not provenance.get("dirty"):
        return None
    commit = provenance.get("commit")
    return (
        f"the original run had uncommitted changes to tracked files on top of {commit}; "
        "they were not recorded, so only the commit itself can be re-run and its outcomes "
        "may differ for that reason alone (pass --allow-dirty to reproduce the commit anyway)"
    )


def find_repository(commit: str, candidates: list[str]) -> Path:
    """The first candidate directory whose git repository holds ``commit``.

    Raises:
        CannotReproduce: None of them does.
    """
    for candidate in candidates:
        if not candidate or not Path(candidate).is_dir():
            continue
        top = _git(Path(candidate), "rev-parse", "--show-toplevel", check=False)
        if top and _git(Path(top), "cat-file", "-e", f"{commit}^{{commit}}", check=False) == "":
            return Path(top)
    raise CannotReproduce(
        f"commit {commit} is in none of {', '.join(c for c in candidates if c)}: "
        "fetch it, or pass --repo with a clone that has it"
    )


@contextlib.contextmanager
def scratch_worktree(repo: Path, commit: str, path: Path, keep: bool = False) -> Iterator[Path]:
    """Check ``commit`` out (detached) at ``path``; remove the worktree afterwards.

    Raises:
        CannotReproduce: git could not create the worktree.
    """
    if path.exists():
        raise CannotReproduce(f"{path} exists already: choose another --output")
    try:
        _git(repo, "worktree", "add", "--detach", str(path), commit)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", None) or exc
        raise CannotReproduce(f"git worktree add failed: {str(detail).strip()}") from exc
    try:
        yield path
    finally:
        if not keep:
            _git(repo, "worktree", "remove", "--force", str(path), check=False)


def map_path(value: str, original_root: str | None, worktree: Path) -> str:
    """A recorded path inside the original checkout, moved into the worktree (else as is)."""
    if not value or not original_root:
        return value
    head, sep, node = value.partition("::")
    try:
        relative = Path(head).relative_to(original_root)
    except ValueError:
        return value
    return str(worktree / relative) + sep + node


def _git(repo: Path, *args: str, check: bool = True) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(repo), *args],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=check,
        )
    except (OSError, subprocess.TimeoutExpired):
        if check:
            raise
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None
