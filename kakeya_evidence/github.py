"""GitHub glue for the evidence pipeline: PR comment, annotations, job summary.

Three ``kakeya-evidence`` subcommands live here so that the workflows stay thin
and every step they run is a tested project command:

- ``pr-comment``: create or update ONE pull-request comment, found by the hidden
  marker :data:`MARKER`, holding ``summary.md`` with the artifact and run links.
- ``annotate``: print ``::error`` workflow commands for failed tests and stages
  recorded in ``evidence.json``.
- ``step-summary``: append ``summary.md`` to ``$GITHUB_STEP_SUMMARY``.

The summary may carry the placeholders :data:`ARTIFACT_PLACEHOLDER` and
:data:`RUN_PLACEHOLDER`; they are filled with the links given on the command
line (or a neutral text when a link is absent). Links whose placeholder is
missing from the summary are appended at the end instead.

The module talks to the GitHub REST API with :mod:`urllib` only; the token comes
from ``GITHUB_TOKEN`` (or ``GH_TOKEN``) and is never printed. The API base URL is
``--api-url`` or ``GITHUB_API_URL`` (default ``https://api.github.com``), which is
also how the tests point it at a local fake server.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "ARTIFACT_PLACEHOLDER",
    "LABEL",
    "MARKER",
    "MAX_COMMENT_CHARS",
    "RUNTIME_PATH_GLOBS",
    "RUN_PLACEHOLDER",
    "CommentConfig",
    "GitHubApiError",
    "GitHubClient",
    "build_comment_body",
    "decide_gate",
    "escape_data",
    "escape_property",
    "fetch_baseline",
    "fill_links",
    "find_marked_comment",
    "format_annotations",
    "matches_runtime_path",
    "register",
    "truncate_text",
    "upsert_comment",
]

MARKER = "<!-- kakeya-evidence -->"
# The placeholders kakeya_evidence.report.summary leaves in summary.md.
ARTIFACT_PLACEHOLDER = "{report_url}"
RUN_PLACEHOLDER = "{run_url}"
# GitHub rejects issue comments longer than 65,536 characters.
MAX_COMMENT_CHARS = 65_536
# A step summary is capped at 1 MiB per step; stay below it.
MAX_STEP_SUMMARY_CHARS = 1_000_000
DEFAULT_API_URL = "https://api.github.com"
DEFAULT_MAX_ANNOTATIONS = 50
TRUNCATION_NOTE = (
    "\n\n---\n_Summary truncated to fit GitHub's size limit; "
    "the full report is in the evidence artifact._\n"
)
_TIMEOUT_S = 30.0
_PER_PAGE = 100
_MAX_PAGES = 50
LABEL = "needs-mac-m4"
# Paths whose change makes a PR need the Mac M4 run. .github/labeler.yml lists the
# same globs (a test keeps them equal); only "dir/**" and exact paths are used.
RUNTIME_PATH_GLOBS = (
    "inference_engine/**",
    "kakeya/**",
    "kakeya_evidence/**",
    "proto/**",
    "tests/integration/**",
    "notebooks/**",
    "pyproject.toml",
    "scripts/ci_venv.sh",
    "scripts/ci_evidence.sh",
    ".github/workflows/integration.yaml",
)
_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_NEXT_LINK_RE = re.compile(r'<([^>]+)>;\s*rel="next"')


class GitHubApiError(RuntimeError):
    """A GitHub REST call failed (HTTP error status or unreachable API).

    Attributes:
        status: HTTP status code, or 0 when the API could not be reached.
    """

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class CommentConfig:
    """Where the PR comment goes and how to reach the API."""

    repo: str
    pr: int
    api_url: str = DEFAULT_API_URL
    token: str | None = None

    def __repr__(self) -> str:  # keeps the token out of logs and tracebacks
        return f"CommentConfig(repo={self.repo!r}, pr={self.pr}, api_url={self.api_url!r})"


# --------------------------------------------------------------------------- body


def fill_links(text: str, artifact_url: str | None, run_url: str | None) -> str:
    """Fill the link placeholders in a summary; append links that have no placeholder.

    Args:
        text: The summary markdown.
        artifact_url: URL of the evidence artifact, if known.
        run_url: URL of the workflow run, if known.

    Returns:
        The summary with every placeholder replaced.
    """
    links = {
        ARTIFACT_PLACEHOLDER: (artifact_url, "Evidence artifact"),
        RUN_PLACEHOLDER: (run_url, "Workflow run"),
    }
    extra: list[str] = []
    for placeholder, (url, label) in links.items():
        if placeholder in text:
            text = text.replace(placeholder, url or "(not available)")
        elif url:
            extra.append(f"[{label}]({url})")
    if extra:
        text = text.rstrip("\n") + "\n\n" + " · ".join(extra) + "\n"
    return text


def truncate_text(text: str, max_chars: int, note: str = TRUNCATION_NOTE) -> str:
    """Cut text to at most ``max_chars`` characters, ending with ``note`` when cut.

    The cut falls on a line boundary where one is near, so a markdown table row
    is not left half-written.

    Raises:
        ValueError: if ``max_chars`` cannot even hold the note.
    """
    if len(text) <= max_chars:
        return text
    if max_chars <= len(note):
        raise ValueError(f"max_chars must exceed {len(note)} (the note), got {max_chars}")
    keep = text[: max_chars - len(note)]
    newline = keep.rfind("\n")
    if newline > len(keep) // 2:
        keep = keep[: newline + 1]
    return keep + note


def build_comment_body(
    summary: str,
    artifact_url: str | None = None,
    run_url: str | None = None,
    max_chars: int = MAX_COMMENT_CHARS - 1,
) -> str:
    """Return the PR comment body: marker line, then the summary with links filled.

    Raises:
        ValueError: if ``max_chars`` is too small for the marker and the note.
    """
    head = MARKER + "\n"
    text = fill_links(summary, artifact_url, run_url)
    return head + truncate_text(text, max_chars - len(head))


# --------------------------------------------------------------------------- REST


class GitHubClient:
    """Minimal GitHub REST client over urllib (JSON in, JSON out)."""

    def __init__(self, api_url: str, token: str | None, timeout_s: float = _TIMEOUT_S) -> None:
        self._api_url = api_url.rstrip("/")
        self._token = token
        self._timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"GitHubClient(api_url={self._api_url!r})"

    def request(self, method: str, url: str, payload: Any = None) -> tuple[Any, Mapping[str, str]]:
        """Send one request; ``url`` is absolute or a path below the API base.

        Returns:
            The decoded JSON body (None when empty) and the response headers.

        Raises:
            GitHubApiError: on an HTTP error status or a connection failure.
        """
        full = url if url.startswith(("http://", "https://")) else self._api_url + url
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(full, data=data, method=method, headers=self._headers())
        try:
            with urllib.request.urlopen(req, timeout=self._timeout_s) as resp:
                raw = resp.read()
                headers = dict(resp.headers.items())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise GitHubApiError(f"{method} {full}: HTTP {exc.code}: {detail}", exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            raise GitHubApiError(f"{method} {full}: {exc}") from None
        return (json.loads(raw) if raw else None), headers

    def download(self, path: str) -> bytes:
        """GET a binary endpoint that redirects to storage; the token is not forwarded.

        Raises:
            GitHubApiError: on a failed request.
        """
        req = urllib.request.Request(self._api_url + path, headers=self._headers())
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(req, timeout=self._timeout_s) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            location = exc.headers.get("Location") if exc.code in {301, 302, 303, 307} else None
            if not location:
                raise GitHubApiError(f"GET {req.full_url}: HTTP {exc.code}", exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            raise GitHubApiError(f"GET {req.full_url}: {exc}") from None
        return self._fetch_plain(location)

    def _fetch_plain(self, url: str) -> bytes:
        req = urllib.request.Request(url, headers={"User-Agent": "kakeya-evidence"})
        try:
            with urllib.request.urlopen(req, timeout=self._timeout_s) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            raise GitHubApiError(f"GET (redirected download): HTTP {exc.code}", exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            raise GitHubApiError(f"GET (redirected download): {exc}") from None

    def paginate(self, path: str) -> Iterator[Any]:
        """Yield the items of every page of a list endpoint, following ``Link: rel=next``.

        Raises:
            GitHubApiError: on a failed request.
        """
        sep = "&" if "?" in path else "?"
        url: str | None = f"{path}{sep}per_page={_PER_PAGE}"
        for _ in range(_MAX_PAGES):
            if url is None:
                return
            page, headers = self.request("GET", url)
            yield from _page_items(page)
            url = _next_link(headers)

    def _headers(self) -> dict[str, str]:
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "kakeya-evidence",
            "Content-Type": "application/json",
        }
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers


def _page_items(page: Any) -> list[Any]:
    """Items of one list page: a JSON array, or the array inside an object (artifacts)."""
    if isinstance(page, Mapping):
        return next((v for v in page.values() if isinstance(v, list)), [])
    return list(page or [])


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Stops redirects so a storage URL is fetched without the Authorization header."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _next_link(headers: Mapping[str, str]) -> str | None:
    link = next((v for k, v in headers.items() if k.lower() == "link"), "")
    match = _NEXT_LINK_RE.search(link)
    return match.group(1) if match else None


def find_marked_comment(client: GitHubClient, repo: str, pr: int) -> dict[str, Any] | None:
    """Return the first comment on the PR whose body holds :data:`MARKER`, or None.

    Raises:
        GitHubApiError: on a failed request.
    """
    for comment in client.paginate(f"/repos/{repo}/issues/{pr}/comments"):
        if MARKER in (comment.get("body") or ""):
            return comment
    return None


def upsert_comment(client: GitHubClient, repo: str, pr: int, body: str) -> tuple[str, Any]:
    """Update the marked comment, or create one when none exists.

    Returns:
        ``("updated" | "created", comment JSON)``.

    Raises:
        GitHubApiError: on a failed request.
    """
    existing = find_marked_comment(client, repo, pr)
    if existing is not None:
        url = f"/repos/{repo}/issues/comments/{existing['id']}"
        return "updated", client.request("PATCH", url, {"body": body})[0]
    url = f"/repos/{repo}/issues/{pr}/comments"
    return "created", client.request("POST", url, {"body": body})[0]


# --------------------------------------------------------------------- annotations


def escape_data(text: str) -> str:
    """Escape a workflow-command message (``%``, CR, LF) per GitHub's rules."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow-command property value (data rules plus ``:`` and ``,``)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def format_annotations(
    evidence: Mapping[str, Any], max_count: int = DEFAULT_MAX_ANNOTATIONS
) -> list[str]:
    """Return ``::error`` lines for failed stages and failed/errored tests.

    At most ``max_count`` lines; when more problems exist, a final ``::warning``
    line says how many were left out.
    """
    items = [_stage_annotation(s) for s in _failed_stages(evidence)]
    items += [_test_annotation(f) for f in _failed_tests(evidence)]
    lines = items[:max_count]
    if len(items) > max_count:
        left = len(items) - max_count
        lines.append(f"::warning title=kakeya-evidence::{left} more failures; see the report")
    return lines


def _failed_stages(evidence: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    stages = evidence.get("stages") or []
    if isinstance(stages, Mapping):
        stages = [{"name": k, **v} for k, v in stages.items() if isinstance(v, Mapping)]
    # Same rule as the verdict: any stage that did not end "ok" could not run.
    return [s for s in stages if str(s.get("status", "")).lower() not in {"ok", "passed"}]


def _failed_tests(evidence: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    failures = evidence.get("failures")
    if failures is None:
        failures = [t for t in evidence.get("tests") or [] if _outcome(t) in {"failed", "error"}]
    return [f for f in failures if isinstance(f, Mapping)]


def _outcome(test: Mapping[str, Any]) -> str:
    return str(test.get("outcome") or test.get("status") or "").lower()


def _stage_annotation(stage: Mapping[str, Any]) -> str:
    name = str(stage.get("name") or stage.get("stage") or "stage")
    status = str(stage.get("status") or "did not run")
    detail = str(stage.get("reason") or stage.get("error") or stage.get("message") or "")
    title = escape_property(f"stage {name}: {status}")
    return f"::error title={title}::{escape_data(detail or f'stage {name} {status}')}"


def _test_annotation(failure: Mapping[str, Any]) -> str:
    test_id = str(failure.get("test_id") or failure.get("nodeid") or failure.get("id") or "test")
    message = str(
        failure.get("message")
        or failure.get("first_line")
        or failure.get("error")
        or _outcome(failure)
        or "failed"
    )
    props = []
    file = failure.get("file") or (test_id.split("::", 1)[0] if "::" in test_id else None)
    if file:
        props.append(f"file={escape_property(str(file))}")
    if isinstance(failure.get("line"), int):
        props.append(f"line={failure['line']}")
    title = f"{_outcome(failure) or 'failed'}: {test_id}"
    props.append(f"title={escape_property(title)}")
    return f"::error {','.join(props)}::{escape_data(message)}"


# ---------------------------------------------------------------- gate, baseline


def matches_runtime_path(path: str, globs: tuple[str, ...] = RUNTIME_PATH_GLOBS) -> bool:
    """Return True when ``path`` falls under one of ``globs`` (``dir/**`` or exact)."""
    for glob in globs:
        if glob.endswith("/**") and path.startswith(glob[:-2]):
            return True
        if path == glob:
            return True
    return False


def decide_gate(
    event_name: str, event: Mapping[str, Any], repo: str, client: GitHubClient
) -> tuple[bool, str]:
    """Decide whether the self-hosted Mac job runs for this event.

    Pushes and manual dispatches run. A pull request runs only when it comes from
    ``repo`` itself (never a fork), and then when the ``needs-mac-m4`` label was
    just applied, is already on the PR, or a runtime path changed.

    Returns:
        ``(run, reason)``.

    Raises:
        GitHubApiError: when the changed files cannot be listed.
    """
    if event_name in {"push", "workflow_dispatch"}:
        return True, f"{event_name} event"
    pr = event.get("pull_request") or {}
    if event_name != "pull_request" or not pr:
        return False, f"unsupported event {event_name!r}"
    head_repo = ((pr.get("head") or {}).get("repo") or {}).get("full_name")
    if head_repo != repo:
        return False, f"fork PR from {head_repo!r}: run it by workflow_dispatch after review"
    if event.get("action") == "labeled":
        applied = (event.get("label") or {}).get("name")
        return applied == LABEL, f"label {applied!r} applied"
    if any(label.get("name") == LABEL for label in pr.get("labels") or []):
        return True, f"PR carries {LABEL}"
    files = client.paginate(f"/repos/{repo}/pulls/{pr['number']}/files")
    hit = next((f["filename"] for f in files if matches_runtime_path(f.get("filename", ""))), None)
    return (True, f"runtime path changed: {hit}") if hit else (False, "no runtime path changed")


def fetch_baseline(client: GitHubClient, repo: str, artifact: str, branch: str) -> bytes | None:
    """Return evidence.json from the newest unexpired ``artifact`` built on ``branch``.

    Returns:
        The file's bytes, or None when no such artifact exists.

    Raises:
        GitHubApiError: on a failed request or an artifact without evidence.json.
    """
    for item in client.paginate(f"/repos/{repo}/actions/artifacts?name={artifact}"):
        if item.get("expired") or (item.get("workflow_run") or {}).get("head_branch") != branch:
            continue
        blob = client.download(f"/repos/{repo}/actions/artifacts/{item['id']}/zip")
        return _evidence_from_zip(blob, item["id"])
    return None


def _evidence_from_zip(blob: bytes, artifact_id: int) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            names = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == "evidence.json"]
            if names:
                return archive.read(min(names, key=len))
    except zipfile.BadZipFile as exc:
        raise GitHubApiError(f"artifact {artifact_id}: not a zip archive: {exc}") from None
    raise GitHubApiError(f"artifact {artifact_id} holds no evidence.json")


# ---------------------------------------------------------------------- commands


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pr-comment``, ``annotate`` and ``step-summary`` to the CLI's subparsers."""
    p = subparsers.add_parser("pr-comment", help="create or update the evidence PR comment")
    p.add_argument("--summary", required=True, type=Path, help="summary.md to post")
    p.add_argument("--repo", required=True, help="OWNER/NAME")
    p.add_argument("--pr", required=True, type=int, help="pull request number")
    p.add_argument("--artifact-url", default=None, help="link to the evidence artifact")
    p.add_argument("--run-url", default=None, help="link to the workflow run")
    p.add_argument("--api-url", default=None, help="GitHub API base (env GITHUB_API_URL)")
    p.add_argument("--dry-run", action="store_true", help="print body and action, post nothing")
    p.set_defaults(func=run_pr_comment)

    a = subparsers.add_parser("annotate", help="print ::error lines for failures in evidence.json")
    a.add_argument("--evidence", required=True, type=Path, help="evidence.json")
    a.add_argument("--max", type=int, default=DEFAULT_MAX_ANNOTATIONS, help="cap on lines")
    a.set_defaults(func=run_annotate)

    s = subparsers.add_parser("step-summary", help="append summary.md to $GITHUB_STEP_SUMMARY")
    s.add_argument("--summary", required=True, type=Path, help="summary.md to append")
    s.add_argument("--artifact-url", default=None, help="link to the evidence artifact")
    s.add_argument("--run-url", default=None, help="link to the workflow run")
    s.set_defaults(func=run_step_summary)

    g = subparsers.add_parser("gate", help="decide whether the Mac M4 job runs for this event")
    g.add_argument("--repo", required=True, help="OWNER/NAME (github.repository)")
    g.add_argument("--event-name", required=True, help="github.event_name")
    g.add_argument("--event-path", required=True, type=Path, help="the event payload JSON")
    g.add_argument("--api-url", default=None, help="GitHub API base (env GITHUB_API_URL)")
    g.set_defaults(func=run_gate)

    b = subparsers.add_parser("fetch-baseline", help="fetch main's evidence.json artifact")
    b.add_argument("--repo", required=True, help="OWNER/NAME")
    b.add_argument("--artifact", required=True, help="artifact name uploaded by runs on --branch")
    b.add_argument("--branch", default="main", help="branch whose evidence is the baseline")
    b.add_argument("--output", required=True, type=Path, help="where to write evidence.json")
    b.add_argument("--api-url", default=None, help="GitHub API base (env GITHUB_API_URL)")
    b.set_defaults(func=run_fetch_baseline)


def _client(args: argparse.Namespace) -> GitHubClient:
    api_url = args.api_url or os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL
    return GitHubClient(api_url, _token())


def _bad_repo(command: str, repo: str) -> bool:
    if _REPO_RE.match(repo):
        return False
    print(f"{command}: --repo must look like OWNER/NAME, got {repo!r}", file=sys.stderr)
    return True


def _token() -> str | None:
    return os.environ.get("GITHUB_TOKEN") or os.environ.get("GH_TOKEN") or None


def _write_outputs(values: Mapping[str, str], out: TextIO) -> None:
    """Write step outputs to ``$GITHUB_OUTPUT`` (one ``key=value`` line each) and echo them."""
    target = os.environ.get("GITHUB_OUTPUT")
    lines = [f"{k}={v.replace(chr(10), ' ')}" for k, v in values.items()]
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write("".join(line + "\n" for line in lines))
    for line in lines:
        print(line, file=out)


def run_gate(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Handle ``gate``: write ``run=true|false`` and ``reason`` outputs; 2 on bad input."""
    out = out or sys.stdout
    if _bad_repo("gate", args.repo):
        return 2
    try:
        event = json.loads(args.event_path.read_text(encoding="utf-8"))
        run, reason = decide_gate(args.event_name, event, args.repo, _client(args))
    except (OSError, ValueError) as exc:
        print(f"gate: cannot read {args.event_path}: {exc}", file=sys.stderr)
        return 2
    except GitHubApiError as exc:
        print(f"gate: {exc}", file=sys.stderr)
        return 2
    _write_outputs({"run": "true" if run else "false", "reason": reason}, out)
    return 0


def run_fetch_baseline(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Handle ``fetch-baseline``: 0 when written or when none exists (says so), 2 on errors.

    Writes the ``baseline`` step output: the file's path, or empty when none was found.
    """
    out = out or sys.stdout
    if _bad_repo("fetch-baseline", args.repo):
        return 2
    try:
        data = fetch_baseline(_client(args), args.repo, args.artifact, args.branch)
    except GitHubApiError as exc:
        print(f"fetch-baseline: {exc}", file=sys.stderr)
        return 2
    if data is None:
        print(f"fetch-baseline: no {args.artifact!r} artifact from {args.branch}", file=sys.stderr)
        _write_outputs({"baseline": ""}, out)
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(data)
    _write_outputs({"baseline": str(args.output)}, out)
    return 0


def run_pr_comment(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Handle ``pr-comment``: 0 on success, 2 on bad input or API failure."""
    out = out or sys.stdout
    problem = _validate_comment_args(args)
    if problem:
        print(f"pr-comment: {problem}", file=sys.stderr)
        return 2
    summary = args.summary.read_text(encoding="utf-8")
    body = build_comment_body(summary, args.artifact_url, args.run_url)
    config = CommentConfig(
        repo=args.repo,
        pr=args.pr,
        api_url=args.api_url or os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL,
        token=_token(),
    )
    try:
        return _post_or_preview(config, body, args.dry_run, out)
    except GitHubApiError as exc:
        print(f"pr-comment: {exc}", file=sys.stderr)
        return 2


def _validate_comment_args(args: argparse.Namespace) -> str | None:
    if not _REPO_RE.match(args.repo):
        return f"--repo must look like OWNER/NAME, got {args.repo!r}"
    if args.pr <= 0:
        return f"--pr must be a positive pull request number, got {args.pr}"
    if not args.summary.is_file():
        return f"--summary file not found: {args.summary}"
    return None


def _post_or_preview(config: CommentConfig, body: str, dry_run: bool, out: TextIO) -> int:
    client = GitHubClient(config.api_url, config.token)
    target = f"{config.repo}#{config.pr}"
    if dry_run:
        print(f"dry run: would {_planned_action(client, config)} on {target}", file=out)
        print(body, file=out)
        return 0
    if not config.token:
        print("pr-comment: GITHUB_TOKEN is not set", file=sys.stderr)
        return 2
    action, comment = upsert_comment(client, config.repo, config.pr, body)
    url = (comment or {}).get("html_url", "")
    print(f"pr-comment: {action} comment on {target} ({len(body)} chars) {url}".rstrip(), file=out)
    return 0


def _planned_action(client: GitHubClient, config: CommentConfig) -> str:
    if not config.token:
        return "create or update the marked comment (no token, comments not listed)"
    existing = find_marked_comment(client, config.repo, config.pr)
    if existing is None:
        return "create a new comment"
    return f"update comment {existing['id']}"


def run_annotate(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Handle ``annotate``: 0 after printing (even with failures), 2 on unreadable input."""
    out = out or sys.stdout
    if args.max < 0:
        print(f"annotate: --max must be >= 0, got {args.max}", file=sys.stderr)
        return 2
    try:
        evidence = json.loads(args.evidence.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"annotate: cannot read {args.evidence}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(evidence, Mapping):
        print(f"annotate: {args.evidence} is not a JSON object", file=sys.stderr)
        return 2
    for line in format_annotations(evidence, args.max):
        print(line, file=out)
    return 0


def run_step_summary(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Handle ``step-summary``: append to ``$GITHUB_STEP_SUMMARY`` or print; 2 if no file."""
    out = out or sys.stdout
    if not args.summary.is_file():
        print(f"step-summary: --summary file not found: {args.summary}", file=sys.stderr)
        return 2
    text = fill_links(args.summary.read_text(encoding="utf-8"), args.artifact_url, args.run_url)
    text = truncate_text(text, MAX_STEP_SUMMARY_CHARS)
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        out.write(text)
        return 0
    with open(target, "a", encoding="utf-8") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one of this module's subcommands without the rest of the CLI.

    ``scripts/ci_github.py`` uses it on GitHub-hosted runners where the project
    (and its heavy dependencies) is not installed.
    """
    parser = argparse.ArgumentParser(prog="kakeya-evidence")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
