"""The fake GitHub's Actions, runner and App endpoints (served by ``fake_github``).

- workflow runs: ``GET /repos/{repo}/actions/workflows/{file}/runs`` (``branch``,
  ``status``, ``event`` filters, newest first) and one run's artifacts;
- the repository (``visibility``, ``owner.type``), its runners, the organisation's
  runner groups with their runners and repositories, and the fork pull request
  approval policy, as ``runner-audit`` reads them;
- a GitHub App: ``GET /app``, ``GET /repos/{repo}/installation`` and ``POST
  /app/installations/{id}/access_tokens`` accept only the App's JWT, checked here
  with the App's public key (``n``, ``e`` from ``openssl rsa -modulus``, not from the
  code under test): RS256, ``iss`` the App id, at most 10 minutes between ``iat`` and
  ``exp``, and now within them. The minted token writes as ``<slug>[bot]``, whose
  check runs carry the App.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any

SHA256_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")
_REPO = r"([^/]+/[^/]+)"
_ORG = r"([^/]+)"


def add_app(state: Any, app_id: int, slug: str, n: int, e: int = 65537) -> dict[str, Any]:
    """Register an App (its public key) installed on the fake's repository."""
    app = {"id": app_id, "slug": slug, "n": n, "e": e, "installation_id": app_id * 10}
    state.apps[str(app_id)] = app
    return app


def verify_jwt(state: Any, token: str) -> tuple[dict[str, Any] | None, str]:
    """The App identity of a valid JWT, or (None, GitHub's complaint)."""
    try:
        head_b64, body_b64, sig_b64 = token.split(".")
        header, payload = json.loads(_unb64(head_b64)), json.loads(_unb64(body_b64))
        signature = int.from_bytes(_unb64(sig_b64), "big")
    except ValueError:
        return None, "A JSON web token could not be decoded"
    app = state.apps.get(str(payload.get("iss")))
    if header.get("alg") != "RS256" or app is None:
        return None, "A JSON web token could not be decoded"
    k = (app["n"].bit_length() + 7) // 8
    digest = SHA256_PREFIX + hashlib.sha256(f"{head_b64}.{body_b64}".encode()).digest()
    expected = b"\x00\x01" + b"\xff" * (k - len(digest) - 3) + b"\x00" + digest
    if pow(signature, app["e"], app["n"]).to_bytes(k, "big") != expected:
        return None, "A JSON web token could not be decoded"
    now = time.time()
    iat, exp = payload.get("iat", 0), payload.get("exp", 0)
    if exp - iat > 600 or not iat - 60 <= now <= exp:
        return None, "'Expiration time' claim ('exp') is too far in the future"
    return {"jwt": True, "app": {"id": app["id"], "slug": app["slug"]}, "installation": True}, ""


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# ------------------------------------------------------------------------ the App


def _get_app(h: Any, _s: Any, me: dict, *_: Any) -> None:
    h.send_json(200, {"id": me["app"]["id"], "slug": me["app"]["slug"], "name": "evidence"})


def _get_installation(h: Any, s: Any, me: dict, _q: dict, _b: Any, _repo: str) -> None:
    app = s.apps[str(me["app"]["id"])]
    h.send_json(200, {"id": app["installation_id"], "app_id": app["id"]})


def _mint_token(h: Any, s: Any, me: dict, _q: dict, body: Any, installation: str) -> None:
    app = s.apps[str(me["app"]["id"])]
    if int(installation) != app["installation_id"]:
        h.send_json(404, {"message": "Not Found"})
        return
    token = "ghs_app" + secrets.token_hex(12)
    permissions = dict((body or {}).get("permissions") or {})
    s.identities[token] = {
        "login": f"{app['slug']}[bot]",
        "id": app["id"] * 100,
        "type": "Bot",
        "installation": True,
        "app": {"id": app["id"], "slug": app["slug"]},
        "permissions": permissions or None,
        "repositories": list((body or {}).get("repositories") or []),
    }
    h.send_json(201, {"token": token, "expires_at": "2099-01-01T00:00:00Z"})


# ----------------------------------------------------------------- workflow runs


def _list_runs(h: Any, s: Any, _me: dict, q: dict, _b: Any, repo: str, workflow: str) -> None:
    runs = [r for r in s.runs.values() if str(r.get("path", "")).endswith("/" + workflow)]
    for key in ("branch", "event", "status"):
        if key in q:
            field = "head_branch" if key == "branch" else key
            runs = [r for r in runs if r.get(field) == q[key]]
    runs.sort(key=lambda r: -int(r["id"]))
    path = f"/repos/{repo}/actions/workflows/{workflow}/runs"
    h.send_page(runs, q, path, wrap="workflow_runs")


def _run_artifacts(h: Any, s: Any, _me: dict, q: dict, _b: Any, repo: str, run: str) -> None:
    items = [a for a in s.artifacts if int(a["workflow_run"]["id"]) == int(run)]
    if "name" in q:
        items = [a for a in items if a["name"] == q["name"]]
    h.send_page(items, q, f"/repos/{repo}/actions/runs/{run}/artifacts", wrap="artifacts")


# ---------------------------------------------------------------- runners, groups


def _get_repo(h: Any, s: Any, _me: dict, _q: dict, _b: Any, repo: str) -> None:
    owner = repo.split("/", 1)[0]
    info = {
        "full_name": repo,
        "visibility": "public",
        "private": False,
        "default_branch": "main",
        "owner": {"login": owner, "type": "Organization"},
        **s.repo_info,
    }
    h.send_json(200, info)


def _repo_runners(h: Any, s: Any, _me: dict, q: dict, _b: Any, repo: str) -> None:
    h.send_page(s.repo_runners, q, f"/repos/{repo}/actions/runners", wrap="runners")


def _approval(h: Any, s: Any, *_: Any) -> None:
    h.send_json(200, {"approval_policy": s.approval_policy})


def _groups(h: Any, s: Any, _me: dict, q: dict, _b: Any, org: str) -> None:
    views = [
        {k: v for k, v in g.items() if k not in {"runners", "repositories"}}
        for g in s.runner_groups
    ]
    h.send_page(views, q, f"/orgs/{org}/actions/runner-groups", wrap="runner_groups")


def _group(s: Any, gid: str) -> dict[str, Any]:
    return next((g for g in s.runner_groups if int(g["id"]) == int(gid)), {})


def _group_runners(h: Any, s: Any, _me: dict, q: dict, _b: Any, org: str, gid: str) -> None:
    runners = _group(s, gid).get("runners") or []
    h.send_page(runners, q, f"/orgs/{org}/actions/runner-groups/{gid}/runners", wrap="runners")


def _group_repos(h: Any, s: Any, _me: dict, q: dict, _b: Any, org: str, gid: str) -> None:
    repos = [{"full_name": r} for r in _group(s, gid).get("repositories") or []]
    path = f"/orgs/{org}/actions/runner-groups/{gid}/repositories"
    h.send_page(repos, q, path, wrap="repositories")


ROUTES = [
    (r"GET /app", "jwt", _get_app),
    (rf"GET /repos/{_REPO}/installation", "jwt", _get_installation),
    (r"POST /app/installations/(\d+)/access_tokens", "jwt", _mint_token),
    (rf"GET /repos/{_REPO}/actions/workflows/([^/]+)/runs", "actions:read", _list_runs),
    (rf"GET /repos/{_REPO}/actions/runs/(\d+)/artifacts", "actions:read", _run_artifacts),
    (rf"GET /repos/{_REPO}", "metadata:read", _get_repo),
    (rf"GET /repos/{_REPO}/actions/runners", "administration:read", _repo_runners),
    (
        rf"GET /repos/{_REPO}/actions/permissions/fork-pr-contributor-approval",
        "administration:read",
        _approval,
    ),
    (rf"GET /orgs/{_ORG}/actions/runner-groups", "organization_self_hosted_runners:read", _groups),
    (
        rf"GET /orgs/{_ORG}/actions/runner-groups/(\d+)/runners",
        "organization_self_hosted_runners:read",
        _group_runners,
    ),
    (
        rf"GET /orgs/{_ORG}/actions/runner-groups/(\d+)/repositories",
        "organization_self_hosted_runners:read",
        _group_repos,
    ),
]
