"""Publish one run's evidence: check run on the commit, PR comment, job summary.

``publish`` runs in a GitHub-hosted job on main's code after the Mac job, whatever
became of it. It never trusts a leftover, and it never shows another run's result:

- everything it says names the commit it was given; evidence of another commit, or of
  another run or attempt ("no evidence for attempt N"), is not this run's evidence;
- the verdict is recomputed from the raw pytest record and junit.xml
  (:mod:`~kakeya_evidence.github.verify`): a disagreement with ``evidence.json`` is a
  failure; a run of part of the suite (pytest arguments, a shard) is ``neutral``;
- a run that left no evidence is "no evidence" (``failure``), or ``cancelled`` when a
  newer run superseded it; a gate's "not run" never replaces a completed run's check;
- it completes our app's check run that the ``pending`` step (or a crashed publish)
  left ``in_progress`` instead of adding another;
- the comment is rewritten only while the commit is the pull request's head.

The check is written with the project's GitHub App when its credentials are set
(:mod:`~kakeya_evidence.github.app_auth`), else with ``GITHUB_TOKEN`` and a warning in
the check's title. The three outputs are attempted independently; the job summary is
written first and needs no API. Exit status 0 when all went out, 2 when any failed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from kakeya_evidence.github.annotations import Annotation, annotations_for_tests
from kakeya_evidence.github.app_auth import AppCredentials, installation_token
from kakeya_evidence.github.checks import (
    NOT_RUN_ID,
    complete_check_run,
    find_check_runs,
    publish_check_run,
    start_check_run,
)
from kakeya_evidence.github.client import GitHubApiError, GitHubClient
from kakeya_evidence.github.comment import (
    build_comment,
    find_own_comment,
    resolve_login,
    upsert_comment,
)
from kakeya_evidence.github.render import (
    Links,
    Verdict,
    decide_verdict,
    fit,
    render_cancelled,
    render_evidence,
    render_no_evidence,
    render_not_run,
    render_pending,
    utf8_len,
)
from kakeya_evidence.github.verify import read_raw_suite, recheck

__all__ = [
    "ACTIONS_APP_SLUG",
    "FALLBACK_WARNING",
    "MAX_STEP_SUMMARY_BYTES",
    "STEP_OUTCOMES",
    "Identity",
    "Publication",
    "PublishConfig",
    "authenticate",
    "load_evidence",
    "pending",
    "prepare",
    "publish",
    "write_step_summary",
]

# GitHub caps one step's job summary at 1 MiB; stay a little below it.
MAX_STEP_SUMMARY_BYTES = 1024 * 1024 - 1024
MAX_EVIDENCE_BYTES = 64 * 1024 * 1024
STEP_OUTCOMES = ("success", "failure", "cancelled", "skipped", "")
ACTIONS_APP_SLUG = "github-actions"  # the app of every GITHUB_TOKEN
FALLBACK_WARNING = "UNVERIFIED (GITHUB_TOKEN, not the evidence App): "
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
    run_id: int | None = None
    run_attempt: int | None = None
    partial: str = ""  # the workflow's pytest-args (or shard): the run is not the whole suite
    app: AppCredentials | None = None

    @property
    def external_id(self) -> str:
        """What our check run is about: this run and attempt."""
        return f"run:{self.run_id or 0}:{self.run_attempt or 0}"


@dataclass(frozen=True)
class Publication:
    """What the three outputs say.

    ``comment`` is ``upsert`` (write or create), ``update`` (rewrite ours only if one
    exists: a not-run decision on a PR that never had evidence adds no comment) or ``""``.
    """

    conclusion: str
    title: str
    markdown: str
    summary: str
    annotations: list[Annotation] = field(default_factory=list)
    comment: str = "upsert"
    not_run: bool = False


@dataclass(frozen=True)
class Identity:
    """Who writes: the client with its token, the comments' login, the checks' app."""

    client: GitHubClient
    login: str
    app_slug: str
    warning: str = ""


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
        return Publication(config.not_run_conclusion, title, text, text, [], "update", True)
    evidence, why = load_evidence(config.evidence_dir)
    if evidence is not None:
        why = _not_this_run(config, evidence)
        evidence = None if why else evidence
    if evidence is None:
        cancelled = _cancelled(config)
        why = _failed_step(config) or why
        if cancelled:
            text = render_cancelled(links, why)
            return Publication("cancelled", f"cancelled: {why}", text, text)
        text = render_no_evidence(links, why)
        return Publication("failure", f"no evidence: {why}", text, text)
    verdict = _verdict(config, evidence)
    return Publication(
        verdict.conclusion,
        verdict.title,
        render_evidence(evidence, links, _COMMENT_ITEMS, verdict=verdict),
        render_evidence(evidence, links, _SUMMARY_ITEMS, verdict=verdict),
        annotations_for_tests(evidence),
    )


def authenticate(config: PublishConfig, client: GitHubClient) -> Identity:
    """The App's installation token when its credentials are set, else ``GITHUB_TOKEN``.

    Raises:
        ValueError: The App's private key cannot be read.
        GitHubApiError: The App's token cannot be had.
        KeyError, TypeError: GitHub's answer lacks the expected fields.
    """
    if config.app is not None:
        minted = installation_token(client, config.repo, config.app)
        return Identity(client.with_token(minted.token), minted.login, minted.app_slug)
    login = resolve_login(client, config.bot_login)
    return Identity(client, login, ACTIONS_APP_SLUG, FALLBACK_WARNING)


def publish(
    config: PublishConfig, client: GitHubClient, out: TextIO, summary_path: str | None
) -> int:
    """Write the job summary, the check run and the PR comment; 0 when all went out.

    Args:
        config: What to publish.
        client: The API client (with ``GITHUB_TOKEN``, the fallback).
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
    identity = _identity(config, client)
    if identity is None:
        return 2
    if identity.warning:
        print(f"::warning::publish: {identity.warning.strip(': ')}", file=out)
        publication = replace(publication, title=identity.warning + publication.title)
    failures += _publish_check(config, identity, publication, out)
    if config.pr and publication.comment:
        failures += _publish_comment(config, identity, publication, out)
    return 2 if failures else 0


def pending(config: PublishConfig, client: GitHubClient, out: TextIO) -> int:
    """At the start of a Mac run: an ``in_progress`` check on the commit, "pending" comment."""
    identity = _identity(config, client)
    if identity is None:
        return 2
    links = Links(config.sha, config.run_url)
    text = render_pending(links)
    title = identity.warning + "pending: the Mac M4 run has started"
    failures = 0
    try:
        ours = find_check_runs(identity.client, config.repo, config.sha, identity.app_slug)
        reuse = next((r for r in ours if r.get("status") != "completed"), None)
        run = start_check_run(
            identity.client,
            config.repo,
            config.sha,
            title=title,
            summary=text,
            external_id=config.external_id,
            existing_id=int(reuse["id"]) if reuse else None,
        )
        print(f"check run: in_progress {run.get('html_url') or ''}".rstrip(), file=out)
    except (GitHubApiError, KeyError, TypeError, ValueError) as exc:
        failures += 1
        print(f"pending: check run failed: {exc}", file=sys.stderr)
    if config.pr:
        pub = Publication("", title, text, text)
        failures += _publish_comment(config, identity, pub, out)
    return 2 if failures else 0


def write_step_summary(path: Path, markdown: str) -> None:
    """Append ``markdown`` to the job summary file, kept under GitHub's 1 MiB per step."""
    text = fit(markdown, MAX_STEP_SUMMARY_BYTES, measure=utf8_len)
    with path.open("a", encoding="utf-8", errors="replace") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")


# ------------------------------------------------------------------ the check


def _identity(config: PublishConfig, client: GitHubClient) -> Identity | None:
    if config.app is None and not client.has_token:
        print("publish: neither the App's credentials nor GITHUB_TOKEN is set", file=sys.stderr)
        return None
    try:
        return authenticate(config, client)
    except (GitHubApiError, KeyError, TypeError, ValueError) as exc:
        # Credentials that are set but fail must not silently become GITHUB_TOKEN's check.
        print(f"publish: the App's installation token failed: {exc}", file=sys.stderr)
        return None


def _publish_check(
    config: PublishConfig, identity: Identity, publication: Publication, out: TextIO
) -> int:
    api, repo = identity.client, config.repo
    try:
        ours = find_check_runs(api, repo, config.sha, identity.app_slug)
        done = [r for r in ours if r.get("status") == "completed"]
        if publication.not_run and any(r.get("external_id") != NOT_RUN_ID for r in done):
            print(
                "check run: kept the completed run's check; 'not run' does not replace it", file=out
            )
            return 0
        open_runs = [r for r in ours if r.get("status") != "completed"]
        for stale in open_runs[1:]:  # left in progress by a crash: finish, never leave hanging
            complete_check_run(
                api, repo, int(stale["id"]), "cancelled", "superseded by a later publish", "-"
            )
        run = publish_check_run(
            api,
            repo,
            config.sha,
            conclusion=publication.conclusion,
            title=publication.title,
            summary=publication.markdown,
            annotations=publication.annotations,
            details_url=config.report_url or config.run_url,
            external_id=NOT_RUN_ID if publication.not_run else config.external_id,
            existing_id=int(open_runs[0]["id"]) if open_runs else None,
        )
    except (GitHubApiError, KeyError, TypeError, ValueError) as exc:
        print(f"publish: check run failed: {exc}", file=sys.stderr)
        return 1
    print(f"check run: {run.get('conclusion')} {run.get('html_url') or ''}".rstrip(), file=out)
    return 0


# ---------------------------------------------------------------- the comment


def _publish_comment(
    config: PublishConfig, identity: Identity, publication: Publication, out: TextIO
) -> int:
    assert config.pr is not None  # callers check
    body = build_comment(publication.markdown)
    api, repo, pr = identity.client, config.repo, config.pr
    try:
        head = _pr_head(api, repo, pr)
        if head != config.sha:
            print(
                f"comment: left alone: {config.sha[:12]} is not the head of #{pr} "
                f"({head[:12] or 'unknown'}); only its check run was updated",
                file=out,
            )
            return 0
        if publication.comment == "update" and not find_own_comment(api, repo, pr, identity.login):
            print(f"comment: none on #{pr} to update", file=out)
            return 0
        action, comment = upsert_comment(api, repo, pr, body, identity.login)
    except (GitHubApiError, KeyError, TypeError, ValueError) as exc:
        print(f"publish: PR comment failed: {exc}", file=sys.stderr)
        return 1
    url = comment.get("html_url") or ""
    print(
        f"comment: {action} on #{pr} as {identity.login} ({len(body)} chars) {url}".rstrip(),
        file=out,
    )
    return 0


def _pr_head(client: GitHubClient, repo: str, pr: int) -> str:
    data = client.request("GET", f"/repos/{repo}/pulls/{pr}").data or {}
    return str((data.get("head") or {}).get("sha") or "")


# ---------------------------------------------------------------- the verdict


def _verdict(config: PublishConfig, evidence: Mapping[str, Any]) -> Verdict:
    verdict = decide_verdict(evidence, _partial(config, evidence))
    checked = recheck(evidence, read_raw_suite(config.evidence_dir))
    if not checked.agrees:
        return Verdict("failure", f"disagreement: {checked.reason}")
    return verdict


def _partial(config: PublishConfig, evidence: Mapping[str, Any]) -> str:
    """Why the run covered only part of the suite, or "" for a whole run."""
    reasons = [f"pytest-args {config.partial}"] if config.partial.strip() else []
    params = _mapping(_mapping(evidence.get("provenance")).get("parameters"))
    suite = _mapping(evidence.get("suite"))
    args = str(params.get("pytest_args") or "").strip()
    if args and not reasons:
        reasons.append(f"pytest-args {args}")
    shard = str(params.get("shard") or suite.get("shard") or "").strip()
    if shard:
        reasons.append(f"shard {shard}")
    return ", ".join(reasons)


def _not_this_run(config: PublishConfig, evidence: Mapping[str, Any]) -> str:
    """Why this evidence is not the evidence of this commit, run and attempt ("" if it is)."""
    provenance = _mapping(evidence.get("provenance"))
    commit = str(provenance.get("commit") or "")
    if commit and commit != config.sha:
        return f"evidence.json is for commit {commit[:12]}, not this one"
    if config.run_attempt is None:
        return ""
    run_id, attempt = provenance.get("run_id"), provenance.get("run_attempt")
    if attempt != config.run_attempt or (config.run_id is not None and run_id != config.run_id):
        return (
            f"no evidence for attempt {config.run_attempt} "
            f"(evidence.json is from run {run_id!r}, attempt {attempt!r})"
        )
    return ""


def _cancelled(config: PublishConfig) -> bool:
    return config.job_result == "cancelled" or any(o == "cancelled" for _, o in config.steps)


def _failed_step(config: PublishConfig) -> str:
    for name, outcome in config.steps:
        if outcome in {"failure", "cancelled"}:
            return f"step {name} {outcome}"
    if config.job_result and config.job_result != "success":
        return f"the Mac job ended {config.job_result}"
    return ""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
