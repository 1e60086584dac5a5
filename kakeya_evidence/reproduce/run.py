"""``kakeya-evidence reproduce EVIDENCE``: re-create a run from its evidence and compare.

The story, one call per step: load the evidence, refuse a dirty original (unless told),
check the recorded commit out in a scratch worktree, build its environment from the lock
recorded with it, prewarm the recorded model (the embedded presets are rebuilt and their
revision checked), re-run the bench when the original had perf figures, re-run the
notebooks with the recorded parameters and device, then write the reproduction report
(DIR/reproduction.json and DIR/reproduction.md). Exit 0 outcomes match, 1 they differ,
2 the reproduction could not run (the report says why).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from kakeya_evidence.reproduce.checkout import (
    dirty_refusal,
    find_repository,
    map_path,
    scratch_worktree,
)
from kakeya_evidence.reproduce.compare import MATCH, compare_runs, render_markdown
from kakeya_evidence.reproduce.environment import Environment, build_environment
from kakeya_evidence.reproduce.errors import CannotReproduce
from kakeya_evidence.reproduce.source import load_evidence

__all__ = ["ReproduceConfig", "register", "reproduce"]

REPORT_JSON = "reproduction.json"
REPORT_MD = "reproduction.md"
COULD_NOT_RUN = "could not run"
_STEP_TIMEOUT_S = 4 * 3600.0
# Run in the reproduction's interpreter, inside the worktree: only the fields this commit's
# RunConfig / BenchConfig knows are passed, so older and newer commits both take them.
_RUN = """
import json, sys
from dataclasses import fields
from kakeya_evidence.runner import RunConfig, run_pipeline
params = json.loads(sys.argv[1])
known = {f.name for f in fields(RunConfig)}
sys.exit(run_pipeline(RunConfig(**{k: v for k, v in params.items() if k in known})))
"""
_BENCH = """
import json, sys
from dataclasses import fields
from pathlib import Path
from kakeya_evidence.bench.run import BenchConfig, run_bench, write_bench
params = json.loads(sys.argv[1])
known = {f.name for f in fields(BenchConfig)}
params = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items() if k in known}
config = BenchConfig(**params)
Path(config.output).mkdir(parents=True, exist_ok=True)
write_bench(Path(config.output), run_bench(config))
"""
# Parameters that point at this machine's other files: a reproduction starts without them.
_CLEARED = {"baseline": "", "history": "", "bench": "", "quiet": True}


@dataclass(frozen=True)
class ReproduceConfig:
    """What to reproduce and how (built once at the CLI edge)."""

    evidence: str = field(metadata={"help": "evidence.json, a run directory or an artifact zip"})
    output: str = field(default="reproduction", metadata={"help": "directory for the report"})
    repo: str = field(default="", metadata={"help": "a clone holding the recorded commit"})
    allow_dirty: bool = field(
        default=False, metadata={"help": "reproduce the commit of a run made on a dirty tree"}
    )
    reuse_venv: bool = field(
        default=False, metadata={"help": "run in this interpreter instead of a venv from the lock"}
    )
    tests: str = field(default="", metadata={"help": "reproduce this test node id only"})
    bench: bool = field(
        default=True, metadata={"help": "re-run the bench when the original has perf figures"}
    )
    keep_worktree: bool = field(
        default=False, metadata={"help": "leave the scratch worktree in DIR for inspection"}
    )


def reproduce(config: ReproduceConfig) -> int:
    """Reproduce one evidence run; write DIR/reproduction.{json,md}; return 0, 1 or 2."""
    from kakeya_evidence.runner import check_output_dir

    out = check_output_dir(config.output)
    started = time.monotonic()
    run: dict[str, Any] = {"evidence": config.evidence}
    try:
        then = load_evidence(config.evidence)
        provenance = then["provenance"]
        run["commit"] = commit = str(provenance["commit"])
        refusal = dirty_refusal(provenance)
        if refusal and not config.allow_dirty:
            raise CannotReproduce(refusal)
        run["not reproduced"] = refusal
        candidates = [config.repo, str(provenance.get("toplevel") or ""), os.getcwd()]
        repo = find_repository(commit, candidates)
        with scratch_worktree(repo, commit, out / "worktree", config.keep_worktree) as tree:
            env = build_environment(
                tree, out / "venv", provenance.get("packages") or {}, config.reuse_venv
            )
            run.update(_environment_facts(env))
            run.update(_prewarm(env, tree, then))
            now = _rerun(env, tree, then, out / "run", config)
    except CannotReproduce as exc:
        run["wall_s"] = round(time.monotonic() - started, 1)
        return _write(out, {"result": COULD_NOT_RUN, "reason": exc.reason, "run": run}, 2)
    report = compare_runs(then, now, config.tests)
    run["wall_s"] = round(time.monotonic() - started, 1)
    report["run"] = run
    return _write(out, report, 0 if report["result"] == MATCH else 1)


def register(subparsers: Any) -> None:
    """Add ``reproduce`` to the ``kakeya-evidence`` command line (flags from the fields)."""
    parser = subparsers.add_parser(
        "reproduce", help="re-create a run from its evidence and compare the outcomes"
    )
    for item in fields(ReproduceConfig):
        help_text = item.metadata["help"]
        if item.name == "evidence":
            parser.add_argument("evidence", help=help_text)
        elif item.type in (bool, "bool"):
            action = argparse.BooleanOptionalAction if item.default else "store_true"
            flag = f"--{item.name.replace('_', '-')}"
            parser.add_argument(flag, action=action, default=item.default, help=help_text)
        else:
            flag = f"--{item.name.replace('_', '-')}"
            parser.add_argument(flag, default=item.default, help=help_text)
    parser.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    names = {item.name for item in fields(ReproduceConfig)}
    return reproduce(ReproduceConfig(**{k: v for k, v in vars(args).items() if k in names}))


def _environment_facts(env: Environment) -> dict[str, Any]:
    return {
        "environment": env.how,
        "lock": env.lock,
        "lock sha256": env.lock_sha256,
        "versions the index no longer has": list(env.missing_versions),
        "python": env.python,
    }


def _prewarm(env: Environment, tree: Path, then: dict[str, Any]) -> dict[str, Any]:
    """Build (embedded preset) or verify (hub id, offline) the recorded model."""
    model = (then.get("model") or {}).get("id") or then["provenance"]["parameters"].get("model")
    recorded = (then.get("model") or {}).get("revision")
    command = [env.python, "-m", "inference_engine.cli", "prewarm", "--model", str(model)]
    proc = _run(command, tree, env, "prewarm")
    match = re.search(r"revision=(\S+)", proc.stdout)
    revision = match.group(1) if match else None
    return {"model": model, "model revision then": recorded, "model revision prewarmed": revision}


def _rerun(
    env: Environment, tree: Path, then: dict[str, Any], out: Path, config: ReproduceConfig
) -> dict[str, Any]:
    """Re-run the pipeline in the worktree; the new evidence."""
    provenance = then["provenance"]
    params = {**(provenance.get("parameters") or {}), **_CLEARED, "output": str(out)}
    root = provenance.get("toplevel")
    for key in ("tests", "notebooks_dir"):
        params[key] = map_path(str(params.get(key) or ""), root, tree)
    if config.tests:
        params["tests"] = config.tests
    device = (then.get("model") or {}).get("device")
    if device and params.get("device") in (None, "", "auto"):
        params["device"] = device  # the same device the original resolved to
    perf_config = _bench_config(then.get("perf"))
    if config.bench and perf_config is not None:
        bench_out = out.parent / "bench"
        bench = {**perf_config, "output": str(bench_out), "quiet": True}
        _run([env.python, "-c", _BENCH, json.dumps(bench)], tree, env, "bench")
        params["bench"] = str(bench_out / "bench.json")
    proc = _run([env.python, "-c", _RUN, json.dumps(params)], tree, env, "the re-run", False)
    (out.parent / "rerun.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    try:
        now: dict[str, Any] = json.loads((out / "evidence.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CannotReproduce(f"the re-run wrote no readable evidence.json: {exc}") from exc
    return now


def _bench_config(perf: Any) -> dict[str, Any] | None:
    if not isinstance(perf, dict):
        return None
    meta: dict[str, Any] = perf["meta"] if isinstance(perf.get("meta"), dict) else perf
    config = meta.get("config")
    if not isinstance(config, dict):
        return None
    # the device the original resolved to ("auto" could pick another one here)
    return {
        **config,
        "model": meta.get("model") or config.get("model"),
        "device": meta.get("device") or config.get("device"),
    }


def _run(
    command: list[str], cwd: Path, env: Environment, what: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            command,
            cwd=cwd,
            env=env.env,
            capture_output=True,
            text=True,
            timeout=_STEP_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CannotReproduce(f"{what} could not run: {exc}") from exc
    if check and proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise CannotReproduce(f"{what} failed (exit {proc.returncode}): {tail}")
    return proc


def _write(out: Path, report: dict[str, Any], code: int) -> int:
    from kakeya_evidence.report.evidence import write_json

    report["exit_code"] = code
    write_json(out / REPORT_JSON, report)
    if report["result"] == COULD_NOT_RUN:
        text = f"# Reproduction: could not run\n\n{report['reason']}\n"
    else:
        text = render_markdown(report)
    (out / REPORT_MD).write_text(text, encoding="utf-8")
    verdict = report.get("verdict") or {}
    detail = (
        f"verdict {verdict.get('then')} then, {verdict.get('now')} now; "
        f"{len(report.get('tests_differ') or [])} test(s) differ"
        if verdict
        else report.get("reason", "")
    )
    print(f"reproduction: {report['result']} ({detail}); report: {out / REPORT_MD}")
    return code
