"""``kakeya-evidence merge DIR... --output OUT``: shard or device runs as one evidence directory.

Each input is an evidence directory (its ``stages/*.json``, and its evidence.json
where there is one). The merged directory gets stage files of its own, then the
ordinary report is written from them, so ``kakeya-evidence report --output OUT``
can rebuild it. Counts add up across the inputs (as pytest counted each run);
every stage takes its worst status. When the inputs ran on different devices,
each row carries its device, and ``merge.device_differences`` lists the tests
whose outcome differs between devices (absent on a device counts as different).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kakeya_evidence.common.files import STAGES, read_stage, write_stage
from kakeya_evidence.common.schema import Outcome, StageStatus, TestRow
from kakeya_evidence.common.text import safe_data
from kakeya_evidence.errors import ParameterError
from kakeya_evidence.report.evidence import MERGE_STAGE, SUITE_STAGE, read_stages, suite_rows
from kakeya_evidence.report.writer import RUNNER_STAGE, Report, ReportConfig, write_report

__all__ = ["MergeInput", "device_differences", "merge_runs", "read_input"]

_SEVERITY = {
    StageStatus.OK: 0,
    StageStatus.SKIPPED: 1,
    StageStatus.FAILED: 2,
    StageStatus.TIMEOUT: 3,
    StageStatus.CRASHED: 4,
}
_RUN_STAGES = STAGES[:3]  # the report stage is the merge's own


@dataclass(frozen=True)
class MergeInput:
    """One evidence directory to merge."""

    label: str
    stages: dict[str, dict[str, Any]]
    evidence: dict[str, Any]
    rows: list[TestRow]
    device: str


def read_input(directory: Path, label: str) -> MergeInput:
    """Read one evidence directory.

    Raises:
        ParameterError: The directory holds no suite stage file.
    """
    stages = read_stages(directory)
    if not stages[SUITE_STAGE]:
        raise ParameterError(f"{directory} holds no stages/{SUITE_STAGE}.json to merge")
    evidence = safe_data(_read_json(directory / "evidence.json"))
    loaded = stages[SUITE_STAGE].get("model_load") or {}
    parameters = (read_stage(directory, RUNNER_STAGE) or {}).get("parameters") or {}
    device = str(
        (evidence.get("model") or {}).get("device")
        or loaded.get("device")
        or parameters.get("device")
        or "unknown"
    )
    rows = suite_rows(stages[SUITE_STAGE])
    return MergeInput(label, stages, evidence, rows, device)


def merge_runs(directories: list[Path], output: Path, config: ReportConfig) -> Report:
    """Merge evidence directories into output and write its report.

    Args:
        directories: The evidence directories (shards of one run, or one run per device).
        output: The merged evidence directory (must not be one of the inputs).
        config: Baseline, history, budget and gates for the merged report.

    Returns:
        The merged report.

    Raises:
        ParameterError: No directories, a missing one, or output among them.
    """
    if not directories:
        raise ParameterError("merge needs at least one evidence directory")
    resolved = [d.resolve() for d in directories]
    for directory in resolved:
        if not directory.is_dir():
            raise ParameterError(f"evidence directory {directory} does not exist")
    if output.resolve() in resolved:
        raise ParameterError(f"--output {output} must not be one of the merged directories")
    inputs = [read_input(d, _label(d, i, resolved)) for i, d in enumerate(resolved)]
    devices = list(dict.fromkeys(i.device for i in inputs))
    rows = [row for item in inputs for row in _tag_rows(item, len(inputs) > 1, len(devices) > 1)]
    _write_merged_stages(output, inputs, rows, devices)
    bench = next((d / "bench.json" for d in resolved if (d / "bench.json").is_file()), None)
    if bench is not None and not config.bench:
        shutil.copyfile(bench, output / "bench.json")
    first = read_stage(resolved[0], RUNNER_STAGE) or {}
    parameters = dict(first.get("parameters") or {}, merged_from=[str(d) for d in resolved])
    overrides = {name: _worst_stage(inputs, name) for name in _RUN_STAGES}
    overrides["results_report"] = {"status": "ok", "reason": "", "duration_s": 0.0}
    return write_report(output, config, parameters=parameters, stage_overrides=overrides)


def device_differences(rows: list[TestRow], devices: list[str]) -> list[dict[str, Any]]:
    """Tests whose outcome differs between devices; a device where the test is absent differs.

    Args:
        rows: Merged rows, each with its device.
        devices: Every device among the inputs.

    Returns:
        {nodeid, outcomes: {device: outcome or None}}, sorted by node id.
    """
    per_test: dict[str, dict[str, set[str]]] = {}
    for row in rows:
        per_test.setdefault(row.nodeid, {}).setdefault(row.device, set()).add(str(row.outcome))
    differences = []
    for nodeid, by_device in sorted(per_test.items()):
        outcomes = {d: ", ".join(sorted(by_device[d])) if d in by_device else None for d in devices}
        if len(set(outcomes.values())) > 1:
            differences.append({"nodeid": nodeid, "outcomes": outcomes})
    return differences


def _label(directory: Path, index: int, all_dirs: list[Path]) -> str:
    names = [d.name for d in all_dirs]
    return directory.name if names.count(directory.name) == 1 else f"{index + 1}:{directory.name}"


def _tag_rows(item: MergeInput, many: bool, by_device: bool) -> list[TestRow]:
    """Give each row its device (inputs differ in device) and its run's lane on the timeline."""
    if not many:
        return item.rows
    return [
        replace(
            row,
            device=item.device if by_device else row.device,
            worker=f"{item.label}:{row.worker}" if row.worker else item.label,
        )
        for row in item.rows
    ]


def _write_merged_stages(
    output: Path, inputs: list[MergeInput], rows: list[TestRow], devices: list[str]
) -> None:
    for name in (*STAGES, MERGE_STAGE, RUNNER_STAGE):
        (output / "stages" / f"{name}.json").unlink(missing_ok=True)
    for name in ("host_check", "cache_prewarm"):
        first = next((i.stages[name] for i in inputs if i.stages[name]), None)
        if first is not None:
            write_stage(output, name, first)
    write_stage(output, SUITE_STAGE, _merged_suite(inputs, rows, devices))
    write_stage(output, MERGE_STAGE, _merge_section(inputs, rows, devices))


def _merged_suite(
    inputs: list[MergeInput], rows: list[TestRow], devices: list[str]
) -> dict[str, Any]:
    suites = [i.stages[SUITE_STAGE] for i in inputs]
    counts: Counter[str] = Counter()
    for suite in suites:
        counts.update({k: int(v) for k, v in (suite.get("counts") or {}).items() if _is_int(v)})
    worst = _worst_stage(inputs, SUITE_STAGE)
    load = dict(next((s["model_load"] for s in suites if s.get("model_load")), None) or {})
    if len(devices) > 1 and load:
        load["device"] = ", ".join(devices)
    first = suites[0]
    return {
        **{k: first.get(k) for k in ("cwd", "rootdir", "command", "tests_commit")},
        "status": worst["status"],
        "reason": worst["reason"],
        "duration_s": max(float(s.get("duration_s") or 0.0) for s in suites),
        "pytest_wall_s": max(float(s.get("pytest_wall_s") or 0.0) for s in suites),
        "counts": {str(o): counts.get(str(o), 0) for o in Outcome},
        "tests": [row.to_dict() for row in rows],
        "leftover_processes": [p for s in suites for p in s.get("leftover_processes") or []],
        "workers": sum(int(s.get("workers") or 1) for s in suites),
        "shard": None,
        "runs": [run for s in suites for run in s.get("runs") or []],
        "model_load": load or None,
    }


def _merge_section(
    inputs: list[MergeInput], rows: list[TestRow], devices: list[str]
) -> dict[str, Any]:
    runs = [
        {
            "source": item.label,
            "device": item.device,
            "shard": item.stages[SUITE_STAGE].get("shard"),
            "verdict": item.evidence.get("verdict"),
            "tests": len(item.rows),
            "pytest_wall_s": item.stages[SUITE_STAGE].get("pytest_wall_s"),
            "commit": (item.evidence.get("provenance") or {}).get("commit"),
        }
        for item in inputs
    ]
    return {
        "runs": runs,
        "devices": devices,
        "device_differences": device_differences(rows, devices) if len(devices) > 1 else [],
        "warnings": _warnings(inputs, runs, rows, devices),
        "provenance": next((i.evidence["provenance"] for i in inputs if i.evidence), None),
    }


def _warnings(
    inputs: list[MergeInput], runs: list[dict[str, Any]], rows: list[TestRow], devices: list[str]
) -> list[str]:
    warnings = []
    commits = {run["commit"] for run in runs if run["commit"]}
    if len(commits) > 1:
        warnings.append(f"The merged runs come from {len(commits)} different commits.")
    seen = Counter((row.device, row.nodeid) for row in rows)
    repeated = sum(1 for count in seen.values() if count > 1)
    if repeated:
        where = "on the same device" if len(devices) > 1 else "in more than one run"
        warnings.append(f"{repeated} test(s) appear {where}; each run's result is kept.")
    if any(not i.evidence for i in inputs):
        warnings.append("Some directories hold no evidence.json; their stage files were used.")
    return warnings


def _worst_stage(inputs: list[MergeInput], name: str) -> dict[str, Any]:
    """The stage's worst status over the inputs, their longest duration, and every reason."""
    rows = [_stage_of(item, name) for item in inputs]
    worst = max(rows, key=lambda r: _SEVERITY.get(r["status"], len(_SEVERITY)))
    reasons = [
        f"{item.label}: {r['reason']}" for item, r in zip(inputs, rows, strict=True) if r["reason"]
    ]
    durations = [r["duration_s"] for r in rows if isinstance(r["duration_s"], int | float)]
    return {
        "status": worst["status"],
        "reason": "; ".join(reasons),
        "duration_s": max(durations) if durations else None,
    }


def _stage_of(item: MergeInput, name: str) -> dict[str, Any]:
    # evidence.json holds what the runner knew (a crashed kernel); the stage file is the fallback
    stage = next((s for s in item.evidence.get("stages") or [] if s.get("name") == name), None)
    data = stage or item.stages[name]
    return {
        "status": data.get("status") or StageStatus.SKIPPED,
        "reason": str(data.get("reason") or ("" if data else "stage did not run")),
        "duration_s": data.get("duration_s"),
    }


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
