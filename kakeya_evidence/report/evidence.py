"""evidence.json (schema 1): build it from the stage files, decide the verdict, write it.

evidence.json holds every test as a slim row (node id, outcome, message, exception,
path, line, duration, timing); the long outputs stay in report.html and in
``stages/integration_suite.json``, so no output is stored twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kakeya_evidence.common.files import STAGES, package_version, read_stage
from kakeya_evidence.common.schema import (
    EXIT_CODES,
    FAILING,
    Outcome,
    StageRow,
    StageStatus,
    TestRow,
    Verdict,
)
from kakeya_evidence.common.text import safe_data, write_text_file

__all__ = [
    "MERGE_STAGE",
    "SCHEMA",
    "SETUP_STAGES",
    "SUITE_FIELDS",
    "SUITE_STAGE",
    "build_evidence",
    "collect_provenance",
    "decide_verdict",
    "load_json",
    "read_stages",
    "set_verdict",
    "suite_rows",
    "write_json",
]

SCHEMA = 1
SETUP_STAGES = ("host_check", "cache_prewarm")
SUITE_STAGE = "integration_suite"
# Written by `kakeya-evidence merge` into the merged directory.
MERGE_STAGE = "merge"
# Where and how pytest ran, copied from the suite stage (absent in older stage files).
SUITE_FIELDS = (
    "cwd",
    "rootdir",
    "command",
    "tests_commit",
    "leftover_processes",
    "workers",
    "shard",
)
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
    "nbconvert",
    "matplotlib",
    "jinja2",
)


def read_stages(output_dir: Path | str) -> dict[str, dict[str, Any]]:
    """Every stage file in DIR/stages (missing ones as {}), with every string made safe."""
    names = (*STAGES, MERGE_STAGE)
    return {name: safe_data(read_stage(output_dir, name) or {}) for name in names}


def suite_rows(suite: dict[str, Any]) -> list[TestRow]:
    """The suite stage's tests as typed rows (entries that are not objects are skipped)."""
    return [TestRow.from_dict(t) for t in suite.get("tests") or [] if isinstance(t, dict)]


def build_evidence(
    output_dir: Path | str,
    *,
    parameters: dict[str, Any] | None = None,
    stage_overrides: dict[str, dict[str, Any]] | None = None,
    perf: dict[str, Any] | None = None,
    total_wall_s: float | None = None,
    stages: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Assemble evidence from DIR/stages/*.json plus what the caller knows.

    Args:
        output_dir: The evidence directory.
        parameters: The run's parameters (for provenance and the model section).
        stage_overrides: Per-stage {status, duration_s, reason} known to the runner
            (a notebook that failed or whose kernel died); they win over stage files.
        perf: bench.json contents, when present.
        total_wall_s: The whole run's wall time, when known.
        stages: The stage files, when the caller read them already (read_stages).

    Returns:
        The evidence dict (baseline None, no gates yet: see set_verdict).
    """
    params = safe_data(dict(parameters or {}))
    perf = safe_data(perf) if perf is not None else None
    files = stages if stages is not None else read_stages(output_dir)
    rows = [_stage_row(n, files[n], (stage_overrides or {}).get(n)) for n in STAGES]
    suite = files[SUITE_STAGE]
    counts: dict[str, Any] = suite["counts"] if isinstance(suite.get("counts"), dict) else {}
    pytest_wall = float(suite.get("pytest_wall_s") or 0.0)
    cache = dict((files["cache_prewarm"].get("cache")) or {})
    loaded = suite.get("model_load") or {}
    if cache.get("load_s") is None and loaded.get("load_s") is not None:
        cache["load_s"] = loaded["load_s"]  # timed where the suite loaded the model
    host = files["host_check"].get("host") or {}
    merge = files[MERGE_STAGE]
    evidence = {
        "schema": SCHEMA,
        "verdict": Verdict.ERROR,
        "exit_code": EXIT_CODES[Verdict.ERROR],
        "infrastructure_failed": any(
            r.status != StageStatus.OK for r in rows if r.name in SETUP_STAGES
        ),
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "stages": [r.to_dict() for r in rows],
        "counts": {str(k): _count(counts.get(k)) for k in Outcome},
        "tests": [r.to_dict(outputs=False) for r in suite_rows(suite)],
        "pytest_wall_s": round(pytest_wall, 3),
        "total_wall_s": round(total_wall_s, 3) if total_wall_s is not None else None,
        "orchestration_overhead_s": (
            round(total_wall_s - pytest_wall, 3) if total_wall_s is not None else None
        ),
        "suite_runs": suite.get("runs") or [],
        "suite": {name: suite.get(name) for name in SUITE_FIELDS},
        "host": host,
        "model": _model(params, cache, host, loaded),
        "cache": cache,
        "provenance": merge.get("provenance") or collect_provenance(params, host),
        "perf": perf,
        "baseline": None,
        "gates": [],
        "categories": [],
        "history": None,
    }
    if merge:
        evidence["merge"] = {k: v for k, v in merge.items() if k != "provenance"}
    return set_verdict(evidence)


def set_verdict(evidence: dict[str, Any]) -> dict[str, Any]:
    """Decide verdict and exit code from the stages, counts and gates; return the evidence."""
    verdict = decide_verdict(
        evidence.get("stages") or [], evidence.get("counts") or {}, evidence.get("gates") or []
    )
    evidence["verdict"], evidence["exit_code"] = str(verdict), EXIT_CODES[verdict]
    return evidence


def decide_verdict(
    stages: Sequence[dict[str, Any]],
    counts: dict[str, int],
    gates: Sequence[dict[str, Any]] = (),
) -> Verdict:
    """error (a stage did not end ok), failed (tests failed or a gate failed), else passed."""
    if any(stage["status"] != StageStatus.OK for stage in stages):
        return Verdict.ERROR
    if sum(_count(counts.get(k)) for k in FAILING) > 0:
        return Verdict.FAILED
    if any(not gate.get("passed") for gate in gates):
        return Verdict.FAILED
    return Verdict.PASSED


def collect_provenance(
    parameters: dict[str, Any], host: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Commit, dirty flag, parameters, package versions, determinism and the CI run URL."""
    from kakeya_evidence.reproduce.determinism import collect_determinism

    return {
        "commit": _git(["rev-parse", "HEAD"]),
        "dirty": _dirty(),
        "toplevel": _git(["rev-parse", "--show-toplevel"]),
        "parameters": parameters,
        "packages": {name: package_version(name) for name in PACKAGES},
        "determinism": collect_determinism(parameters, host or {}),
        "run_url": _run_url(),
        # publish refuses evidence of another run or attempt (a re-run's artifact).
        "run_id": _env_int("GITHUB_RUN_ID"),
        "run_attempt": _env_int("GITHUB_RUN_ATTEMPT"),
    }


def write_json(path: Path | str, data: dict[str, Any]) -> Path:
    """Write JSON atomically; no string content can make it fail.

    Raises:
        OSError: The file system refused the write.
    """
    return write_text_file(path, json.dumps(data, indent=1, default=str))


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


def _count(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _stage_row(name: str, data: dict[str, Any], override: dict[str, Any] | None) -> StageRow:
    row = {
        "name": name,
        "status": data.get("status", StageStatus.SKIPPED),
        "duration_s": data.get("duration_s"),
        "reason": data.get("reason") or ("" if data else "stage did not run"),
    }
    if override:
        row.update({k: v for k, v in override.items() if k in row and v is not None})
    return StageRow.from_dict(safe_data(row))


def _model(
    params: dict[str, Any], cache: dict[str, Any], host: dict[str, Any], loaded: dict[str, Any]
) -> dict[str, Any]:
    """Requested and resolved device and dtype: resolved is what the suite's loader used."""
    device_requested = str(params.get("device") or "auto")
    dtype_requested = str(params.get("dtype") or "auto")
    device = loaded.get("device")
    if not device and device_requested != "auto":
        device = device_requested
    elif not device and host:
        device = "mps" if host.get("mps") else "cuda" if host.get("cuda") else "cpu"
    dtype = loaded.get("dtype") or (None if dtype_requested == "auto" else dtype_requested)
    return {
        "id": params.get("model") or cache.get("id"),
        "revision": cache.get("revision"),
        "device_requested": device_requested,
        "device": device,
        "dtype_requested": dtype_requested,
        "dtype": dtype,
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


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() else None


def _run_url() -> str | None:
    server, repo, run = (
        os.environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    )
    return f"{server}/{repo}/actions/runs/{run}" if server and repo and run else None
