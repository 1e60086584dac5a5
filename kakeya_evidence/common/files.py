"""The evidence directory and its stage files: each stage writes DIR/stages/<name>.json, so
notebooks pass values through files."""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any

from kakeya_evidence.errors import OutputDirError

__all__ = [
    "STAGES",
    "check_output_dir",
    "package_version",
    "read_stage",
    "stage_path",
    "write_stage",
]

STAGES = ("host_check", "cache_prewarm", "integration_suite", "results_report")


def check_output_dir(output: str | Path) -> Path:
    """Create the output directory and prove it is writable.

    Raises:
        OutputDirError: It cannot be created or written.
    """
    path = Path(output).resolve()
    probe = path / ".write-probe"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        raise OutputDirError(f"output directory {path} is not writable: {exc}") from exc
    return path


def stage_path(output_dir: Path | str, name: str) -> Path:
    """Return DIR/stages/<name>.json."""
    return Path(output_dir) / "stages" / f"{name}.json"


def write_stage(output_dir: Path | str, name: str, data: dict[str, Any]) -> Path:
    """Write a stage file atomically (a reader never sees half a file).

    Args:
        output_dir: The evidence directory.
        name: The stage name.
        data: JSON-serialisable stage data; should hold status and reason.

    Returns:
        The path written.
    """
    path = stage_path(output_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_stage(output_dir: Path | str, name: str) -> dict[str, Any] | None:
    """Read a stage file; None when it is missing or unreadable."""
    path = stage_path(output_dir, name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def package_version(name: str) -> str | None:
    """Return an installed distribution's version, or None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
