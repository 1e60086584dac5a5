"""``kakeya-evidence``: run the whole evidence pipeline or one stage.

Every flag of ``run`` and of the stage commands is a field of a stage's config dataclass
(``kakeya_evidence.config``), generated with its default and help; abbreviations are
refused. Exit codes: 0 all tests passed, 1 tests failed, 2 a stage could not run (or bad
input).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from inference_engine.cli_args import ArgumentParser, add_config_args, config_from_args
from kakeya_evidence.common.files import check_output_dir
from kakeya_evidence.common.params import DEFAULT_OUTPUT_DIR
from kakeya_evidence.errors import EvidenceError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand (including other modules')."""
    from kakeya_evidence import github
    from kakeya_evidence.bench.run import register as register_bench
    from kakeya_evidence.config import RunConfig
    from kakeya_evidence.report import ReportConfig
    from kakeya_evidence.stages.cache import CacheConfig
    from kakeya_evidence.stages.host import HostRequirements
    from kakeya_evidence.stages.suite import SuiteConfig

    parser = ArgumentParser(prog="kakeya-evidence", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run all four notebooks and write the report")
    add_config_args(run, RunConfig)
    run.set_defaults(func=_run)
    host = sub.add_parser("host-check", help="collect host facts into DIR/stages; check needs")
    _add_output(host)
    add_config_args(host, HostRequirements)
    host.set_defaults(func=_host_check)
    prewarm = sub.add_parser("prewarm", help="check (and fill) the model cache")
    _add_output(prewarm)
    add_config_args(prewarm, CacheConfig)
    prewarm.set_defaults(func=_prewarm)
    suite = sub.add_parser("suite", help="run the integration suite in a subprocess")
    _add_output(suite)
    add_config_args(suite, SuiteConfig)
    suite.add_argument("--quiet", action="store_true", help="no progress lines")
    suite.set_defaults(func=_suite)
    report = sub.add_parser("report", help="build report.html, evidence.json, summary.md")
    _add_output(report)
    add_config_args(report, ReportConfig)
    report.set_defaults(func=_report)
    merge = sub.add_parser("merge", help="combine shard or device runs into one evidence dir")
    merge.add_argument("dirs", nargs="+", metavar="DIR", help="evidence directories to merge")
    merge.add_argument("--output", required=True, help="the merged evidence directory")
    add_config_args(merge, ReportConfig)
    merge.set_defaults(func=_merge)
    github.register(sub)
    register_bench(sub)
    from kakeya_evidence.reproduce.run import register as register_reproduce

    register_reproduce(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run the chosen command; return the exit code (2, naming the
    extra, when the pipeline's dependencies are not installed)."""
    from inference_engine.extras import missing_extra_message  # stdlib only

    problem = missing_extra_message("kakeya-evidence", "evidence")
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except EvidenceError as exc:
        print(f"kakeya-evidence: error: {exc.reason}", file=sys.stderr)
        return exc.exit_code


def _add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default=DEFAULT_OUTPUT_DIR, help="evidence directory")


def _run(args: argparse.Namespace) -> int:
    from kakeya_evidence.runner import run_with

    values = {k: v for k, v in vars(args).items() if k not in ("command", "func")}
    code = run_with(**values)
    _print_outcome(Path(args.output), code)
    return code


def _host_check(args: argparse.Namespace) -> int:
    """Exit 2 when a requirement is unmet; the message names each one."""
    from kakeya_evidence.stages.host import HostRequirements, run_host_check, unmet_requirements

    out = check_output_dir(args.output)
    needs = config_from_args(HostRequirements, args)
    facts = run_host_check(out, needs)
    for key, value in facts.items():
        print(f"{key}: {value}")
    unmet = unmet_requirements(facts, needs)
    for problem in unmet:
        print(f"kakeya-evidence: host requirement not met: {problem}", file=sys.stderr)
    return 2 if unmet else 0


def _prewarm(args: argparse.Namespace) -> int:
    from kakeya_evidence.stages.cache import CacheConfig, run_cache_stage

    out = check_output_dir(args.output)
    facts = run_cache_stage(out, config_from_args(CacheConfig, args))
    print(" ".join(f"{k}={v}" for k, v in facts.items()))
    return 0


def _suite(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from kakeya_evidence.progress import Progress
    from kakeya_evidence.stages.suite import SuiteConfig, run_suite_stage

    out = check_output_dir(args.output)
    config = replace(config_from_args(SuiteConfig, args), output_dir=str(out))
    config.preflight()
    with Progress(enabled=not args.quiet).suite(out / "pytest"):
        outcome = run_suite_stage(config)
    print(", ".join(f"{k} {v}" for k, v in outcome.counts.items()))
    return 1 if outcome.counts["failed"] + outcome.counts["error"] else 0


def _report(args: argparse.Namespace) -> int:
    from kakeya_evidence.report import ReportConfig, write_report

    out = check_output_dir(args.output)
    report = write_report(out, config_from_args(ReportConfig, args))
    _print_outcome(Path(args.output), report.exit_code)
    return report.exit_code


def _merge(args: argparse.Namespace) -> int:
    from kakeya_evidence.report import ReportConfig
    from kakeya_evidence.report.merge import merge_runs

    out = check_output_dir(args.output)
    config = config_from_args(ReportConfig, args)
    report = merge_runs([Path(d) for d in args.dirs], out, config)
    _print_outcome(Path(args.output), report.exit_code)
    return report.exit_code


def _print_outcome(out: Path, code: int) -> None:
    print(f"exit {code}; report: {out / 'report.html'}; evidence: {out / 'evidence.json'}")


if __name__ == "__main__":
    sys.exit(main())
