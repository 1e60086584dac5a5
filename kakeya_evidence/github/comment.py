"""The one evidence comment on a pull request, found by marker and by its author.

The comment to rewrite is the one that starts with the marker AND was written by
the token's own identity. Anyone can paste the marker into a comment; editing
theirs would put the bot's words under a human's name (and GitHub lets a token
with write access edit other people's comments, so the API will not stop it).

The identity: ``GET /user`` answers a personal token with its user, but answers
an installation token such as the workflow's ``GITHUB_TOKEN`` with 403 "Resource
not accessible by integration". Comments made with ``GITHUB_TOKEN`` are authored
by ``github-actions[bot]`` (``user.type`` ``Bot``), which is the fallback; a
different app's token can name its own ``<slug>[bot]`` login with ``--bot-login``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kakeya_evidence.github.client import GitHubApiError, GitHubClient
from kakeya_evidence.github.render import MARKER, fit

__all__ = [
    "DEFAULT_BOT_LOGIN",
    "MAX_COMMENT_CHARS",
    "build_comment",
    "find_own_comment",
    "is_own_comment",
    "resolve_login",
    "upsert_comment",
]

DEFAULT_BOT_LOGIN = "github-actions[bot]"
MAX_COMMENT_CHARS = 65_536  # GitHub answers a longer body with 422


def build_comment(markdown: str) -> str:
    """The comment body: the marker line, then the text, kept under GitHub's limit."""
    head = MARKER + "\n"
    return head + fit(markdown, MAX_COMMENT_CHARS - len(head) - 16)


def resolve_login(client: GitHubClient, override: str | None = None) -> str:
    """The login that the token's comments carry.

    Raises:
        GitHubApiError: ``GET /user`` failed other than with the installation-token 403.
    """
    if override:
        return override
    try:
        user = client.request("GET", "/user").data or {}
    except GitHubApiError as exc:
        if exc.status != 403:
            raise
        return DEFAULT_BOT_LOGIN
    return str(user.get("login") or DEFAULT_BOT_LOGIN)


def is_own_comment(comment: Mapping[str, Any], login: str) -> bool:
    """Whether ``comment`` is our evidence comment: our marker, our author."""
    user = comment.get("user") or {}
    if user.get("login") != login:
        return False
    if login.endswith("[bot]") and user.get("type") != "Bot":
        return False  # a user cannot be named "x[bot]", but do not rely on it
    return str(comment.get("body") or "").startswith(MARKER)


def find_own_comment(client: GitHubClient, repo: str, pr: int, login: str) -> dict[str, Any] | None:
    """The first evidence comment ``login`` wrote on the PR, or None (every page is read).

    Raises:
        GitHubApiError: A request failed.
    """
    for comment in client.paginate(f"/repos/{repo}/issues/{pr}/comments"):
        if isinstance(comment, Mapping) and is_own_comment(comment, login):
            return dict(comment)
    return None


def upsert_comment(
    client: GitHubClient, repo: str, pr: int, body: str, login: str
) -> tuple[str, dict[str, Any]]:
    """Rewrite our evidence comment, or create it when there is none.

    Returns:
        ``("updated" | "created", comment JSON)``.

    Raises:
        GitHubApiError: A request failed.
    """
    existing = find_own_comment(client, repo, pr, login)
    if existing is not None:
        url = f"/repos/{repo}/issues/comments/{int(existing['id'])}"
        return "updated", client.request("PATCH", url, {"body": body}).data or {}
    url = f"/repos/{repo}/issues/{pr}/comments"
    return "created", client.request("POST", url, {"body": body}).data or {}
