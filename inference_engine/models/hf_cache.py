"""The Hugging Face hub cache layout, as far as the project writes and reads it.

    <cache>/models--<owner>--<name>/
        refs/main                    the revision, no trailing newline
        snapshots/<revision>/...     the files

Snapshots of built presets hold plain files rather than symlinks into `blobs/`:
`huggingface_hub.scan_cache_dir()` and `from_pretrained` both accept that (the
hub itself falls back to plain copies where symlinks are unavailable). A built
preset's revision is a content hash, so it is the same wherever the bytes are.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from huggingface_hub import constants

REF_MAIN = "main"
_HASH_CHUNK_BYTES = 1 << 22


def resolve_cache_dir(cache_dir: Path | None) -> Path:
    """`cache_dir`, or the hub cache (`$HF_HUB_CACHE`, default `$HF_HOME/hub`) when None."""
    return Path(cache_dir) if cache_dir is not None else Path(constants.HF_HUB_CACHE)


def repo_dir(cache_dir: Path, model_id: str) -> Path:
    """The cache folder of a model repository: `models--owner--name`."""
    return cache_dir / ("models--" + model_id.replace("/", "--"))


def read_ref(repo: Path, ref: str = REF_MAIN) -> str | None:
    """The revision `refs/<ref>` points at, or None when there is no such ref."""
    try:
        return (repo / "refs" / ref).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def snapshot_files(snapshot: Path) -> list[Path]:
    """Every file of a snapshot (following links), sorted by relative POSIX path."""
    files = [path for path in snapshot.rglob("*") if path.is_file()]
    return sorted(files, key=lambda path: path.relative_to(snapshot).as_posix())


def snapshot_size(snapshot: Path) -> int:
    """Bytes of all files of a snapshot, links resolved to their blobs."""
    return sum(path.stat().st_size for path in snapshot_files(snapshot))


def content_revision(snapshot: Path) -> str:
    """40 hex digits: sha256 over each file's relative path and the sha256 of its bytes."""
    digest = hashlib.sha256()
    for path in snapshot_files(snapshot):
        relative = path.relative_to(snapshot).as_posix()
        digest.update(f"{relative}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()[:40]


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def make_build_dir(repo: Path) -> Path:
    """A fresh folder inside the repository folder (same file system, outside `snapshots/`)."""
    repo.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".kakeya-build-", dir=repo))


def install_snapshot(build_dir: Path, repo: Path) -> str:
    """Move a finished build into `snapshots/<revision>` and point `refs/main` at it.

    The move is one rename, so readers never see a half-written snapshot. When the
    same revision is already installed (a concurrent or earlier build), the new
    build is discarded after checking the installed bytes.

    Returns:
        The revision.

    Raises:
        OSError: the snapshot could not be moved into place.
    """
    revision = content_revision(build_dir)
    target = repo / "snapshots" / revision
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir() and content_revision(target) == revision:
        shutil.rmtree(build_dir)
    else:
        if target.exists():
            shutil.rmtree(target)
        os.rename(build_dir, target)
    write_ref(repo, revision)
    return revision


def write_ref(repo: Path, revision: str, ref: str = REF_MAIN) -> None:
    """Point `refs/<ref>` at `revision` atomically (no trailing newline, as the hub writes it)."""
    ref_path = repo / "refs" / ref
    ref_path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=".kakeya-ref-", dir=repo)
    with os.fdopen(handle, "w", encoding="utf-8") as temp:
        temp.write(revision)
    os.chmod(temp_name, 0o644)
    os.replace(temp_name, ref_path)
