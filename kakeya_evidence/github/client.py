"""A small GitHub REST client over urllib: JSON in and out, pagination, artifact downloads.

Standard library only, so the GitHub-hosted jobs run it without the project's
dependencies. The token is sent only to the API base it was given for: a
``Link: rel="next"`` URL on another host is refused, and an artifact download
follows its redirect to storage without the Authorization header, as GitHub
documents for the signed storage URL.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_API_URL",
    "GitHubApiError",
    "GitHubClient",
    "Response",
    "check_repo",
    "check_sha",
]

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
PER_PAGE = 100  # the largest page GitHub's list endpoints serve
MAX_PAGES = 100
MAX_DOWNLOAD_BYTES = 256 * 1024 * 1024
_TIMEOUT_S = 30.0
_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
# A full commit id: SHA-1 (40 hex) or, in SHA-256 repositories, 64 hex.
_SHA_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_NEXT_LINK_RE = re.compile(r'<([^>]+)>;\s*rel="next"')


class GitHubApiError(RuntimeError):
    """A GitHub REST call failed (HTTP error status or unreachable API).

    Attributes:
        status: HTTP status code, or 0 when the API could not be reached.
        message: GitHub's ``message`` field (or the transport error), one line.
    """

    def __init__(self, summary: str, status: int = 0, message: str = "") -> None:
        super().__init__(summary)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Response:
    """One decoded API response."""

    status: int
    data: Any
    headers: Mapping[str, str]


def check_repo(repo: str) -> str:
    """Return ``repo`` when it looks like OWNER/NAME.

    Raises:
        ValueError: It does not (it would otherwise be spliced into API paths).
    """
    if not _REPO_RE.match(repo or "") or ".." in repo:
        raise ValueError(f"repo must look like OWNER/NAME, got {repo!r}")
    return repo


def check_sha(sha: str, field: str = "sha") -> str:
    """Return ``sha`` when it is a full commit id (40 or 64 lowercase hex digits).

    Raises:
        ValueError: It is short, a branch name, or anything else.
    """
    if not _SHA_RE.match(sha or ""):
        raise ValueError(f"{field} must be a full commit SHA (40 hex digits), got {sha!r}")
    return sha


class GitHubClient:
    """Minimal GitHub REST client (JSON in, JSON out)."""

    def __init__(self, api_url: str, token: str | None, timeout_s: float = _TIMEOUT_S) -> None:
        self._api_url = api_url.rstrip("/")
        self._token = token
        self._timeout_s = timeout_s

    def __repr__(self) -> str:  # keeps the token out of logs and tracebacks
        return f"GitHubClient(api_url={self._api_url!r})"

    @property
    def has_token(self) -> bool:
        """Whether requests carry a token."""
        return bool(self._token)

    def request(self, method: str, path: str, payload: Any = None) -> Response:
        """Send one request; ``path`` is below the API base (or a full URL on it).

        Raises:
            GitHubApiError: On an HTTP error status, a connection failure, a URL
                outside the API base, or a body that is not JSON.
        """
        url = self._url(path)
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(url, data=data, method=method, headers=self._headers())
        try:
            with urllib.request.urlopen(req, timeout=self._timeout_s) as resp:
                raw, status, headers = resp.read(), resp.status, dict(resp.headers.items())
        except urllib.error.HTTPError as exc:
            raise _http_error(method, url, exc) from None
        except (urllib.error.URLError, OSError) as exc:
            raise GitHubApiError(f"{method} {url}: {exc}", 0, str(exc)) from None
        try:
            return Response(status, json.loads(raw) if raw else None, headers)
        except ValueError:
            raise GitHubApiError(f"{method} {url}: response is not JSON", status) from None

    def paginate(self, path: str, max_pages: int = MAX_PAGES) -> Iterator[Any]:
        """Yield the items of every page of a list endpoint, following ``Link: rel=next``.

        Raises:
            GitHubApiError: On a failed request.
        """
        sep = "&" if "?" in path else "?"
        url: str | None = f"{path}{sep}per_page={PER_PAGE}"
        for _ in range(max_pages):
            if url is None:
                return
            response = self.request("GET", url)
            yield from _page_items(response.data)
            url = _next_link(response.headers)

    def download(self, path: str, max_bytes: int = MAX_DOWNLOAD_BYTES) -> bytes:
        """GET an endpoint that redirects to storage; the token is not forwarded there.

        Raises:
            GitHubApiError: On a failed request or a body over ``max_bytes``.
        """
        req = urllib.request.Request(self._url(path), headers=self._headers())
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(req, timeout=self._timeout_s) as resp:
                return _read_capped(resp, max_bytes, req.full_url)
        except urllib.error.HTTPError as exc:
            location = exc.headers.get("Location") if exc.code in {301, 302, 303, 307} else None
            if not location:
                raise _http_error("GET", req.full_url, exc) from None
        except (urllib.error.URLError, OSError) as exc:
            raise GitHubApiError(f"GET {req.full_url}: {exc}", 0, str(exc)) from None
        return self._fetch_plain(location, max_bytes)

    def _fetch_plain(self, url: str, max_bytes: int) -> bytes:
        req = urllib.request.Request(url, headers={"User-Agent": "kakeya-evidence"})
        try:
            with urllib.request.urlopen(req, timeout=self._timeout_s) as resp:
                return _read_capped(resp, max_bytes, "redirected download")
        except urllib.error.HTTPError as exc:
            raise GitHubApiError(f"GET (redirected download): HTTP {exc.code}", exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            raise GitHubApiError(f"GET (redirected download): {exc}", 0, str(exc)) from None

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            if not path.startswith(self._api_url + "/"):
                raise GitHubApiError(f"refusing a URL outside {self._api_url}: {path[:200]}")
            return path
        return self._api_url + path

    def _headers(self) -> dict[str, str]:
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "kakeya-evidence",
            "Content-Type": "application/json",
        }
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers


def _http_error(method: str, url: str, exc: urllib.error.HTTPError) -> GitHubApiError:
    raw = exc.read().decode(errors="replace")
    try:
        message = str(json.loads(raw).get("message") or "")
    except (ValueError, AttributeError):
        message = raw[:200]
    message = " ".join(message.split())[:300]
    return GitHubApiError(f"{method} {url}: HTTP {exc.code}: {message}", exc.code, message)


def _read_capped(resp: Any, max_bytes: int, what: str) -> bytes:
    data = resp.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise GitHubApiError(f"GET {what}: body larger than {max_bytes} bytes")
    return data


def _page_items(page: Any) -> list[Any]:
    """Items of one list page: a JSON array, or the array inside an object (artifacts)."""
    if isinstance(page, Mapping):
        return next((v for v in page.values() if isinstance(v, list)), [])
    return list(page or [])


def _next_link(headers: Mapping[str, str]) -> str | None:
    link = next((v for k, v in headers.items() if k.lower() == "link"), "")
    match = _NEXT_LINK_RE.search(link)
    return match.group(1) if match else None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Stops redirects so a storage URL is fetched without the Authorization header."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None
