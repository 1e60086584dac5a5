"""Stage files: each stage writes DIR/stages/<name>.json, so notebooks pass values through files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["STAGES", "read_stage", "stage_path", "write_stage"]

STAGES = ("host_check", "cache_prewarm", "integration_suite", "results_report")


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
