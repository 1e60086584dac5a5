"""``kakeya-evidence``: run the whole evidence pipeline or one stage.

Exit codes: 0 all tests passed, 1 tests failed, 2 a stage could not run (or bad input).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kakeya_evidence.errors import EvidenceError

if TYPE_CHECKING:
    from kakeya_evidence.report import ReportConfig

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand (including other modules')."""
    from kakeya_evidence import github
    from kakeya_evidence.bench.run import register as register_bench

    parser = argparse.ArgumentParser(prog="kakeya-evidence", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run all four notebooks and write the report")
    _add_model_args(run)
    _add_suite_args(run)
    _add_report_args(run)
    run.add_argument("--no-prewarm", action="store_true", help="fail on a cache miss")
    run.add_argument(
        "--load-time",
        action="store_true",
        help="also time from_pretrained in the cache stage (the suite reports its own load)",
    )
    run.set_defaults(func=_run)
    host = sub.add_parser("host-check", help="collect host facts into DIR/stages; check needs")
    host.add_argument("--output", default="evidence", help="evidence directory")
    _add_host_requirement_args(host)
    host.set_defaults(func=_host_check)
    prewarm = sub.add_parser("prewarm", help="check (and fill) the model cache")
    prewarm.add_argument("--model", default="kakeya/tiny-qwen3")
    prewarm.add_argument("--output", default="evidence", help="evidence directory")
    prewarm.add_argument("--no-prewarm", action="store_true", help="only check")
    prewarm.set_defaults(func=_prewarm)
    suite = sub.add_parser("suite", help="run the integration suite in a subprocess")
    _add_model_args(suite)
    _add_suite_args(suite)
    suite.set_defaults(func=_suite)
    report = sub.add_parser("report", help="build report.html, evidence.json, summary.md")
    report.add_argument("--output", default="evidence", help="evidence directory")
    _add_report_args(report)
    report.set_defaults(func=_report)
    merge = sub.add_parser("merge", help="combine shard or device runs into one evidence dir")
    merge.add_argument("dirs", nargs="+", metavar="DIR", help="evidence directories to merge")
    merge.add_argument("--output", required=True, help="the merged evidence directory")
    _add_report_args(merge)
    merge.set_defaults(func=_merge)
    github.register(sub)
    register_bench(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run the chosen command; return the exit code (2, naming the
    extra, when the pipeline's dependencies are not installed)."""
    from inference_engine.extras import missing_extra_message  # stdlib only

    problem = missing_extra_message("kakeya-evidence", "evidence")
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    args = build_parser().parse_args(attach_values(argv, VALUE_OPTIONS))
    try:
        return int(args.func(args))
    except EvidenceError as exc:
        print(f"kakeya-evidence: error: {exc.reason}", file=sys.stderr)
        return exc.exit_code


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="kakeya/tiny-qwen3", help="model id")
    parser.add_argument("--device", default="auto", help="auto|cpu|cuda|mps")
    parser.add_argument("--dtype", default="auto", help="auto|float32|bfloat16|float16")
    parser.add_argument("--output", default="evidence", help="evidence directory")


def _add_host_requirement_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--require-device", choices=("mps", "cuda", "cpu"), default="", help="must be usable"
    )
    parser.add_argument("--min-memory-gb", type=float, default=0.0, help="total memory, GB")
    parser.add_argument("--min-free-disk-gb", type=float, default=0.0, help="free disk, GB")


def _add_suite_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tests", default="tests/integration", help="test path or node id")
    parser.add_argument("--pytest-args", default="", help="extra pytest arguments (one string)")
    # plain floats: run_pipeline validates them, so a bad value still gets its report
    parser.add_argument("--test-timeout", type=_number, default=300.0, help="per test, seconds")
    parser.add_argument("--stage-timeout", type=_number, default=3600.0, help="per stage, s")
    parser.add_argument("--rerun-failures", type=int, default=0, help="re-runs of failed tests")
    parser.add_argument(
        "--workers", type=int, default=0, help="run the suite on N pytest-xdist workers"
    )
    parser.add_argument("--shard", default="", help="run the K-th of N slices of the suite: K/N")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def _add_report_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline", default="", help="baseline evidence.json to compare with")
    parser.add_argument("--bench", default="", help="bench.json (default: DIR/bench.json)")
    parser.add_argument("--history", default="", help="directory of earlier evidence.json files")
    parser.add_argument(
        "--max-report-mb", type=_megabytes, default=10.0, help="size budget for report.html (MB)"
    )
    parser.add_argument(
        "--max-suite-s", type=_number, default=None, help="gate: the suite's longest duration (s)"
    )
    parser.add_argument(
        "--gate-new-failures",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="gate: no test fails that passed in the baseline",
    )
    parser.add_argument(
        "--gate-perf",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="gate: runtime decode tokens/s does not regress beyond its noise",
    )
    parser.add_argument(
        "--perf-noise-cap-pct",
        type=_number,
        default=50.0,
        help="gate: the most noise (%% of the baseline) the perf gate accepts",
    )


def _report_config(args: argparse.Namespace) -> ReportConfig:
    from kakeya_evidence.report import ReportConfig
    from kakeya_evidence.report.gates import GateConfig

    return ReportConfig(
        baseline=args.baseline,
        bench=args.bench,
        history=args.history,
        max_report_mb=args.max_report_mb,
        gates=GateConfig(
            new_failures=args.gate_new_failures,
            perf=args.gate_perf,
            perf_noise_cap_pct=args.perf_noise_cap_pct,
            max_suite_s=args.max_suite_s,
        ),
    )


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from exc


def _megabytes(text: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number of megabytes: {text!r}") from exc


def _run(args: argparse.Namespace) -> int:
    from kakeya_evidence.runner import RunConfig, run_pipeline

    config = RunConfig(
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        output=args.output,
        tests=args.tests,
        pytest_args=args.pytest_args,
        test_timeout_s=args.test_timeout,
        stage_timeout_s=args.stage_timeout,
        baseline=args.baseline,
        bench=args.bench,
        rerun_failures=args.rerun_failures,
        prewarm=not args.no_prewarm,
        measure_load=args.load_time,
        workers=args.workers,
        shard=args.shard,
        quiet=args.quiet,
        history=args.history,
        max_report_mb=args.max_report_mb,
        max_suite_s=args.max_suite_s,
        gate_new_failures=args.gate_new_failures,
        gate_perf=args.gate_perf,
        perf_noise_cap_pct=args.perf_noise_cap_pct,
    )
    code = run_pipeline(config)
    _print_outcome(Path(args.output), code)
    return code


def _host_check(args: argparse.Namespace) -> int:
    """Exit 2 when a requirement is unmet; the message names each one."""
    from kakeya_evidence.runner import check_output_dir
    from kakeya_evidence.stages.host import HostRequirements, run_host_check, unmet_requirements

    needs = HostRequirements(args.require_device, args.min_memory_gb, args.min_free_disk_gb)
    facts = run_host_check(check_output_dir(args.output), needs)
    for key, value in facts.items():
        print(f"{key}: {value}")
    unmet = unmet_requirements(facts, needs)
    for problem in unmet:
        print(f"kakeya-evidence: host requirement not met: {problem}", file=sys.stderr)
    return 2 if unmet else 0


def _prewarm(args: argparse.Namespace) -> int:
    from kakeya_evidence.runner import check_output_dir
    from kakeya_evidence.stages.cache import CacheConfig, run_cache_stage

    config = CacheConfig(model=args.model, prewarm=not args.no_prewarm)
    facts = run_cache_stage(check_output_dir(args.output), config)
    print(" ".join(f"{k}={v}" for k, v in facts.items()))
    return 0


def _suite(args: argparse.Namespace) -> int:
    from kakeya_evidence.progress import Progress
    from kakeya_evidence.runner import RunConfig, check_output_dir, validate_config
    from kakeya_evidence.stages.suite import SuiteConfig, run_suite_stage

    out = check_output_dir(args.output)
    options = {"workers": args.workers, "shard": args.shard}
    validate_config(RunConfig(device=args.device, dtype=args.dtype, tests=args.tests, **options))
    config = SuiteConfig(
        tests=args.tests,
        output_dir=str(out),
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        pytest_args=tuple(shlex.split(args.pytest_args)),
        test_timeout_s=args.test_timeout,
        stage_timeout_s=args.stage_timeout,
        rerun_failures=args.rerun_failures,
        **options,
    )
    with Progress(enabled=not args.quiet).suite(out / "pytest"):
        outcome = run_suite_stage(config)
    print(", ".join(f"{k} {v}" for k, v in outcome.counts.items()))
    return 1 if outcome.counts["failed"] + outcome.counts["error"] else 0


def _report(args: argparse.Namespace) -> int:
    from kakeya_evidence.report import write_report
    from kakeya_evidence.runner import check_output_dir

    config = _report_config(args)
    if not (Path(args.output) / "stages").is_dir():
        print(f"kakeya-evidence: error: {no_evidence_message(args.output)}", file=sys.stderr)
        if not Path(args.output).is_dir():
            return 2  # nothing to render, and no folder to create by mistake
    report = write_report(check_output_dir(args.output), config)
    _print_outcome(Path(args.output), report.exit_code)
    return report.exit_code


def _merge(args: argparse.Namespace) -> int:
    from kakeya_evidence.report.merge import merge_runs
    from kakeya_evidence.runner import check_output_dir

    config = _report_config(args)
    report = merge_runs([Path(d) for d in args.dirs], check_output_dir(args.output), config)
    _print_outcome(Path(args.output), report.exit_code)
    return report.exit_code


# Options whose value may itself start with "-" (`--pytest-args "-x"`, as the docs write it).
VALUE_OPTIONS = ("--pytest-args",)


def attach_values(argv: Sequence[str] | None, options: Sequence[str]) -> list[str]:
    """``--opt VALUE`` as ``--opt=VALUE`` for options whose value may start with "-"
    (argparse would take such a value for an option of its own)."""
    words = list(sys.argv[1:] if argv is None else argv)
    out: list[str] = []
    index = 0
    while index < len(words):
        if words[index] in options and index + 1 < len(words):
            out.append(f"{words[index]}={words[index + 1]}")
            index += 2
            continue
        out.append(words[index])
        index += 1
    return out


def no_evidence_message(output: str) -> str:
    """Why `report --output DIR` has nothing to render."""
    where = Path(output).resolve()
    return f"no evidence in {where}: no stages/ folder there (run `kakeya-evidence run` first)"


def _print_outcome(out: Path, code: int) -> None:
    print(f"exit {code}; report: {out / 'report.html'}; evidence: {out / 'evidence.json'}")


if __name__ == "__main__":
    sys.exit(main())
