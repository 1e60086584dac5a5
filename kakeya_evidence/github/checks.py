"""The check run on the tested commit, with every annotation (Checks API).

A check run is created ``in_progress`` with the first 50 annotations, the rest
are appended 50 per update (the API rejects more per request), and a last update
completes it with its conclusion. If anything fails half-way the check stays
``in_progress``: a required check then blocks the merge rather than showing a
result that was never finished.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from kakeya_evidence.github.annotations import Annotation, to_checks_api
from kakeya_evidence.github.client import GitHubClient
from kakeya_evidence.github.render import fit, plain_url

__all__ = ["ANNOTATIONS_PER_REQUEST", "CHECK_NAME", "CONCLUSIONS", "publish_check_run"]

CHECK_NAME = "Mac M4 evidence"
ANNOTATIONS_PER_REQUEST = 50
MAX_OUTPUT_UNITS = 65_535  # output.summary and output.text limit
MAX_TITLE_CHARS = 200
CONCLUSIONS = ("success", "failure", "neutral", "action_required", "cancelled", "timed_out")


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
) -> dict[str, Any]:
    """Create the check run on ``sha``, send every annotation, then complete it.

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
        "name": CHECK_NAME,
        "head_sha": sha,
        "status": "in_progress",
        "started_at": _now(),
        "output": {**output, "annotations": batches[0]},
    }
    if plain_url(details_url):
        body["details_url"] = details_url
    created = client.request("POST", f"/repos/{repo}/check-runs", body).data or {}
    url = f"/repos/{repo}/check-runs/{int(created['id'])}"
    for batch in batches[1:]:
        client.request("PATCH", url, {"output": {**output, "annotations": batch}})
    final = {"status": "completed", "conclusion": conclusion, "completed_at": _now()}
    return client.request("PATCH", url, {**final, "output": output}).data or {}


def _clip(title: str) -> str:
    flat = " ".join(title.split())
    return flat if len(flat) <= MAX_TITLE_CHARS else flat[: MAX_TITLE_CHARS - 1] + "…"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
