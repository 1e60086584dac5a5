"""What decides whether a run can be repeated bit for bit, recorded in the provenance.

``collect_determinism`` gives one flat mapping (so the report shows it as rows and a
reproduction diffs it key by key): torch's deterministic flags and thread counts (read
by the host stage's torch probe, a fresh process like the suite's), the environment
variables that change them, the seeds the run depends on, and the lock the environment
was installed from (its file, sha256, whether it is fresh against pyproject.toml and which
installed versions differ from it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from kakeya_evidence.reproduce.locks import host_lock, input_digest, lock_sha256, recorded_digest

__all__ = ["DETERMINISM_ENV", "TORCH_FLAGS", "collect_determinism", "lock_pins"]

# Host-probe keys (kakeya_evidence/stages/host.py) that belong to determinism.
TORCH_FLAGS = (
    "torch_deterministic_algorithms",
    "torch_deterministic_warn_only",
    "cudnn_deterministic",
    "cudnn_benchmark",
    "torch_num_threads",
    "torch_num_interop_threads",
)
DETERMINISM_ENV = (
    "PYTHONHASHSEED",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "CUBLAS_WORKSPACE_CONFIG",
)
PROJECT_ROOT = Path(__file__).resolve().parents[2]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", re.MULTILINE)
_MAX_LISTED = 10


def collect_determinism(
    parameters: Mapping[str, Any], host: Mapping[str, Any], root: Path | None = None
) -> dict[str, Any]:
    """The determinism facts of this run, one flat mapping.

    Args:
        parameters: The run's parameters (the model decides the build seed).
        host: The host stage's facts (torch's flags come from its probe).
        root: The project checkout whose lock the environment came from.

    Returns:
        JSON-serialisable facts; a fact that cannot be read is None.
    """
    facts: dict[str, Any] = {key: host.get(key) for key in TORCH_FLAGS}
    facts.update({f"env {name}": os.environ.get(name) for name in DETERMINISM_ENV})
    facts["seed model build"] = _model_seed(str(parameters.get("model") or ""))
    facts.update(_lock_facts(root or PROJECT_ROOT))
    return facts


def lock_pins(text: str) -> dict[str, str]:
    """name -> version of every pin of a requirements file (names normalised)."""
    return {_normal(name): version for name, version in _PIN.findall(text)}


def _model_seed(model: str) -> int | None:
    try:
        from inference_engine.models.presets import find_preset
    except ImportError:
        return None
    preset = find_preset(model)
    return preset.seed if preset else None


def _lock_facts(root: Path) -> dict[str, Any]:
    target = host_lock()
    path = root / target.path if target else None
    if target is None or path is None or not path.is_file():
        return {"lock file": None, "lock sha256": None, "lock fresh": None, "lock differs": None}
    text = path.read_text(encoding="utf-8")
    fresh = recorded_digest(text) == input_digest(root / "pyproject.toml", target)
    return {
        "lock file": target.path,
        "lock sha256": lock_sha256(path),
        "lock fresh": fresh,
        "lock differs": _installed_differences(lock_pins(text)),
    }


def _installed_differences(pins: Mapping[str, str]) -> list[str]:
    """Locked packages installed at another version (or missing), the first few."""
    found = []
    for name, version in sorted(pins.items()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            found.append(f"{name} {installed or 'missing'} (lock {version})")
    if len(found) > _MAX_LISTED:
        found = [*found[:_MAX_LISTED], f"... {len(found) - _MAX_LISTED} more"]
    return found


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
