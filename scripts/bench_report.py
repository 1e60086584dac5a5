"""Benchmark the report: stage time and size at scale, bounded size under huge output, overhead.

Each case writes a synthetic evidence directory (suite stage file as the suite writes it),
then renders the report in a fresh interpreter (imports included, as the pipeline pays
them) with this checkout and, given ``--baseline-tree``, with another checkout of the
project side by side (e.g. ``git archive main | tar -x -C /tmp/main``), so the numbers
come as ratios, not as absolute claims.

    .venv/bin/python scripts/bench_report.py                      # the three report cases
    .venv/bin/python scripts/bench_report.py --baseline-tree /tmp/main
    .venv/bin/python scripts/bench_report.py --pipeline           # + `run` on tests/integration

Cases:
  scale    5,000 tests, 500 failing (tracebacks and output): report time and report.html size
  output   500 tests printing 100 KB each (50 MB in all): report.html stays bounded
  networkx 6,600 tests over 265 modules, timed on 4 workers: report.html size
  pipeline ``kakeya-evidence run`` on the project's suite: total minus pytest (overhead)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed", "flaky", "not_run")
_RENDER = """
import json, sys, time
started = time.perf_counter()
from kakeya_evidence.report import write_report
report = write_report(sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline-tree", default="", help="another checkout to compare with")
    parser.add_argument("--pipeline", action="store_true", help="also time `run` on the suite")
    parser.add_argument("--only-pipeline", action="store_true", help="skip the report cases")
    parser.add_argument("--repeats", type=int, default=2, help="renders per case (best kept)")
    args = parser.parse_args()
    trees = {"this": str(REPO)}
    if args.baseline_tree:
        trees["baseline"] = str(Path(args.baseline_tree).resolve())
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        cases = () if args.only_pipeline else CASES
        for case, make in cases:
            directory = Path(tmp, case)
            write_suite(directory, make())
            results[case] = {
                name: render(tree, directory, args.repeats) for name, tree in trees.items()
            }
        if args.pipeline or args.only_pipeline:
            results["pipeline"] = pipelines(trees, Path(tmp), args.repeats)
    print(json.dumps(results, indent=1))
    return 0


def render(tree: str, directory: Path, repeats: int) -> dict[str, float]:
    """Best of `repeats` fresh-interpreter renders: seconds and the files' sizes."""
    env = dict(os.environ, PYTHONPATH=tree, MPLBACKEND="Agg")
    best = float("inf")
    for _ in range(repeats):
        proc = subprocess.run(
            [sys.executable, "-c", _RENDER, str(directory)],
            env=env,
            cwd=tree,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            return {"error": proc.stderr[-2000:]}
        best = min(best, json.loads(proc.stdout.strip().splitlines()[-1])["seconds"])
    return {
        "seconds": round(best, 2),
        "report_html_mb": round((directory / "report.html").stat().st_size / 1e6, 3),
        "evidence_json_mb": round((directory / "evidence.json").stat().st_size / 1e6, 3),
    }


def pipelines(trees: dict[str, str], tmp: Path, repeats: int) -> dict[str, Any]:
    """Alternate the trees run by run (the load on a shared box drifts); medians per tree."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(repeats):
        for name, tree in trees.items():
            runs[name].append(pipeline(tree, tmp))
    return {
        name: {
            "median_overhead_s": statistics.median(r["overhead_s"] for r in done),
            "median_pytest_wall_s": statistics.median(r["pytest_wall_s"] for r in done),
            "runs": done,
        }
        for name, done in runs.items()
    }


def pipeline(tree: str, tmp: Path) -> dict[str, float]:
    """`kakeya-evidence run` on tests/integration with the tiny model: overhead and report size."""
    out = Path(tempfile.mkdtemp(prefix=f"pipeline-{Path(tree).name}-", dir=tmp))
    env = dict(os.environ, PYTHONPATH=tree, HF_HUB_OFFLINE="1")
    started = time.perf_counter()
    cmd = [
        sys.executable,
        "-m",
        "kakeya_evidence.cli",
        "run",
        "--output",
        str(out),
        "--tests",
        str(Path(tree) / "tests" / "integration"),
    ]
    # cwd is the tree: `python -m` puts it first on sys.path, so the runner is that tree's too
    proc = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    evidence = json.loads((out / "evidence.json").read_text())
    return {
        "exit_code": proc.returncode,
        "wall_s": round(wall, 2),
        "pytest_wall_s": evidence["pytest_wall_s"],
        # the process's whole wall time minus pytest: the final report render included
        "overhead_s": round(wall - evidence["pytest_wall_s"], 2),
        "overhead_before_final_render_s": evidence["orchestration_overhead_s"],
        "report_html_mb": round((out / "report.html").stat().st_size / 1e6, 3),
    }


def write_suite(directory: Path, tests: list[dict]) -> None:
    """Stage files the way the suite and setup stages write them."""
    stages = directory / "stages"
    stages.mkdir(parents=True)
    counts = {o: sum(t["outcome"] == o for t in tests) for o in OUTCOMES}
    files = {
        "host_check": {"status": "ok", "duration_s": 1.0, "host": {"os": "Linux"}},
        "cache_prewarm": {"status": "ok", "duration_s": 0.5, "cache": {"id": "m"}},
        "integration_suite": {
            "status": "ok",
            "reason": "",
            "duration_s": 100.0,
            "pytest_wall_s": 99.0,
            "counts": counts,
            "tests": tests,
            "runs": [],
            "model_load": None,
        },
    }
    for name, data in files.items():
        (stages / f"{name}.json").write_text(json.dumps(data))


def row(nodeid: str, outcome: str = "passed", **fields) -> dict:
    data = {
        "nodeid": nodeid,
        "module": nodeid.split("::")[0],
        "outcome": outcome,
        "duration_s": 0.01,
        "message": "",
        "traceback": "",
        "stdout": "",
        "stderr": "",
        "rerun_outcomes": [],
    }
    data.update(fields)
    return data


def scale_suite() -> list[dict]:
    """5,000 tests in 100 modules; every tenth fails with a 2 KB traceback and some output."""
    rng = random.Random(1)
    tests = []
    for index in range(5000):
        nodeid = f"tests/pkg_{index % 100:03d}/test_feature.py::TestFeature::test_case_{index}"
        if index % 10 == 0:
            port = rng.randint(1024, 65535)
            tests.append(
                row(
                    nodeid,
                    "failed",
                    duration_s=rng.random(),
                    message=f"ConnectionError: port {port} refused",
                    traceback=("    frame line with some context\n" * 60)
                    + f"E   ConnectionError: port {port}",
                    stdout="log line\n" * 50,
                )
            )
        else:
            tests.append(row(nodeid, duration_s=rng.random() / 10))
    return tests


def loud_suite() -> list[dict]:
    """500 tests printing 100 KB each: 50 MB of output."""
    chunk = ("x" * 99 + "\n") * 1000
    return [
        row(
            f"tests/test_loud.py::test_{i}",
            "failed" if i % 5 == 0 else "passed",
            message="AssertionError: loud",
            stdout=chunk,
        )
        for i in range(500)
    ]


def networkx_suite() -> list[dict]:
    """~6,600 tests over 265 modules on 4 workers, 5 % skipped (networkx's shape)."""
    rng = random.Random(7)
    tests, clock = [], 0.0
    for index in range(6600):
        nodeid = (
            f"networkx/algorithms/sub/tests/test_module_{index % 265:03d}.py"
            f"::TestAlgorithmFamily{index % 7}::test_case_{index}[param-{index % 5}]"
        )
        duration = rng.expovariate(1 / 0.015)
        skipped = index % 19 == 0
        tests.append(
            row(
                nodeid,
                "skipped" if skipped else "passed",
                duration_s=duration,
                message="could not import 'scipy'" if skipped else "",
                start_s=clock,
                stop_s=clock + duration,
                worker=f"gw{index % 4}",
            )
        )
        clock += duration / 4
    return tests


CASES = (("scale", scale_suite), ("output", loud_suite), ("networkx", networkx_suite))

if __name__ == "__main__":
    sys.exit(main())
