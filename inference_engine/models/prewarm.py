"""Put a model into the Hugging Face cache, or check that it is there.

Embedded presets are built deterministically and installed under a content-hash
revision; any other model id is fetched with `huggingface_hub.snapshot_download`.
`kakeya-runtime prewarm --model ID [--check]` calls `run_prewarm`.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import snapshot_download
from huggingface_hub.utils import HFValidationError, validate_repo_id

from inference_engine.errors import InvalidArgument, ModelNotCached, RuntimeFault
from inference_engine.models import hf_cache
from inference_engine.models.presets import Preset, find_preset

# Files a usable snapshot needs; weights may be sharded, so they are matched by suffix.
_REQUIRED_FILES = ("config.json",)
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
_DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.jinja", "*.model", "*.tiktoken"]


@dataclass(frozen=True)
class CachedModel:
    """One model revision present in the cache."""

    model_id: str
    revision: str
    path: Path
    size_bytes: int


def prewarm_model(model_id: str, cache_dir: Path | None = None) -> CachedModel:
    """Make sure `model_id` is in the cache: build a preset, or download a Hub model.

    A preset already installed from the same recipe, with bytes that still match
    its revision, is left alone (a fast no-op).

    Args:
        model_id: a preset id (`kakeya/...`) or a Hub repository id.
        cache_dir: the hub cache folder; None means `huggingface_hub.constants.HF_HUB_CACHE`.

    Raises:
        InvalidArgument: `model_id` is not a valid repository id.
        ModelNotCached: a Hub model could not be downloaded and is not cached.
        OSError: the cache folder is not writable.
    """
    validate_model_id(model_id)
    cache = hf_cache.resolve_cache_dir(cache_dir)
    preset = find_preset(model_id)
    if preset is None:
        return download_model(model_id, cache)
    installed = find_installed_preset(preset, cache)
    return installed if installed is not None else install_preset(preset, cache)


def check_model(model_id: str, cache_dir: Path | None = None) -> CachedModel:
    """Verify that `model_id` is in the cache without building or downloading anything.

    For presets the snapshot's bytes are also checked against its content revision.

    Raises:
        InvalidArgument: `model_id` is not a valid repository id.
        ModelNotCached: the model is missing or incomplete; the message names
            `kakeya-runtime prewarm --model ID`.
    """
    validate_model_id(model_id)
    repo = hf_cache.repo_dir(hf_cache.resolve_cache_dir(cache_dir), model_id)
    revision = hf_cache.read_ref(repo)
    if revision is None:
        raise ModelNotCached(model_id, f"no refs/main under {repo}")
    snapshot = repo / "snapshots" / revision
    problem = find_snapshot_problem(snapshot)
    if problem is None and find_preset(model_id) is not None:
        problem = find_content_problem(snapshot, revision)
    if problem is not None:
        raise ModelNotCached(model_id, problem)
    return CachedModel(model_id, revision, snapshot, hf_cache.snapshot_size(snapshot))


def run_prewarm(model_id: str, check_only: bool) -> int:
    """The `kakeya-runtime prewarm` command: one `ok ...` line on stdout, or the error on stderr.

    Returns:
        0 when the model is (now) in the cache, 1 otherwise.
    """
    try:
        cached = check_model(model_id) if check_only else prewarm_model(model_id)
    except (RuntimeFault, OSError, ValueError) as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(
        f"ok {cached.model_id} revision={cached.revision} path={cached.path} "
        f"size_bytes={cached.size_bytes}"
    )
    return 0


def validate_model_id(model_id: str) -> None:
    """Reject ids the hub would reject, before they become folder names.

    Raises:
        InvalidArgument: `model` is empty or not a valid repository id.
    """
    try:
        validate_repo_id(model_id)
    except HFValidationError as exc:
        raise InvalidArgument("model", f"invalid model id {model_id!r}: {exc}") from exc


def find_snapshot_problem(snapshot: Path) -> str | None:
    """Why a snapshot folder cannot serve a model, or None when it looks complete."""
    if not snapshot.is_dir():
        return f"snapshot folder {snapshot} is missing"
    names = {path.name for path in snapshot.iterdir()}
    missing = [name for name in _REQUIRED_FILES if name not in names]
    if not any(name.endswith(_WEIGHT_SUFFIXES) for name in names):
        missing.append("weights (*.safetensors)")
    if not names.intersection(_TOKENIZER_FILES):
        missing.append("tokenizer files")
    return f"snapshot {snapshot} lacks {', '.join(missing)}" if missing else None


def find_content_problem(snapshot: Path, revision: str) -> str | None:
    """For a built preset, whose revision is a content hash: do the bytes still match it?"""
    if hf_cache.content_revision(snapshot) == revision:
        return None
    return f"files under {snapshot} do not match revision {revision}"


def find_installed_preset(preset: Preset, cache: Path) -> CachedModel | None:
    """The installed snapshot of `preset` when it was built from today's recipe and is intact."""
    # Imported here so that `--check` and the loader never pay for the build machinery.
    from inference_engine.models.build import BUILD_RECORD, build_record

    try:
        cached = check_model(preset.model_id, cache)
    except ModelNotCached:
        return None
    try:
        record = json.loads((cached.path / BUILD_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return cached if record == build_record(preset) else None


def install_preset(preset: Preset, cache: Path) -> CachedModel:
    """Build `preset` into a temporary folder and move it into the cache in one rename."""
    from inference_engine.models.build import build_preset

    repo = hf_cache.repo_dir(cache, preset.model_id)
    build_dir = hf_cache.make_build_dir(repo)
    try:
        build_preset(preset, build_dir)
        hf_cache.install_snapshot(build_dir, repo)
    finally:
        # Gone already after a successful install; a failed build leaves nothing behind.
        shutil.rmtree(build_dir, ignore_errors=True)
    return check_model(preset.model_id, cache)


def download_model(model_id: str, cache: Path) -> CachedModel:
    """Fetch a Hub model's config, weights and tokenizer with `snapshot_download`.

    Raises:
        ModelNotCached: the download failed and no cached copy exists.
    """
    try:
        snapshot_download(model_id, cache_dir=cache, allow_patterns=_DOWNLOAD_PATTERNS)
    except Exception as exc:  # the hub raises many types (HTTP, offline, not found)
        try:
            return check_model(model_id, cache)
        except ModelNotCached:
            raise ModelNotCached(model_id, f"download failed: {exc}") from exc
    return check_model(model_id, cache)
