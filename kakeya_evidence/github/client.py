"""A small GitHub REST client over urllib: JSON in and out, pagination, artifact downloads.

Standard library only, so the GitHub-hosted jobs run it without the project's
dependencies. The token is sent only to the API base it was given for: a
``Link: rel="next"`` URL on another host is refused, and an artifact download
follows its redirect to storage without the Authorization header, as GitHub
documents for the signed storage URL.

GitHub answers a busy moment with 5xx, 429 or a 403 that names a (secondary) rate
limit; :class:`RetryPolicy` retries those, and an unreachable API, with exponential
backoff, waiting at least what ``Retry-After`` or ``x-ratelimit-reset`` asks, and
gives up when the next wait would pass its time budget.
"""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "DEFAULT_API_URL",
    "GitHubApiError",
    "GitHubClient",
    "Response",
    "RetryPolicy",
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
_T = TypeVar("_T")


class GitHubApiError(RuntimeError):
    """A GitHub REST call failed (HTTP error status or unreachable API).

    Attributes:
        status: HTTP status code, or 0 when the API could not be reached.
        message: GitHub's ``message`` field (or the transport error), one line.
        headers: The error response's headers (empty without a response).
    """

    def __init__(
        self,
        summary: str,
        status: int = 0,
        message: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(summary)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to retry a failed request (bounded in attempts and in time)."""

    max_attempts: int = 6
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    budget_s: float = 180.0  # total waiting for one request, never more

    def delay_s(self, error: GitHubApiError, attempt: int, now: float) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up."""
        if attempt >= self.max_attempts or not is_retryable(error):
            return None
        delay = min(self.base_delay_s * 2 ** (attempt - 1), self.max_delay_s)
        asked = _asked_wait_s(error.headers, now)
        return max(delay, asked) if asked is not None else delay


def is_retryable(error: GitHubApiError) -> bool:
    """5xx, 429, an unreachable API, and 403s that are rate limits (not permissions)."""
    if error.status == 0 or error.status == 429 or 500 <= error.status <= 599:
        return True
    if error.status != 403:
        return False
    headers = {k.lower(): v for k, v in error.headers.items()}
    return "rate limit" in error.message.lower() or headers.get("x-ratelimit-remaining") == "0"


def _asked_wait_s(headers: Mapping[str, str], now: float) -> float | None:
    lower = {k.lower(): v.strip() for k, v in headers.items()}
    try:
        if "retry-after" in lower:
            return max(float(lower["retry-after"]), 0.0)
        if lower.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in lower:
            return max(float(lower["x-ratelimit-reset"]) - now, 0.0) + 1.0
    except ValueError:
        return None
    return None


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

    def __init__(
        self,
        api_url: str,
        token: str | None,
        timeout_s: float = _TIMEOUT_S,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._api_url = api_url.rstrip("/")
        self._token = token
        self._timeout_s = timeout_s
        self._retry = retry or RetryPolicy()
        self._sleep = sleep or _sleep
        self._clock = clock or time.time

    def __repr__(self) -> str:  # keeps the token out of logs and tracebacks
        return f"GitHubClient(api_url={self._api_url!r})"

    @property
    def has_token(self) -> bool:
        """Whether requests carry a token."""
        return bool(self._token)

    def with_token(self, token: str | None) -> GitHubClient:
        """The same client (base, timeouts, retries) with another token."""
        return GitHubClient(
            self._api_url, token, self._timeout_s, self._retry, self._sleep, self._clock
        )

    def request(
        self, method: str, path: str, payload: Any = None, token: str | None = None
    ) -> Response:
        """Send one request, retried by the policy; ``path`` is below the API base.

        Args:
            method: HTTP method.
            path: Below the API base, or a full URL on it.
            payload: JSON body, or None.
            token: Use this bearer token for this request instead of the client's.

        Raises:
            GitHubApiError: On an HTTP error status (after the retries), a connection
                failure, a URL outside the API base, or a body that is not JSON.
        """
        return self._retrying(method, lambda: self._request_once(method, path, payload, token))

    def _retrying(self, method: str, call: Callable[[], _T]) -> _T:
        started = self._clock()
        for attempt in range(1, self._retry.max_attempts + 1):
            try:
                return call()
            except GitHubApiError as exc:
                delay = self._retry.delay_s(exc, attempt, self._clock())
                spent = self._clock() - started
                if delay is None or spent + delay > self._retry.budget_s:
                    raise
                print(f"retrying {method} in {delay:.0f} s: {exc}", file=sys.stderr)
                self._sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _request_once(self, method: str, path: str, payload: Any, token: str | None) -> Response:
        url = self._url(path)
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(url, data=data, method=method, headers=self._headers(token))
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
            GitHubApiError: On a failed request (after the retries) or a body over ``max_bytes``.
        """
        return self._retrying("GET", lambda: self._download_once(path, max_bytes))

    def _download_once(self, path: str, max_bytes: int) -> bytes:
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
            headers = dict(exc.headers.items()) if exc.headers else {}
            raise GitHubApiError(
                f"GET (redirected download): HTTP {exc.code}", exc.code, "", headers
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            raise GitHubApiError(f"GET (redirected download): {exc}", 0, str(exc)) from None

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            if not path.startswith(self._api_url + "/"):
                raise GitHubApiError(f"refusing a URL outside {self._api_url}: {path[:200]}")
            return path
        return self._api_url + path

    def _headers(self, token: str | None = None) -> dict[str, str]:
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "kakeya-evidence",
            "Content-Type": "application/json",
        }
        if token or self._token:
            headers["Authorization"] = f"Bearer {token or self._token}"
        return headers


def _http_error(method: str, url: str, exc: urllib.error.HTTPError) -> GitHubApiError:
    raw = exc.read().decode(errors="replace")
    try:
        message = str(json.loads(raw).get("message") or "")
    except (ValueError, AttributeError):
        message = raw[:200]
    message = " ".join(message.split())[:300]
    headers = dict(exc.headers.items()) if exc.headers else {}
    return GitHubApiError(f"{method} {url}: HTTP {exc.code}: {message}", exc.code, message, headers)


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


def _sleep(seconds: float) -> None:
    """The default wait between retries (tests replace it to record the waits)."""
    time.sleep(seconds)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Stops redirects so a storage URL is fetched without the Authorization header."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None
