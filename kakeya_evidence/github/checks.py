"""The check run on the tested commit, with every annotation (Checks API).

A check run is created ``in_progress`` with the first 50 annotations, the rest
are appended 50 per update (the API rejects more per request), and a last update
completes it with its conclusion. If anything fails half-way the check stays
``in_progress``: a required check then blocks the merge rather than showing a
result that was never finished, and the next publish for that commit picks the
check run up again (:func:`find_check_runs`) and completes it.

Only check runs of our own app count: several apps may post a check of the same
name on a commit, and a check from another app (a branch workflow's
``GITHUB_TOKEN``) is never taken for ours. ``external_id`` says what a check run is
about: ``run:<run id>:<attempt>`` for a Mac run, ``not-run`` for a gate decision.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from kakeya_evidence.github.annotations import Annotation, to_checks_api
from kakeya_evidence.github.client import GitHubClient
from kakeya_evidence.github.render import fit, plain_url

__all__ = [
    "ANNOTATIONS_PER_REQUEST",
    "CHECK_NAME",
    "CONCLUSIONS",
    "NOT_RUN_ID",
    "complete_check_run",
    "find_check_runs",
    "publish_check_run",
    "start_check_run",
]

CHECK_NAME = "Mac M4 evidence"
ANNOTATIONS_PER_REQUEST = 50
MAX_OUTPUT_UNITS = 65_535  # output.summary and output.text limit
MAX_TITLE_CHARS = 200
CONCLUSIONS = ("success", "failure", "neutral", "action_required", "cancelled", "timed_out")
NOT_RUN_ID = "not-run"


def find_check_runs(
    client: GitHubClient, repo: str, sha: str, app_slug: str
) -> list[dict[str, Any]]:
    """Our app's "Mac M4 evidence" check runs on ``sha``, newest first.

    Raises:
        GitHubApiError: The list cannot be read.
    """
    url = f"/repos/{repo}/commits/{sha}/check-runs?check_name={quote(CHECK_NAME)}&filter=all"
    runs = [
        dict(run)
        for run in client.paginate(url)
        if isinstance(run, dict)
        and run.get("name") == CHECK_NAME
        and (run.get("app") or {}).get("slug") == app_slug
    ]
    return sorted(runs, key=lambda run: int(run.get("id") or 0), reverse=True)


def start_check_run(
    client: GitHubClient,
    repo: str,
    sha: str,
    *,
    title: str,
    summary: str,
    external_id: str,
    existing_id: int | None = None,
) -> dict[str, Any]:
    """Put an ``in_progress`` check run on ``sha`` (or set an existing one back to it).

    Raises:
        GitHubApiError: A request failed.
    """
    output = {"title": _clip(title), "summary": fit(summary, MAX_OUTPUT_UNITS)}
    body = {"status": "in_progress", "external_id": external_id, "output": output}
    if existing_id is not None:
        url = f"/repos/{repo}/check-runs/{existing_id}"
        return client.request("PATCH", url, body).data or {}
    create = {"name": CHECK_NAME, "head_sha": sha, "started_at": _now(), **body}
    return client.request("POST", f"/repos/{repo}/check-runs", create).data or {}


def complete_check_run(
    client: GitHubClient, repo: str, run_id: int, conclusion: str, title: str, summary: str
) -> dict[str, Any]:
    """Complete one check run with ``conclusion`` (one without annotations).

    Raises:
        GitHubApiError: The request failed.
    """
    output = {"title": _clip(title), "summary": fit(summary, MAX_OUTPUT_UNITS)}
    body = {"status": "completed", "conclusion": conclusion, "completed_at": _now()}
    return (
        client.request(
            "PATCH", f"/repos/{repo}/check-runs/{run_id}", {**body, "output": output}
        ).data
        or {}
    )


def publish_check_run(
    client: GitHubClient,
    repo: str,
    sha: str,
    *,
    conclusion: str,
    title: str,
    summary: str,
    annotations: Sequence[Annotation] = (),
    details_url: str | None = None,
    external_id: str = "",
    existing_id: int | None = None,
) -> dict[str, Any]:
    """Create the check run on ``sha`` (or take ``existing_id``), annotate, complete it.

    Returns:
        The completed check run as the API returned it.

    Raises:
        ValueError: ``conclusion`` is not one GitHub accepts here.
        GitHubApiError: A request failed (the check then stays in progress).
    """
    if conclusion not in CONCLUSIONS:
        raise ValueError(f"conclusion must be one of {', '.join(CONCLUSIONS)}, got {conclusion!r}")
    output = {"title": _clip(title), "summary": fit(summary, MAX_OUTPUT_UNITS)}
    batches = [
        [to_checks_api(a) for a in annotations[i : i + ANNOTATIONS_PER_REQUEST]]
        for i in range(0, len(annotations), ANNOTATIONS_PER_REQUEST)
    ] or [[]]
    body: dict[str, Any] = {
        "status": "in_progress",
        "output": {**output, "annotations": batches[0]},
    }
    if external_id:
        body["external_id"] = external_id
    if plain_url(details_url):
        body["details_url"] = details_url  # GitHub ignores it for GITHUB_TOKEN's app
    if existing_id is not None:
        created = client.request("PATCH", f"/repos/{repo}/check-runs/{existing_id}", body).data
    else:
        create = {"name": CHECK_NAME, "head_sha": sha, "started_at": _now(), **body}
        created = client.request("POST", f"/repos/{repo}/check-runs", create).data
    url = f"/repos/{repo}/check-runs/{int((created or {})['id'])}"
    for batch in batches[1:]:
        client.request("PATCH", url, {"output": {**output, "annotations": batch}})
    final = {"status": "completed", "conclusion": conclusion, "completed_at": _now()}
    return client.request("PATCH", url, {**final, "output": output}).data or {}


def _clip(title: str) -> str:
    flat = " ".join(title.split())
    return flat if len(flat) <= MAX_TITLE_CHARS else flat[: MAX_TITLE_CHARS - 1] + "…"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
