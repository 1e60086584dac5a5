"""Decide, for one workflow event, whether the Mac M4 job runs and on which commit.

The integration workflow runs on ``pull_request_target`` (its definition always
comes from main), ``push`` and ``schedule`` on main, and ``workflow_dispatch``.
The rules, in order:

- a pull request from a fork never runs; a maintainer reviews it and dispatches
  the workflow from main naming the reviewed commit's full SHA. A label does not
  name a commit (the fork could push after it), so it does not start a fork's run;
- a ``labeled`` event runs only for :data:`~kakeya_evidence.github.paths.MAINTAINER_LABEL`;
- a same-repository pull request runs when it carries that label or changes a runtime path;
- pushes and the weekly schedule on main run and keep the baseline artifact;
- any other event (``pull_request``, review and comment events...) is refused:
  it must never reach the self-hosted runner.

``pool`` names the Mac's virtual environment pool: ``main`` only for main's
baseline runs (push and schedule), ``pr`` for everything else, so a pull request's
code never runs in, or installs into, the venv that main's baseline uses.

When the job does not run, :attr:`GateDecision.conclusion_if_not_run` says what
check ``publish`` posts on the head commit instead: ``neutral`` when the run is not
needed, ``action_required`` when a fork's runtime change waits for a maintainer,
and nothing at all for an unrelated label (which must leave no check behind).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kakeya_evidence.github.client import GitHubClient, check_sha
from kakeya_evidence.github.paths import MAINTAINER_LABEL, matches_runtime_path

__all__ = ["MAIN_ARTIFACT", "PR_ARTIFACT", "GateDecision", "GateError", "decide_gate"]

# Zipped evidence of runs on main (the baseline and history) and of every other run.
MAIN_ARTIFACT = "evidence-mac-m4-main"
PR_ARTIFACT = "evidence-mac-m4"
MAIN_REF = "refs/heads/main"
# GitHub lists at most 3,000 files of a pull request; past that, assume a runtime change.
MAX_LISTED_FILES = 3000
_MAX_OUTPUT_CHARS = 500


class GateError(ValueError):
    """The event cannot be decided safely (wrong event, malformed payload or input)."""


@dataclass(frozen=True)
class GateDecision:
    """What the gate decided, as the job outputs the workflow reads."""

    run: bool
    reason: str
    sha: str = ""
    pr: int | None = None
    artifact: str = PR_ARTIFACT
    conclusion_if_not_run: str = ""

    def outputs(self) -> dict[str, str]:
        """The step outputs, one line each (no control characters, clipped)."""
        values = {
            "run": "true" if self.run else "false",
            "reason": self.reason,
            "sha": self.sha,
            "pr": str(self.pr) if self.pr else "",
            "artifact": self.artifact,
            "conclusion_if_not_run": "" if self.run else self.conclusion_if_not_run,
            "pool": "main" if self.artifact == MAIN_ARTIFACT else "pr",
        }
        return {key: _one_line(value) for key, value in values.items()}


def decide_gate(
    event_name: str, event: Mapping[str, Any], repo: str, client: GitHubClient, default_sha: str
) -> GateDecision:
    """Decide whether the Mac job runs for this event, and on which commit.

    Args:
        event_name: ``github.event_name``.
        event: The event payload (``$GITHUB_EVENT_PATH``).
        repo: ``github.repository`` (OWNER/NAME).
        client: API client, used to list a pull request's changed files.
        default_sha: ``github.sha``, the commit of push, schedule and plain dispatch runs.

    Raises:
        GateError: The event must not reach the runner, or its payload or inputs are bad.
        GitHubApiError: The changed files cannot be listed.
    """
    try:
        if event_name == "pull_request_target":
            return _decide_pull_request(event, repo, client)
        if event_name in {"push", "schedule"}:
            sha = check_sha(str(event.get("after") or default_sha))
            on_main = event_name == "schedule" or event.get("ref") == MAIN_REF
            artifact = MAIN_ARTIFACT if on_main else PR_ARTIFACT
            reason = f"{event_name} on {event.get('ref') or 'main'}"
            return GateDecision(True, reason, sha, None, artifact)
        if event_name == "workflow_dispatch":
            return _decide_dispatch(event, default_sha)
    except (KeyError, TypeError, ValueError) as exc:
        raise GateError(f"{event_name}: {exc}") from None
    raise GateError(f"event {event_name!r} must never start the self-hosted job")


def _decide_pull_request(event: Mapping[str, Any], repo: str, client: GitHubClient) -> GateDecision:
    pr = event["pull_request"]
    number = int(pr["number"])
    sha = check_sha(str(pr["head"]["sha"]), "pull_request.head.sha")
    labeled = event.get("action") == "labeled"
    applied = str((event.get("label") or {}).get("name") or "")
    if labeled and not _is_maintainer_label(applied):
        return GateDecision(False, f"label {applied!r} does not start the Mac run", sha, number)
    head_repo = ((pr.get("head") or {}).get("repo") or {}).get("full_name")
    if head_repo != repo:
        changed = _changed_runtime_path(client, repo, number)
        if changed is None:
            return GateDecision(
                False, "fork PR without runtime changes", sha, number, "", "neutral"
            )
        reason = (
            f"fork PR from {head_repo or 'a deleted fork'} changes {changed}: a maintainer "
            "reviews it, then dispatches the workflow from main with its full head SHA"
        )
        return GateDecision(False, reason, sha, number, PR_ARTIFACT, "action_required")
    if labeled:
        return GateDecision(True, f"maintainer applied {MAINTAINER_LABEL}", sha, number)
    if any(_is_maintainer_label(label.get("name")) for label in pr.get("labels") or []):
        return GateDecision(True, f"PR carries {MAINTAINER_LABEL}", sha, number)
    changed = _changed_runtime_path(client, repo, number)
    if changed is None:
        return GateDecision(False, "no runtime path changed", sha, number, PR_ARTIFACT, "neutral")
    return GateDecision(True, f"runtime path changed: {changed}", sha, number)


def _decide_dispatch(event: Mapping[str, Any], default_sha: str) -> GateDecision:
    inputs = event.get("inputs") or {}
    sha = str(inputs.get("sha") or "").strip()
    pr = _pr_number(str(inputs.get("pr") or "").strip())
    if not sha:
        return GateDecision(True, "manual dispatch", check_sha(default_sha), pr)
    check_sha(sha, "input sha")
    if event.get("ref") != MAIN_REF:
        raise GateError(
            f"a dispatch that names a commit must use main's workflow, got {event.get('ref')!r}"
        )
    return GateDecision(True, f"maintainer dispatch of reviewed commit {sha[:12]}", sha, pr)


def _changed_runtime_path(client: GitHubClient, repo: str, number: int) -> str | None:
    """The first changed runtime path of the PR, or None (all files are listed)."""
    count = 0
    for item in client.paginate(f"/repos/{repo}/pulls/{number}/files"):
        count += 1
        name = str(item.get("filename") or "")
        previous = str(item.get("previous_filename") or "")
        if matches_runtime_path(name) or (previous and matches_runtime_path(previous)):
            return name
    return f"{count} files (more than GitHub lists)" if count >= MAX_LISTED_FILES else None


def _is_maintainer_label(name: object) -> bool:
    # GitHub label names are unique regardless of case, and the workflow's `if:` ignores it.
    return str(name or "").lower() == MAINTAINER_LABEL.lower()


def _pr_number(text: str) -> int | None:
    if not text:
        return None
    if not text.isdigit() or int(text) <= 0:
        raise GateError(f"input pr must be a positive pull request number, got {text!r}")
    return int(text)


def _one_line(text: str) -> str:
    # A changed file's name comes from the PR author: no newline may forge another output.
    cleaned = "".join(ch if ch >= " " and ch != "\x7f" else " " for ch in text)
    return cleaned[:_MAX_OUTPUT_CHARS]
