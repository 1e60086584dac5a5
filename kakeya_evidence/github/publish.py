"""Publish one run's evidence: check run on the commit, PR comment, job summary.

``publish`` runs in a GitHub-hosted job on main's code after the Mac job, whatever
became of it. It never trusts a leftover: everything it says names the commit it
was given, and a run that left no evidence (venv, host, cache, cancel) is published
as "no evidence" for that commit, naming the step that failed when known, so an
earlier verdict cannot stand for a newer head.

The three outputs are attempted independently; the job summary is written first
and needs no API. Exit status 0 when all went out, 2 when any failed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from kakeya_evidence.github.annotations import Annotation, annotations_for_tests
from kakeya_evidence.github.checks import publish_check_run
from kakeya_evidence.github.client import GitHubApiError, GitHubClient
from kakeya_evidence.github.comment import build_comment, resolve_login, upsert_comment
from kakeya_evidence.github.render import (
    Links,
    decide_verdict,
    fit,
    render_evidence,
    render_no_evidence,
    render_not_run,
    utf8_len,
)

__all__ = [
    "MAX_STEP_SUMMARY_BYTES",
    "STEP_OUTCOMES",
    "Publication",
    "PublishConfig",
    "load_evidence",
    "prepare",
    "publish",
    "write_step_summary",
]

# GitHub caps one step's job summary at 1 MiB; stay a little below it.
MAX_STEP_SUMMARY_BYTES = 1024 * 1024 - 1024
MAX_EVIDENCE_BYTES = 64 * 1024 * 1024
STEP_OUTCOMES = ("success", "failure", "cancelled", "skipped", "")
_COMMENT_ITEMS = 20
_SUMMARY_ITEMS = 500


@dataclass(frozen=True)
class PublishConfig:
    """What to publish and where (built once from the command line)."""

    repo: str
    sha: str
    evidence_dir: Path
    pr: int | None = None
    run_url: str | None = None
    report_url: str | None = None
    job_result: str = ""
    steps: tuple[tuple[str, str], ...] = ()
    not_run_reason: str | None = None
    not_run_conclusion: str = "neutral"
    bot_login: str | None = None


@dataclass(frozen=True)
class Publication:
    """What the three outputs say."""

    conclusion: str
    title: str
    markdown: str
    summary: str
    annotations: list[Annotation] = field(default_factory=list)
    comment: bool = True


def load_evidence(evidence_dir: Path) -> tuple[dict[str, Any] | None, str]:
    """Read DIR/evidence.json; on failure return None and why, in words."""
    path = evidence_dir / "evidence.json"
    try:
        if path.stat().st_size > MAX_EVIDENCE_BYTES:
            return None, f"{path.name} is larger than {MAX_EVIDENCE_BYTES} bytes"
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, "the evidence artifact holds no evidence.json"
    except (OSError, ValueError) as exc:
        return None, f"evidence.json is unreadable: {type(exc).__name__}"
    if not isinstance(data, dict):
        return None, "evidence.json is not a JSON object"
    if data.get("exit_code") not in (0, 1, 2):
        return None, f"evidence.json has no valid exit_code ({data.get('exit_code')!r})"
    return data, ""


def prepare(config: PublishConfig) -> Publication:
    """Decide what to say, from the evidence directory and what the workflow knows."""
    links = Links(config.sha, config.run_url, config.report_url)
    if config.not_run_reason is not None:
        text = render_not_run(links, config.not_run_reason)
        title = f"not run: {config.not_run_reason}"
        return Publication(config.not_run_conclusion, title, text, text, comment=False)
    evidence, why = load_evidence(config.evidence_dir)
    commit = _commit(evidence)
    if evidence is not None and commit and commit != config.sha:
        evidence, why = None, f"evidence.json is for commit {commit[:12]}, not this one"
    if evidence is None:
        why = _failed_step(config) or why
        text = render_no_evidence(links, why)
        return Publication("failure", f"no evidence: {why}", text, text)
    verdict = decide_verdict(evidence)
    return Publication(
        verdict.conclusion,
        verdict.title,
        render_evidence(evidence, links, _COMMENT_ITEMS),
        render_evidence(evidence, links, _SUMMARY_ITEMS),
        annotations_for_tests(evidence),
    )


def publish(
    config: PublishConfig, client: GitHubClient, out: TextIO, summary_path: str | None
) -> int:
    """Write the job summary, the check run and the PR comment; 0 when all went out.

    Args:
        config: What to publish.
        client: The API client (with the token).
        out: Where progress lines go.
        summary_path: ``$GITHUB_STEP_SUMMARY``, or None to skip the job summary.
    """
    publication = prepare(config)
    failures = 0
    if summary_path:
        try:
            write_step_summary(Path(summary_path), publication.summary)
        except OSError as exc:  # the check run and the comment still go out
            failures += 1
            print(f"publish: job summary failed: {exc}", file=sys.stderr)
    if not client.has_token:
        print("publish: GITHUB_TOKEN is not set; nothing was sent", file=sys.stderr)
        return 2
    try:
        run = publish_check_run(
            client,
            config.repo,
            config.sha,
            conclusion=publication.conclusion,
            title=publication.title,
            summary=publication.markdown,
            annotations=publication.annotations,
            details_url=config.report_url or config.run_url,
        )
        print(f"check run: {run.get('conclusion')} {run.get('html_url') or ''}".rstrip(), file=out)
    except (GitHubApiError, KeyError, TypeError, ValueError) as exc:
        failures += 1
        print(f"publish: check run failed: {exc}", file=sys.stderr)
    if config.pr and publication.comment:
        failures += _publish_comment(config, config.pr, client, publication.markdown, out)
    return 2 if failures else 0


def write_step_summary(path: Path, markdown: str) -> None:
    """Append ``markdown`` to the job summary file, kept under GitHub's 1 MiB per step."""
    text = fit(markdown, MAX_STEP_SUMMARY_BYTES, measure=utf8_len)
    with path.open("a", encoding="utf-8", errors="replace") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")


def _publish_comment(
    config: PublishConfig, pr: int, client: GitHubClient, markdown: str, out: TextIO
) -> int:
    body = build_comment(markdown)
    try:
        login = resolve_login(client, config.bot_login)
        action, comment = upsert_comment(client, config.repo, pr, body, login)
    except (GitHubApiError, KeyError, TypeError, ValueError) as exc:
        print(f"publish: PR comment failed: {exc}", file=sys.stderr)
        return 1
    url = comment.get("html_url") or ""
    print(f"comment: {action} on #{pr} as {login} ({len(body)} chars) {url}".rstrip(), file=out)
    return 0


def _commit(evidence: Mapping[str, Any] | None) -> str:
    provenance = (evidence or {}).get("provenance")
    return str(provenance.get("commit") or "") if isinstance(provenance, Mapping) else ""


def _failed_step(config: PublishConfig) -> str:
    for name, outcome in config.steps:
        if outcome in {"failure", "cancelled"}:
            return f"step {name} {outcome}"
    if config.job_result and config.job_result != "success":
        return f"the Mac job ended {config.job_result}"
    return ""
