"""A small fake of the GitHub REST API, served for real on 127.0.0.1 port 0.

Only what ``kakeya_evidence.github`` calls: issue comments (list, create,
update), pull request files, artifacts (list, zip download through a redirect).
Lists are paginated with ``per_page`` and a ``Link: rel="next"`` header, like
GitHub. Every request is recorded (method, path, Authorization header) so tests
can check what was sent.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    authorization: str | None
    body: Any


@dataclass
class FakeGitHub:
    """State of the fake: comments per PR, files per PR, artifacts and their zips."""

    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    files: dict[int, list[str]] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    zips: dict[int, bytes] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    base_url: str = ""
    fail_status: int | None = None
    _next_id: int = 1000

    def add_comment(self, pr: int, body: str) -> dict[str, Any]:
        """Store a comment as if someone had posted it."""
        self._next_id += 1
        comment = {"id": self._next_id, "body": body, "html_url": f"https://x/c/{self._next_id}"}
        self.comments.setdefault(pr, []).append(comment)
        return comment


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
        body = json.loads(self.rfile.read(length)) if length else None
        auth = self.headers.get("Authorization")
        state.requests.append(Recorded(method, self.path, auth, body))
        if state.fail_status and self.path.startswith("/repos/"):
            self._send_json(state.fail_status, {"message": "boom"})
            return
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        for pattern, handler in _ROUTES:
            match = re.fullmatch(pattern, f"{method} {url.path}")
            if match:
                handler(self, state, query, body, *match.groups())
                return
        self._send_json(404, {"message": "Not Found"})

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def send_page(self, items: list[Any], query: dict[str, str], path: str) -> None:
        per_page = int(query.get("per_page", "30"))
        page = int(query.get("page", "1"))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(items):
            rest = "&".join(f"{k}={v}" for k, v in query.items() if k != "page")
            headers["Link"] = (
                f'<{self.server.state.base_url}{path}?{rest}&page={page + 1}>; rel="next"'
            )
        self._send_json(200, chunk, headers)


def _list_comments(h: _Handler, s: FakeGitHub, q: dict, _b: Any, repo: str, pr: str) -> None:
    h.send_page(s.comments.get(int(pr), []), q, f"/repos/{repo}/issues/{pr}/comments")


def _create_comment(h: _Handler, s: FakeGitHub, _q: dict, b: Any, _repo: str, pr: str) -> None:
    h._send_json(201, s.add_comment(int(pr), b["body"]))


def _update_comment(h: _Handler, s: FakeGitHub, _q: dict, b: Any, _repo: str, cid: str) -> None:
    for comment in (c for cs in s.comments.values() for c in cs):
        if comment["id"] == int(cid):
            comment["body"] = b["body"]
            h._send_json(200, comment)
            return
    h._send_json(404, {"message": "Not Found"})


def _list_files(h: _Handler, s: FakeGitHub, q: dict, _b: Any, repo: str, pr: str) -> None:
    files = [{"filename": name} for name in s.files.get(int(pr), [])]
    h.send_page(files, q, f"/repos/{repo}/pulls/{pr}/files")


def _list_artifacts(h: _Handler, s: FakeGitHub, q: dict, _b: Any, repo: str) -> None:
    items = [a for a in s.artifacts if a["name"] == q.get("name", a["name"])]
    per_page = int(q.get("per_page", "30"))
    page = int(q.get("page", "1"))
    chunk = items[(page - 1) * per_page : page * per_page]
    h._send_json(200, {"total_count": len(items), "artifacts": chunk})


def _artifact_zip(h: _Handler, s: FakeGitHub, _q: dict, _b: Any, _repo: str, aid: str) -> None:
    h.send_response(302)
    h.send_header("Location", f"{s.base_url}/storage/{aid}.zip?sig=abc")
    h.send_header("Content-Length", "0")
    h.end_headers()


def _storage(h: _Handler, s: FakeGitHub, _q: dict, _b: Any, aid: str) -> None:
    data = s.zips[int(aid)]
    h.send_response(200)
    h.send_header("Content-Type", "application/zip")
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)


_REPO = r"([^/]+/[^/]+)"
_ROUTES = [
    (rf"GET /repos/{_REPO}/issues/(\d+)/comments", _list_comments),
    (rf"POST /repos/{_REPO}/issues/(\d+)/comments", _create_comment),
    (rf"PATCH /repos/{_REPO}/issues/comments/(\d+)", _update_comment),
    (rf"GET /repos/{_REPO}/pulls/(\d+)/files", _list_files),
    (rf"GET /repos/{_REPO}/actions/artifacts", _list_artifacts),
    (rf"GET /repos/{_REPO}/actions/artifacts/(\d+)/zip", _artifact_zip),
    (r"GET /storage/(\d+)\.zip", _storage),
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
