"""The ``kakeya-evidence`` subcommands the workflows run, standard library only.

``gate``, ``fetch-baseline``, ``fetch-history``, ``pending``, ``publish``,
``annotate``, ``step-summary``, ``sync-paths`` and ``runner-audit``. They are
registered into the project CLI and also run without the project installed
(``python3 scripts/ci_github.py ...``, or ``PYTHONPATH=. python3 -m
kakeya_evidence.github ...``) on GitHub-hosted runners.

The token comes from ``GITHUB_TOKEN`` and is never printed; ``pending`` and
``publish`` use the evidence App's installation token instead when
``KAKEYA_APP_ID`` and ``KAKEYA_APP_PRIVATE_KEY`` are set. The API base is
``--api-url``, else ``GITHUB_API_URL``, else https://api.github.com. Exit codes:
0 done, 1 a finding (``sync-paths --check``, ``runner-audit``), 2 bad input or a
failed API call (each command says which).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from kakeya_evidence.github.annotations import workflow_commands
from kakeya_evidence.github.app_auth import AppCredentials
from kakeya_evidence.github.baseline import (
    HISTORY_COUNT,
    fetch_baseline,
    fetch_history,
    write_history,
)
from kakeya_evidence.github.checks import CONCLUSIONS
from kakeya_evidence.github.client import (
    DEFAULT_API_URL,
    GitHubApiError,
    GitHubClient,
    check_repo,
    check_sha,
)
from kakeya_evidence.github.gate import MAIN_ARTIFACT, GateError, decide_gate
from kakeya_evidence.github.paths import sync_path_files
from kakeya_evidence.github.publish import (
    STEP_OUTCOMES,
    PublishConfig,
    pending,
    publish,
    write_step_summary,
)
from kakeya_evidence.github.render import link
from kakeya_evidence.github.runner_audit import MAC_LABEL, audit_runners

__all__ = ["main", "register"]

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_ID_ENV = "KAKEYA_APP_ID"
APP_KEY_ENV = "KAKEYA_APP_PRIVATE_KEY"
Handler = Callable[[argparse.Namespace, TextIO], int]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this package's subcommands to a CLI's subparsers."""
    _add_gate(subparsers)
    _add_fetch(subparsers)
    _add_publish(subparsers)
    a = subparsers.add_parser("annotate", help="print ::error lines for failures (10 shown)")
    a.add_argument("--evidence", required=True, type=Path, help="evidence.json")
    a.add_argument("--max", type=int, default=10, help="lines before the 'N more' note")
    a.set_defaults(func=_guard("annotate", run_annotate))
    s = subparsers.add_parser("step-summary", help="append summary.md to $GITHUB_STEP_SUMMARY")
    s.add_argument("--summary", required=True, type=Path, help="summary.md to append")
    s.add_argument("--report-url", type=_optional, default=None, help="link to the report")
    s.add_argument("--run-url", type=_optional, default=None, help="link to the workflow run")
    s.set_defaults(func=_guard("step-summary", run_step_summary))
    r = subparsers.add_parser(
        "runner-audit", help="can only main's integration.yaml reach the Mac?"
    )
    r.add_argument("--repo", required=True, type=_repo, help="OWNER/NAME")
    r.add_argument("--label", default=MAC_LABEL, help="the Mac runner's label")
    r.add_argument("--api-url", default=None, help="GitHub API base (env GITHUB_API_URL)")
    r.set_defaults(func=_guard("runner-audit", run_runner_audit))
    p = subparsers.add_parser(
        "sync-paths", help="write RUNTIME_PATH_GLOBS into the YAML files and CODEOWNERS"
    )
    p.add_argument("--check", action="store_true", help="only report a difference (exit 1)")
    p.add_argument("--root", type=Path, default=REPO_ROOT, help="repository root")
    p.set_defaults(func=_guard("sync-paths", run_sync_paths))


def _add_gate(subparsers: argparse._SubParsersAction) -> None:
    g = subparsers.add_parser("gate", help="decide whether the Mac M4 job runs for this event")
    g.add_argument("--repo", required=True, type=_repo, help="OWNER/NAME (github.repository)")
    g.add_argument("--event-name", required=True, help="github.event_name")
    g.add_argument("--event-path", required=True, type=Path, help="the event payload JSON")
    g.add_argument("--sha", default=os.environ.get("GITHUB_SHA", ""), help="github.sha")
    g.add_argument("--api-url", default=None, help="GitHub API base (env GITHUB_API_URL)")
    g.set_defaults(func=_guard("gate", run_gate))


def _add_fetch(subparsers: argparse._SubParsersAction) -> None:
    b = subparsers.add_parser("fetch-baseline", help="main's newest completed evidence.json")
    h = subparsers.add_parser("fetch-history", help="main's last N evidence.json files")
    for parser in (b, h):
        parser.add_argument("--repo", required=True, type=_repo, help="OWNER/NAME")
        parser.add_argument("--artifact", default=MAIN_ARTIFACT, help="artifact name on main")
        parser.add_argument("--branch", default="main", help="branch whose runs count")
        parser.add_argument("--api-url", default=None, help="GitHub API base (env GITHUB_API_URL)")
    b.add_argument("--output", required=True, type=Path, help="file to write evidence.json to")
    b.set_defaults(func=_guard("fetch-baseline", run_fetch_baseline))
    h.add_argument("--output", required=True, type=Path, help="directory for the files")
    h.add_argument("--count", type=_count, default=HISTORY_COUNT, help="how many (1..50)")
    h.set_defaults(func=_guard("fetch-history", run_fetch_history))


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repo", required=True, type=_repo, help="OWNER/NAME")
    p.add_argument("--sha", required=True, type=_sha, help="full SHA of the tested commit")
    p.add_argument("--pr", type=_pr, default=None, help="pull request to comment on")
    p.add_argument("--run-url", type=_optional, default=None, help="link to the workflow run")
    p.add_argument("--run-id", type=_positive, default=None, help="github.run_id")
    p.add_argument("--run-attempt", type=_positive, default=None, help="github.run_attempt")
    p.add_argument("--api-url", default=None, help="GitHub API base (env GITHUB_API_URL)")
    p.add_argument("--bot-login", type=_optional, default=None, help="the token's login")


def _add_publish(subparsers: argparse._SubParsersAction) -> None:
    w = subparsers.add_parser("pending", help="in_progress check and 'pending' comment")
    _add_run_args(w)
    w.set_defaults(func=_guard("pending", run_pending))
    p = subparsers.add_parser("publish", help="check run, PR comment and job summary for a run")
    p.add_argument("--evidence", required=True, type=Path, help="the evidence directory")
    _add_run_args(p)
    p.add_argument("--report-url", type=_optional, default=None, help="link to report.html")
    p.add_argument("--partial", default="", help="the run's pytest-args or shard (not all tests)")
    p.add_argument("--job-result", default="", help="the Mac job's result (needs.<id>.result)")
    p.add_argument("--steps", type=_steps, default=(), help="NAME=OUTCOME,... of the Mac job")
    p.add_argument("--not-run", type=_optional, default=None, help="the gate's reason")
    p.add_argument(
        "--not-run-conclusion", choices=CONCLUSIONS, default="neutral", help="check if not run"
    )
    p.set_defaults(func=_guard("publish", run_publish))


# ------------------------------------------------------------------ handlers


def run_gate(args: argparse.Namespace, out: TextIO) -> int:
    """Handle ``gate``: write the decision as step outputs."""
    event = json.loads(args.event_path.read_text(encoding="utf-8"))
    if not isinstance(event, Mapping):
        raise GateError(f"{args.event_path} does not hold a JSON object")
    decision = decide_gate(args.event_name, event, args.repo, _client(args), args.sha)
    _write_outputs(decision.outputs(), out)
    return 0


def run_fetch_baseline(args: argparse.Namespace, out: TextIO) -> int:
    """Handle ``fetch-baseline``: 0 when written or when none exists (it says so)."""
    found = fetch_baseline(_client(args), args.repo, args.artifact, args.branch)
    if found is None:
        print(f"fetch-baseline: no completed {args.artifact} from {args.branch}", file=sys.stderr)
        _write_outputs({"baseline": ""}, out)
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(found.raw)
    print(f"fetch-baseline: run {found.run_id}, commit {found.head_sha[:12]}", file=sys.stderr)
    _write_outputs({"baseline": str(args.output)}, out)
    return 0


def run_fetch_history(args: argparse.Namespace, out: TextIO) -> int:
    """Handle ``fetch-history``: write up to ``--count`` files into ``--output``."""
    items = fetch_history(_client(args), args.repo, args.count, args.artifact, args.branch)
    paths = write_history(args.output, items)
    print(f"fetch-history: {len(paths)} evidence files in {args.output}", file=sys.stderr)
    _write_outputs({"history": str(args.output), "history_count": str(len(paths))}, out)
    return 0


def run_publish(args: argparse.Namespace, out: TextIO) -> int:
    """Handle ``publish``: job summary, check run and PR comment."""
    config = PublishConfig(
        repo=args.repo,
        sha=args.sha,
        evidence_dir=args.evidence,
        pr=args.pr,
        run_url=args.run_url,
        report_url=args.report_url,
        job_result=args.job_result,
        steps=args.steps,
        not_run_reason=args.not_run,
        not_run_conclusion=args.not_run_conclusion,
        bot_login=args.bot_login,
        run_id=args.run_id,
        run_attempt=args.run_attempt,
        partial=args.partial.strip(),
        app=_app_credentials(),
    )
    summary = os.environ.get("GITHUB_STEP_SUMMARY") or None
    return publish(config, _client(args), out, summary)


def run_pending(args: argparse.Namespace, out: TextIO) -> int:
    """Handle ``pending``: the in_progress check and the "evidence pending" comment."""
    config = PublishConfig(
        repo=args.repo,
        sha=args.sha,
        evidence_dir=Path("."),
        pr=args.pr,
        run_url=args.run_url,
        bot_login=args.bot_login,
        run_id=args.run_id,
        run_attempt=args.run_attempt,
        app=_app_credentials(),
    )
    return pending(config, _client(args), out)


def run_runner_audit(args: argparse.Namespace, out: TextIO) -> int:
    """Handle ``runner-audit``: 1 naming each unsafe setting, 0 when the Mac is safe."""
    result = audit_runners(_client(args), args.repo, args.label)
    for line in result.lines():
        print(line, file=out)
    return result.exit_code


def run_annotate(args: argparse.Namespace, out: TextIO) -> int:
    """Handle ``annotate``: 0 after printing (even with failures)."""
    if args.max < 0:
        raise ValueError(f"--max must be >= 0, got {args.max}")
    evidence = json.loads(args.evidence.read_text(encoding="utf-8"))
    if not isinstance(evidence, Mapping):
        raise ValueError(f"{args.evidence} is not a JSON object")
    for line in workflow_commands(evidence, args.max):
        print(line, file=out)
    return 0


def run_step_summary(args: argparse.Namespace, out: TextIO) -> int:
    """Handle ``step-summary``: append to ``$GITHUB_STEP_SUMMARY``, or print."""
    text = args.summary.read_text(encoding="utf-8", errors="replace")
    links = [link("Report", args.report_url), link("Workflow run", args.run_url)]
    shown = [item for item, url in zip(links, (args.report_url, args.run_url), strict=True) if url]
    if shown:
        text = text.rstrip("\n") + "\n\n" + " · ".join(shown) + "\n"
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        write_step_summary(Path(target), text)
    else:
        out.write(text)
    return 0


def run_sync_paths(args: argparse.Namespace, out: TextIO) -> int:
    """Handle ``sync-paths``: 0 in sync (or rewritten), 1 when ``--check`` finds a difference."""
    changed = sync_path_files(args.root, check=args.check)
    for name in changed:
        print(f"{'differs' if args.check else 'rewrote'}: {name}", file=out)
    return 1 if changed and args.check else 0


# ------------------------------------------------------------------- helpers


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand without the rest of the project's CLI."""
    parser = argparse.ArgumentParser(prog="kakeya-evidence", description=__doc__.split("\n")[0])
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def _guard(name: str, handler: Handler) -> Callable[..., int]:
    """Turn the errors a command can meet into one line on stderr and exit code 2."""

    def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
        try:
            return handler(args, out or sys.stdout)
        except GitHubApiError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
        except (OSError, ValueError) as exc:  # GateError is a ValueError
            print(f"{name}: {exc}", file=sys.stderr)
        return 2

    return run


def _app_credentials() -> AppCredentials | None:
    app_id, key = os.environ.get(APP_ID_ENV, "").strip(), os.environ.get(APP_KEY_ENV, "")
    return AppCredentials(app_id, key) if app_id and key.strip() else None


def _client(args: argparse.Namespace) -> GitHubClient:
    api_url = args.api_url or os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL
    return GitHubClient(api_url, os.environ.get("GITHUB_TOKEN") or None)


def _write_outputs(values: Mapping[str, str], out: TextIO) -> None:
    """Append ``key=value`` lines to ``$GITHUB_OUTPUT`` (when set) and echo them."""
    lines = [f"{key}={' '.join(str(value).splitlines())}" for key, value in values.items()]
    target = os.environ.get("GITHUB_OUTPUT")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write("".join(line + "\n" for line in lines))
    for line in lines:
        print(line, file=out)


def _argtype(check: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = check.__name__.lstrip("_")
    return parse


def _optional_value(text: str) -> str | None:
    return text.strip() or None


def _pr_value(text: str) -> int | None:
    if not text.strip():
        return None
    if not text.strip().isdigit() or int(text) <= 0:
        raise ValueError(f"--pr must be a positive pull request number, got {text!r}")
    return int(text)


def _positive_value(text: str) -> int | None:
    if not text.strip():
        return None
    if not text.strip().isdigit() or int(text) <= 0:
        raise ValueError(f"must be a positive number, got {text!r}")
    return int(text)


def _count_value(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 50:
        raise ValueError(f"--count must be 1..50, got {text!r}")
    return int(text)


def _steps_value(text: str) -> tuple[tuple[str, str], ...]:
    steps = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, outcome = item.partition("=")
        if not name or outcome not in STEP_OUTCOMES:
            raise ValueError(f"--steps wants NAME=OUTCOME with {'|'.join(STEP_OUTCOMES[:4])}")
        steps.append((name, outcome))
    return tuple(steps)


_repo = _argtype(check_repo)
_sha = _argtype(check_sha)
_optional = _argtype(_optional_value)
_pr = _argtype(_pr_value)
_count = _argtype(_count_value)
_positive = _argtype(_positive_value)
_steps = _argtype(_steps_value)
