"""Fetch main's evidence from earlier runs: the newest as the baseline, the last N as history.

Runs on main (push and the weekly schedule) upload their evidence directory as the
zipped artifact ``<MAIN_ARTIFACT>-<run attempt>``
(:data:`~kakeya_evidence.github.gate.MAIN_ARTIFACT`). The candidates are the
integration workflow's completed runs on ``branch``, newest first, and a run counts
only when:

- its ``event`` is ``push`` or ``schedule`` (a dispatch, or a pull request's run,
  may run other code under the same branch name: its ``head_branch`` alone proves
  nothing), and its head repository is this repository (not a fork's ``main``);
- it holds an unexpired main artifact (its latest attempt's is taken) whose
  ``evidence.json`` says the pipeline completed (exit code 0 or 1). A run that could
  not run its stages (exit 2) has no comparable test list, so it is skipped.
"""

from __future__ import annotations

import io
import json
import re
import sys
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kakeya_evidence.github.client import GitHubApiError, GitHubClient
from kakeya_evidence.github.gate import MAIN_ARTIFACT
from kakeya_evidence.github.paths import WORKFLOW

__all__ = [
    "HISTORY_COUNT",
    "MainEvidence",
    "fetch_baseline",
    "fetch_history",
    "iter_main_evidence",
    "write_history",
]

HISTORY_COUNT = 10
MAX_CANDIDATES = 30  # artifacts downloaded at most while looking
MAX_RUNS = 200  # workflow runs read at most while looking
MAX_EVIDENCE_BYTES = 64 * 1024 * 1024
BASELINE_EVENTS = ("push", "schedule")
_COMPLETED_EXIT_CODES = (0, 1)


@dataclass(frozen=True)
class MainEvidence:
    """One usable evidence.json from a run on main."""

    artifact_id: int
    run_id: int
    head_sha: str
    raw: bytes


def iter_main_evidence(
    client: GitHubClient,
    repo: str,
    artifact: str = MAIN_ARTIFACT,
    branch: str = "main",
    max_candidates: int = MAX_CANDIDATES,
) -> Iterator[MainEvidence]:
    """Yield usable evidence from ``branch``'s push and schedule runs, newest first.

    Unusable candidates are named on stderr and skipped.

    Raises:
        GitHubApiError: Listing the runs fails.
    """
    workflow = WORKFLOW.rsplit("/", 1)[-1]
    url = f"/repos/{repo}/actions/workflows/{workflow}/runs?branch={branch}&status=completed"
    tried = 0
    for index, run in enumerate(client.paginate(url)):
        if index >= MAX_RUNS or tried >= max_candidates:
            return
        if not _baseline_run(run, branch):
            continue
        item = _latest_artifact(client, repo, int(run["id"]), artifact)
        if item is None:
            continue
        tried += 1
        try:
            raw = _evidence_from_zip(
                client.download(f"/repos/{repo}/actions/artifacts/{int(item['id'])}/zip")
            )
            _check_completed(raw)
        except (GitHubApiError, ValueError) as exc:
            print(f"skipping artifact {item.get('id')}: {exc}", file=sys.stderr)
            continue
        yield MainEvidence(int(item["id"]), int(run["id"]), str(run.get("head_sha") or ""), raw)


def _baseline_run(run: Any, branch: str) -> bool:
    """A push or schedule run of this repository's ``branch``."""
    if not isinstance(run, Mapping) or run.get("event") not in BASELINE_EVENTS:
        return False
    if run.get("head_branch") != branch or not run.get("id"):
        return False
    head = (run.get("head_repository") or {}).get("id")
    own = (run.get("repository") or {}).get("id")
    return head is None or own is None or head == own


def _latest_artifact(
    client: GitHubClient, repo: str, run_id: int, artifact: str
) -> Mapping[str, Any] | None:
    """The run's unexpired ``<artifact>-<attempt>`` of the highest attempt, or None."""
    pattern = re.compile(re.escape(artifact) + r"-(\d+)")
    best: tuple[int, Mapping[str, Any]] | None = None
    for item in client.paginate(f"/repos/{repo}/actions/runs/{run_id}/artifacts"):
        match = pattern.fullmatch(str(item.get("name") or ""))
        if match and not item.get("expired") and (best is None or int(match[1]) > best[0]):
            best = (int(match[1]), item)
    return best[1] if best else None


def fetch_baseline(
    client: GitHubClient, repo: str, artifact: str = MAIN_ARTIFACT, branch: str = "main"
) -> MainEvidence | None:
    """Return main's newest usable evidence, or None when there is none.

    Raises:
        GitHubApiError: Listing the artifacts fails.
    """
    return next(iter_main_evidence(client, repo, artifact, branch), None)


def fetch_history(
    client: GitHubClient,
    repo: str,
    count: int = HISTORY_COUNT,
    artifact: str = MAIN_ARTIFACT,
    branch: str = "main",
) -> list[MainEvidence]:
    """Return up to ``count`` of main's newest usable evidence files, newest first.

    Raises:
        GitHubApiError: Listing the artifacts fails.
    """
    found: list[MainEvidence] = []
    for evidence in iter_main_evidence(client, repo, artifact, branch, max(count, 1) * 3):
        found.append(evidence)
        if len(found) >= count:
            break
    return found


def write_history(directory: Path, items: list[MainEvidence]) -> list[Path]:
    """Write each evidence.json as ``DIR/evidence-<run id>-<artifact id>.json``.

    Raises:
        OSError: The directory cannot be written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for item in items:
        path = directory / f"evidence-{item.run_id}-{item.artifact_id}.json"
        path.write_bytes(item.raw)
        paths.append(path)
    return paths


def _evidence_from_zip(blob: bytes) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            infos = [
                i for i in archive.infolist() if i.filename.rsplit("/", 1)[-1] == "evidence.json"
            ]
            if not infos:
                raise ValueError("the artifact holds no evidence.json")
            info = min(infos, key=lambda i: len(i.filename))
            if info.file_size > MAX_EVIDENCE_BYTES:
                raise ValueError(f"evidence.json is {info.file_size} bytes, over the limit")
            return archive.read(info)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"not a zip archive: {exc}") from None


def _check_completed(raw: bytes) -> None:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"evidence.json is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("evidence.json is not a JSON object")
    if data.get("exit_code") not in _COMPLETED_EXIT_CODES:
        raise ValueError(f"that run did not complete (exit code {data.get('exit_code')!r})")
