"""A fake of the GitHub REST API, served for real on 127.0.0.1 port 0.

It behaves as GitHub's REST documentation describes the parts that
``kakeya_evidence.github`` uses, so that a test passing here means something:

- authentication: a request without a token is 401 "Requires authentication", an
  unknown token 401 "Bad credentials". ``GET /user`` answers a user token with its
  user and an installation token (what ``GITHUB_TOKEN`` is) with 403 "Resource not
  accessible by integration";
- authorship: a comment carries ``user.login`` and ``user.type`` of the token that
  wrote it (``github-actions[bot]``, ``Bot`` for the workflow token). Like GitHub, the
  fake lets a token with write access edit anyone's comment: refusing to is the
  client's job;
- issue comments: bodies over 65,536 characters are 422 "Validation Failed";
- pagination: ``per_page`` (default 30, at most 100) and ``page``, with a ``Link``
  header carrying ``next``/``last`` (and ``prev``/``first``) like GitHub's;
- the Checks API: create (201) and update (200) check runs; ``conclusion`` is required
  with ``status: completed`` and completes the run; ``output`` needs ``title`` and
  ``summary`` (each text at most 65,535 characters); ``output.annotations`` takes at
  most 50 per request (422 beyond) and each update appends to the run's annotations;
- artifacts: listed newest first (``{"total_count", "artifacts"}``), and the zip is a
  302 redirect to a storage URL that needs no token (an expired artifact is 410);
- what the real one does when it is busy or strict: permission 403s "Resource not
  accessible by integration" for a token lacking a permission (``permissions`` of an
  identity), 5xx and 429 with ``Retry-After`` or a rate-limit 403 with
  ``x-ratelimit-reset`` (:meth:`FakeGitHub.fail_next`), 422 "No commit found for SHA"
  when ``commits`` is set and lacks the SHA, 409 for an artifact name uploaded twice in
  a run without ``overwrite`` (:meth:`FakeGitHub.upload_artifact`), ``details_url``
  ignored for the GitHub Actions app, and check runs of several apps on one commit;
- the rest (workflow runs, runner groups, the App's JWT and installation tokens) lives
  in ``fake_github_actions``.

Every request is recorded (method, path, Authorization header, body).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import fake_github_actions as actions

INSTALLATION_TOKEN = "ghs_installationTOKEN0123456789"
REPO = "octo/kakeya"  # the repository the tests publish to
USER_TOKEN = "ghp_personalTOKEN0123456789"
BOT = {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"}
ACTIONS_APP = {"id": 15368, "slug": "github-actions"}
NOT_ACCESSIBLE = "Resource not accessible by integration"
MAX_COMMENT_CHARS = 65_536
MAX_OUTPUT_CHARS = 65_535
MAX_ANNOTATIONS_PER_REQUEST = 50
MAX_LISTED_PR_FILES = 3000
CHECK_STATUSES = {"queued", "in_progress", "completed"}
CONCLUSIONS = {
    "action_required", "cancelled", "failure", "neutral", "success", "skipped", "timed_out",
}  # fmt: skip
ANNOTATION_LEVELS = {"notice", "warning", "failure"}
_SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    authorization: str | None
    body: Any


@dataclass
class FakeGitHub:
    """State of the fake: identities, comments, PR files, check runs, artifacts."""

    identities: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            INSTALLATION_TOKEN: {**BOT, "installation": True, "app": ACTIONS_APP},
            USER_TOKEN: {"login": "maintainer", "id": 7, "type": "User", "installation": False},
        }
    )
    heads: dict[int, str] = field(default_factory=dict)  # pull request -> head SHA
    commits: set[str] = field(default_factory=set)  # when set, the only SHAs that exist
    failures: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    uploads: dict[tuple[int, str], bytes] = field(default_factory=dict)  # (run, name) -> data
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)  # workflow runs by id
    repo_info: dict[str, Any] = field(default_factory=dict)
    repo_runners: list[dict[str, Any]] = field(default_factory=list)
    runner_groups: list[dict[str, Any]] = field(default_factory=list)
    approval_policy: str = "all_external_contributors"
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)  # app id -> app
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    files: dict[int, list[str]] = field(default_factory=dict)
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    zips: dict[int, bytes] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    base_url: str = ""
    fail_status: int | None = None
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1001))

    def add_comment(self, pr: int, body: str, user: dict[str, Any] | None = None) -> dict:
        """Store a comment as if ``user`` (a human by default) had posted it."""
        author = user or {"login": "octocat", "id": 1, "type": "User"}
        cid = next(self._ids)
        comment = {
            "id": cid,
            "body": body,
            "user": {k: author[k] for k in ("login", "id", "type")},
            "html_url": f"https://github.com/o/r/pull/{pr}#issuecomment-{cid}",
            "performed_via_github_app": None,
        }
        self.comments.setdefault(pr, []).append(comment)
        return comment

    def add_artifact(self, name: str, zip_bytes: bytes, **run: Any) -> dict[str, Any]:
        """Store an artifact and its workflow run (``event`` push by default), newest first."""
        aid = next(self._ids)
        workflow_run = {"id": aid * 10, "repository_id": 1, "head_repository_id": 1, **run}
        expired = bool(workflow_run.pop("expired", False))
        details = {k: workflow_run.pop(k) for k in ("event", "path") if k in workflow_run}
        item = {"id": aid, "name": name, "expired": expired, "workflow_run": workflow_run}
        self.artifacts.insert(0, item)
        self.zips[aid] = zip_bytes
        self.runs.setdefault(
            int(workflow_run["id"]),
            {
                **workflow_run,
                "event": "push",
                "path": ".github/workflows/integration.yaml",
                "status": "completed",
                "head_repository": {"id": workflow_run["head_repository_id"]},
                "repository": {"id": workflow_run["repository_id"]},
                **details,
            },
        )
        return item

    def fail_next(
        self, status: int, headers: dict[str, str] | None = None, message: str = "", count: int = 1
    ) -> None:
        """Answer the next ``count`` API requests with ``status`` (then behave again)."""
        text = message or {502: "Bad Gateway", 503: "Service Unavailable"}.get(status, "boom")
        self.failures.extend([(status, dict(headers or {}), text)] * count)

    def upload_artifact(self, run_id: int, name: str, data: bytes, overwrite: bool) -> int:
        """What upload-artifact v4+ meets: 409 for a name the run already has, unless
        ``overwrite`` deletes the old one first. Returns the HTTP status."""
        if (run_id, name) in self.uploads and not overwrite:
            return 409
        self.uploads[(run_id, name)] = data
        return 201

    def add_check_run(self, sha: str, app: dict[str, Any], **fields: Any) -> dict[str, Any]:
        """A check run another app (or an earlier publish) left on ``sha``."""
        rid = next(self._ids)
        run = {
            "id": rid, "name": "Mac M4 evidence", "head_sha": sha, "status": "completed",
            "conclusion": "success", "app": dict(app), "annotations": [], "output": {},
            "external_id": "", "html_url": f"https://github.com/o/r/runs/{rid}", **fields,
        }  # fmt: skip
        self.check_runs[rid] = run
        return run

    def annotations(self, run_id: int) -> list[dict[str, Any]]:
        """Every annotation the check run holds."""
        return self.check_runs[run_id]["annotations"]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        return

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self.send_json(400, {"message": "Problems parsing JSON"})
            return
        auth = self.headers.get("Authorization")
        state.requests.append(Recorded(method, self.path, auth, body))
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path.startswith("/storage/"):
            _storage(self, state, url.path)
            return
        if state.failures:
            status, headers, message = state.failures.pop(0)
            self.send_json(status, {"message": message}, headers)
            return
        identity = self._identity(state, auth)
        if identity is None:
            return
        if state.fail_status:
            self.send_json(state.fail_status, {"message": "boom"})
            return
        for pattern, needs, handler in _ROUTES:
            match = re.fullmatch(pattern, f"{method} {url.path}")
            if not match:
                continue
            if identity.get("jwt") and needs != "jwt":
                self.send_json(401, {"message": "A JSON web token cannot be used here"})
            elif needs == "jwt" and not identity.get("jwt"):
                self.send_json(401, {"message": "A JSON web token could not be decoded"})
            elif not _granted(identity, needs):
                self.send_json(403, {"message": NOT_ACCESSIBLE})
            else:
                handler(self, state, identity, query, body, *match.groups())
            return
        self.send_json(404, {"message": "Not Found"})

    def _identity(self, state: FakeGitHub, auth: str | None) -> dict[str, Any] | None:
        if not auth:
            self.send_json(401, {"message": "Requires authentication"})
            return None
        token = auth.removeprefix("Bearer ").removeprefix("token ")
        if token.count(".") == 2:
            identity, problem = actions.verify_jwt(state, token)
            if identity is None:
                self.send_json(401, {"message": problem})
            return identity
        identity = state.identities.get(token)
        if identity is None:
            self.send_json(401, {"message": "Bad credentials"})
        return identity

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def send_page(self, items: list[Any], query: dict[str, str], path: str, wrap: str = "") -> None:
        per_page = min(int(query.get("per_page", "30")), 100)
        page = max(int(query.get("page", "1")), 1)
        last = max((len(items) + per_page - 1) // per_page, 1)
        chunk = items[(page - 1) * per_page : page * per_page]
        base = f"{self.server.state.base_url}{path}"
        rels = {"next": page + 1, "last": last} if page < last else {}
        if page > 1:
            rels.update({"prev": page - 1, "first": 1})
        links = [f'<{base}?{urlencode({**query, "page": n})}>; rel="{r}"' for r, n in rels.items()]
        headers = {"Link": ", ".join(links)} if links else {}
        payload: Any = {"total_count": len(items), wrap: chunk} if wrap else chunk
        self.send_json(200, payload, headers)

    def validation_failed(self, message: str, field_name: str = "") -> None:
        error = {"code": "custom", "field": field_name, "message": message}
        self.send_json(422, {"message": "Validation Failed", "errors": [error]})


# ------------------------------------------------------------------------- users


def _get_user(h: _Handler, _s: FakeGitHub, me: dict, *_: Any) -> None:
    if me["installation"]:
        h.send_json(
            403,
            {
                "message": "Resource not accessible by integration",
                "documentation_url": "https://docs.github.com/rest/users/users#get-the-authenticated-user",
            },
        )
        return
    h.send_json(200, {k: me[k] for k in ("login", "id", "type")})


# ---------------------------------------------------------------------- comments


def _list_comments(h: _Handler, s: FakeGitHub, _me: dict, q: dict, _b: Any, repo: str, pr: str):
    h.send_page(s.comments.get(int(pr), []), q, f"/repos/{repo}/issues/{pr}/comments")


def _comment_body_problem(body: Any) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("body"), str):
        return "body is missing"
    if len(body["body"]) > MAX_COMMENT_CHARS:
        return f"body is too long (maximum is {MAX_COMMENT_CHARS} characters)"
    return None


def _create_comment(h: _Handler, s: FakeGitHub, me: dict, _q: dict, b: Any, _r: str, pr: str):
    problem = _comment_body_problem(b)
    if problem:
        h.validation_failed(problem, "body")
        return
    h.send_json(201, s.add_comment(int(pr), b["body"], me))


def _update_comment(h: _Handler, s: FakeGitHub, _me: dict, _q: dict, b: Any, _r: str, cid: str):
    problem = _comment_body_problem(b)
    if problem:
        h.validation_failed(problem, "body")
        return
    for comment in (c for cs in s.comments.values() for c in cs):
        if comment["id"] == int(cid):
            comment["body"] = b["body"]
            h.send_json(200, comment)
            return
    h.send_json(404, {"message": "Not Found"})


# ---------------------------------------------------------------- pull requests


def _get_pull(h: _Handler, s: FakeGitHub, _me: dict, _q: dict, _b: Any, _repo: str, pr: str):
    if int(pr) not in s.heads:
        h.send_json(404, {"message": "Not Found"})
        return
    h.send_json(200, {"number": int(pr), "head": {"sha": s.heads[int(pr)]}, "state": "open"})


def _list_files(h: _Handler, s: FakeGitHub, _me: dict, q: dict, _b: Any, repo: str, pr: str):
    names = s.files.get(int(pr), [])[:MAX_LISTED_PR_FILES]
    items = [{"filename": name, "status": "modified"} for name in names]
    h.send_page(items, q, f"/repos/{repo}/pulls/{pr}/files")


# ------------------------------------------------------------------------ checks


def _check_problem(body: Any, creating: bool) -> str | None:
    if not isinstance(body, dict):
        return "body must be an object"
    if creating and not (isinstance(body.get("name"), str) and body["name"]):
        return "name is required"
    if creating and not _SHA.match(str(body.get("head_sha") or "")):
        return "head_sha is not a valid commit SHA"
    if body.get("status") is not None and body["status"] not in CHECK_STATUSES:
        return f"status {body['status']!r} is not included in the list"
    if body.get("conclusion") is not None and body["conclusion"] not in CONCLUSIONS:
        return f"conclusion {body['conclusion']!r} is not included in the list"
    if body.get("status") == "completed" and not body.get("conclusion"):
        return "conclusion is required when status is completed"
    output = body.get("output")
    return None if output is None else _output_problem(output)


def _output_problem(output: Any) -> str | None:
    if not isinstance(output, dict):
        return "output must be an object"
    for key in ("title", "summary"):
        if not isinstance(output.get(key), str):
            return f"output.{key} is required"
    for key in ("summary", "text"):
        if len(output.get(key) or "") > MAX_OUTPUT_CHARS:
            return f"output.{key} is too long (maximum is {MAX_OUTPUT_CHARS} characters)"
    annotations = output.get("annotations") or []
    if len(annotations) > MAX_ANNOTATIONS_PER_REQUEST:
        return f"output.annotations: at most {MAX_ANNOTATIONS_PER_REQUEST} per request"
    return next(filter(None, map(_annotation_problem, annotations)), None)


def _annotation_problem(a: Any) -> str | None:
    if not isinstance(a, dict):
        return "annotation must be an object"
    for key in ("path", "message"):
        if not isinstance(a.get(key), str) or not a[key]:
            return f"annotation {key} is required"
    for key in ("start_line", "end_line"):
        if not isinstance(a.get(key), int) or a[key] < 1:
            return f"annotation {key} must be a positive integer"
    if a.get("annotation_level") not in ANNOTATION_LEVELS:
        return "annotation_level must be notice, warning or failure"
    if len(a.get("title") or "") > 255 or len(a["message"]) > 65_536:
        return "annotation title or message is too long"
    return None


def _check_view(run: dict[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in run.items() if k != "annotations"}
    output = dict(run.get("output") or {})
    output.pop("annotations", None)
    output["annotations_count"] = len(run["annotations"])
    return {**view, "output": output}


def _apply(run: dict[str, Any], body: dict[str, Any]) -> None:
    for key in ("name", "details_url", "external_id", "started_at", "completed_at", "status"):
        if key == "details_url" and run["app"].get("slug") == ACTIONS_APP["slug"]:
            continue  # GitHub ignores details_url for the GitHub Actions app
        if key in body:
            run[key] = body[key]
    if body.get("conclusion"):
        run["conclusion"], run["status"] = body["conclusion"], "completed"
    if "output" in body:
        output = dict(body["output"])
        run["annotations"].extend(output.pop("annotations", None) or [])
        run["output"] = output


def _create_check(h: _Handler, s: FakeGitHub, me: dict, _q: dict, b: Any, repo: str):
    problem = _check_problem(b, creating=True)
    if problem:
        h.validation_failed(problem)
        return
    if s.commits and b["head_sha"] not in s.commits:
        h.send_json(422, {"message": f"No commit found for SHA: {b['head_sha']}"})
        return
    rid = next(s._ids)
    run = {
        "id": rid,
        "name": b["name"],
        "head_sha": b["head_sha"],
        "status": "queued",
        "conclusion": None,
        "html_url": f"https://github.com/{repo}/runs/{rid}",
        "details_url": f"https://github.com/{repo}/runs/{rid}",
        "external_id": "",
        "app": dict(me.get("app") or ACTIONS_APP),
        "annotations": [],
        "output": {},
    }
    _apply(run, b)
    s.check_runs[rid] = run
    h.send_json(201, _check_view(run))


def _list_checks(h: _Handler, s: FakeGitHub, _me: dict, q: dict, _b: Any, repo: str, ref: str):
    runs = [r for r in s.check_runs.values() if r["head_sha"] == ref]
    if "check_name" in q:
        runs = [r for r in runs if r["name"] == q["check_name"]]
    if "app_id" in q:
        runs = [r for r in runs if str(r["app"].get("id")) == q["app_id"]]
    views = [_check_view(r) for r in sorted(runs, key=lambda r: -r["id"])]
    h.send_page(views, q, f"/repos/{repo}/commits/{ref}/check-runs", wrap="check_runs")


def _update_check(h: _Handler, s: FakeGitHub, me: dict, _q: dict, b: Any, _r: str, rid: str):
    run = s.check_runs.get(int(rid))
    if run is None:
        h.send_json(404, {"message": "Not Found"})
        return
    if run["app"].get("id") != (me.get("app") or ACTIONS_APP).get("id"):
        h.send_json(403, {"message": "Invalid app_id: this check run belongs to another app"})
        return
    problem = _check_problem(b, creating=False)
    if problem:
        h.validation_failed(problem)
        return
    _apply(run, b)
    h.send_json(200, _check_view(run))


# --------------------------------------------------------------------- artifacts


def _list_artifacts(h: _Handler, s: FakeGitHub, _me: dict, q: dict, _b: Any, repo: str):
    name = q.get("name")
    items = [a for a in s.artifacts if name is None or a["name"] == name]
    h.send_page(items, q, f"/repos/{repo}/actions/artifacts", wrap="artifacts")


def _artifact_zip(h: _Handler, s: FakeGitHub, _me: dict, _q: dict, _b: Any, _r: str, aid: str):
    artifact = next((a for a in s.artifacts if a["id"] == int(aid)), None)
    if artifact is None:
        h.send_json(404, {"message": "Not Found"})
        return
    if artifact["expired"]:
        h.send_json(410, {"message": "Artifact has expired"})
        return
    h.send_response(302)
    h.send_header("Location", f"{s.base_url}/storage/{aid}.zip?sig=signed")
    h.send_header("Content-Length", "0")
    h.end_headers()


def _storage(h: _Handler, s: FakeGitHub, path: str) -> None:
    match = re.fullmatch(r"/storage/(\d+)\.zip", path)
    data = s.zips.get(int(match.group(1))) if match else None
    if data is None:
        h.send_json(404, {"message": "Not Found"})
        return
    h.send_response(200)
    h.send_header("Content-Type", "application/zip")
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)


def _granted(identity: dict[str, Any], needs: str) -> bool:
    """Whether the token holds ``needs`` ("checks:write"); no ``permissions``: everything."""
    if needs in {"", "jwt"} or identity.get("permissions") is None:
        return True
    scope, _, level = needs.partition(":")
    held = identity["permissions"].get(scope)
    return held == "write" or (held == "read" and level == "read")


_REPO = r"([^/]+/[^/]+)"
_ROUTES = [
    (r"GET /user", "", _get_user),
    (rf"GET /repos/{_REPO}/issues/(\d+)/comments", "pull_requests:read", _list_comments),
    (rf"POST /repos/{_REPO}/issues/(\d+)/comments", "pull_requests:write", _create_comment),
    (rf"PATCH /repos/{_REPO}/issues/comments/(\d+)", "pull_requests:write", _update_comment),
    (rf"GET /repos/{_REPO}/pulls/(\d+)", "pull_requests:read", _get_pull),
    (rf"GET /repos/{_REPO}/pulls/(\d+)/files", "pull_requests:read", _list_files),
    (rf"POST /repos/{_REPO}/check-runs", "checks:write", _create_check),
    (rf"PATCH /repos/{_REPO}/check-runs/(\d+)", "checks:write", _update_check),
    (rf"GET /repos/{_REPO}/commits/([0-9a-f]+)/check-runs", "checks:read", _list_checks),
    (rf"GET /repos/{_REPO}/actions/artifacts", "actions:read", _list_artifacts),
    (rf"GET /repos/{_REPO}/actions/artifacts/(\d+)/zip", "actions:read", _artifact_zip),
    *actions.ROUTES,
]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: FakeGitHub) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


@contextmanager
def serve_fake_github(state: FakeGitHub | None = None) -> Iterator[FakeGitHub]:
    """Serve a fake GitHub API in a thread; yields its state with ``base_url`` set."""
    state = state or FakeGitHub()
    server = _Server(state)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
