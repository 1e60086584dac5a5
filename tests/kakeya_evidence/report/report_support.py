"""Synthetic evidence directories for the report tests (pytest puts this folder on sys.path).

The suite stage file follows the contract between the evidence branches, including
the fields today's suite does not write yet (exception, path, line, phases, start_s,
stop_s, worker, cwd, rootdir, command, ...), so the report is tested on both shapes.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

from kakeya_evidence.stages import write_stage

FIXTURES = Path(__file__).parents[1] / "fixtures"
PERF = json.loads((FIXTURES / "bench.json").read_text())
BASELINE_PERF = json.loads((FIXTURES / "bench_baseline.json").read_text())
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed", "flaky", "not_run")


def make_test(nodeid: str, outcome: str = "passed", **fields: Any) -> dict[str, Any]:
    """One TEST row as the suite stage writes it (the new fields included)."""
    failing = outcome in ("failed", "error")
    row = {
        "nodeid": nodeid,
        "outcome": outcome,
        "duration_s": 0.01,
        "message": "AssertionError: assert 1 == 2" if failing else "",
        "exception": "AssertionError" if failing else "",
        "traceback": "E   assert 1 == 2" if failing else "",
        "stdout": "",
        "stderr": "",
        "path": nodeid.split("::", 1)[0],
        "line": 3 if failing else None,
        "phases": [{"when": "call", "category": outcome, "message": ""}],
        "start_s": None,
        "stop_s": None,
        "worker": "",
        "rerun_outcomes": [],
    }
    row.update(fields)
    return row


def write_run(
    out: Path,
    tests: list[dict[str, Any]],
    *,
    suite: dict[str, Any] | None = None,
    status: str = "ok",
    host: dict[str, Any] | None = None,
    model_load: dict[str, Any] | None = None,
    perf: dict[str, Any] | None = None,
) -> Path:
    """Write host, cache and suite stage files (counts from the rows) into out."""
    out.mkdir(parents=True, exist_ok=True)
    write_stage(
        out,
        "host_check",
        {
            "status": "ok",
            "duration_s": 1.0,
            "host": host or {"os": "Linux", "memory_total_bytes": 17179869184, "mps": False},
        },
    )
    write_stage(
        out,
        "cache_prewarm",
        {"status": "ok", "duration_s": 0.5, "cache": {"id": "kakeya/tiny-qwen3", "revision": "r1"}},
    )
    counts = Counter(t["outcome"] for t in tests)
    stage = {
        "status": status,
        "reason": "",
        "duration_s": 12.0,
        "pytest_wall_s": 10.0,
        "counts": {o: counts.get(o, 0) for o in OUTCOMES},
        "tests": tests,
        "runs": [],
        "model_load": model_load,
    }
    stage.update(suite or {})
    write_stage(out, "integration_suite", stage)
    if perf is not None:
        (out / "bench.json").write_text(json.dumps(perf))
    return out


def networkx_like(total: int = 6600, modules: int = 265, seed: int = 7) -> list[dict[str, Any]]:
    """A suite shaped like networkx's: ~6,600 tests over ~265 modules, 5 % skipped, timed."""
    rng = random.Random(seed)
    names = [
        f"networkx/algorithms/{rng.choice(['flow', 'shortest_paths', 'community', 'isomorphism'])}"
        f"/tests/test_module_{index:03d}.py"
        for index in range(modules)
    ]
    tests, clock = [], 0.0
    for index in range(total):
        module = names[index % modules]
        duration = rng.expovariate(1 / 0.015)
        skipped = index % 19 == 0
        tests.append(
            make_test(
                f"{module}::TestAlgorithmFamily{index % 7}::test_case_{index}[param-{index % 5}]",
                "skipped" if skipped else "passed",
                duration_s=round(duration, 6),
                message="could not import 'scipy': No module named 'scipy'" if skipped else "",
                start_s=round(clock, 6),
                stop_s=round(clock + duration, 6),
                worker=f"gw{index % 4}",
            )
        )
        clock += duration / 4
    tests[-1] = make_test(tests[-1]["nodeid"], "xfailed", message="known issue #1234")
    return tests
