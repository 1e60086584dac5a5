"""evidence.json (schema 1): build it from the stage files, decide the verdict, write it."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from kakeya_evidence.stages import STAGES, read_stage
from kakeya_evidence.stages.host import package_version

__all__ = [
    "SCHEMA",
    "SETUP_STAGES",
    "build_evidence",
    "collect_provenance",
    "decide_verdict",
    "load_json",
    "write_json",
]

SCHEMA = 1
SETUP_STAGES = ("host_check", "cache_prewarm")
EXIT_CODES = {"passed": 0, "failed": 1, "error": 2}
PACKAGES = (
    "kakeya",
    "torch",
    "transformers",
    "tokenizers",
    "huggingface_hub",
    "grpcio",
    "pytest",
    "papermill",
    "nbclient",
    "matplotlib",
    "jinja2",
)


def build_evidence(
    output_dir: Path | str,
    *,
    parameters: dict[str, Any] | None = None,
    stage_overrides: dict[str, dict[str, Any]] | None = None,
    perf: dict[str, Any] | None = None,
    total_wall_s: float | None = None,
) -> dict[str, Any]:
    """Assemble evidence from DIR/stages/*.json plus what the caller knows.

    Args:
        output_dir: The evidence directory.
        parameters: The run's parameters (for provenance and the model section).
        stage_overrides: Per-stage {status, duration_s, reason} known to the runner
            (a notebook that failed or whose kernel died); they win over stage files.
        perf: bench.json contents, when present.
        total_wall_s: The whole run's wall time, when known.

    Returns:
        The evidence dict (without the baseline section).
    """
    params = dict(parameters or {})
    files = {name: read_stage(output_dir, name) or {} for name in STAGES}
    stages = [_stage_row(name, files[name], (stage_overrides or {}).get(name)) for name in STAGES]
    suite = files["integration_suite"]
    counts = suite.get("counts") or {}
    verdict = decide_verdict(stages, counts)
    pytest_wall = float(suite.get("pytest_wall_s") or 0.0)
    cache = dict((files["cache_prewarm"].get("cache")) or {})
    loaded = suite.get("model_load") or {}
    if cache.get("load_s") is None and loaded.get("load_s") is not None:
        cache["load_s"] = loaded["load_s"]  # timed where the suite loaded the model
    host = files["host_check"].get("host") or {}
    return {
        "schema": SCHEMA,
        "verdict": verdict,
        "exit_code": EXIT_CODES[verdict],
        "infrastructure_failed": any(
            s["status"] != "ok" for s in stages if s["name"] in SETUP_STAGES
        ),
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "stages": stages,
        "counts": {k: int(counts.get(k, 0)) for k in _count_keys()},
        "tests": suite.get("tests") or [],
        "pytest_wall_s": round(pytest_wall, 3),
        "total_wall_s": round(total_wall_s, 3) if total_wall_s is not None else None,
        "orchestration_overhead_s": (
            round(total_wall_s - pytest_wall, 3) if total_wall_s is not None else None
        ),
        "suite_runs": suite.get("runs") or [],
        "host": host,
        "model": _model(params, cache, host),
        "cache": cache,
        "provenance": collect_provenance(params),
        "perf": perf,
        "baseline": None,
    }


def decide_verdict(stages: list[dict[str, Any]], counts: dict[str, int]) -> str:
    """passed, failed (tests failed) or error (a stage did not end ok)."""
    if any(stage["status"] != "ok" for stage in stages):
        return "error"
    if int(counts.get("failed", 0)) + int(counts.get("error", 0)) > 0:
        return "failed"
    return "passed"


def collect_provenance(parameters: dict[str, Any]) -> dict[str, Any]:
    """Commit, dirty flag, parameters, package versions and the CI run URL."""
    return {
        "commit": _git(["rev-parse", "HEAD"]),
        "dirty": _dirty(),
        "parameters": parameters,
        "packages": {name: package_version(name) for name in PACKAGES},
        "run_url": _run_url(),
    }


def write_json(path: Path | str, data: dict[str, Any]) -> Path:
    """Write JSON atomically."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, target)
    return target


def load_json(path: Path | str) -> dict[str, Any]:
    """Load a JSON object from path.

    Raises:
        ValueError: The file does not hold a JSON object.
        OSError: The file cannot be read.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return data


def _count_keys() -> tuple[str, ...]:
    return ("passed", "failed", "error", "skipped", "xfailed", "xpassed", "flaky")


def _stage_row(name: str, data: dict[str, Any], override: dict[str, Any] | None) -> dict[str, Any]:
    row = {
        "name": name,
        "status": data.get("status", "skipped"),
        "duration_s": data.get("duration_s"),
        "reason": data.get("reason") or ("" if data else "stage did not run"),
    }
    if override:
        row.update({k: v for k, v in override.items() if k in row and v is not None})
    return row


def _model(params: dict[str, Any], cache: dict[str, Any], host: dict[str, Any]) -> dict[str, Any]:
    device = params.get("device", "auto")
    if device == "auto" and host:
        device = "mps" if host.get("mps") else "cuda" if host.get("cuda") else "cpu"
    return {
        "id": params.get("model") or cache.get("id"),
        "revision": cache.get("revision"),
        "device": device,
        "dtype": params.get("dtype", "auto"),
    }


def _git(args: list[str]) -> str | None:
    try:
        proc = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _dirty() -> bool | None:
    status = _git(["status", "--porcelain", "--untracked-files=no"])
    return None if status is None else bool(status)


def _run_url() -> str | None:
    server, repo, run = (
        os.environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    )
    return f"{server}/{repo}/actions/runs/{run}" if server and repo and run else None
