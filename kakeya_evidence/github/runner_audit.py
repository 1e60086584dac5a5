"""``runner-audit``: can anything but main's ``integration.yaml`` reach the Mac runner?

Runner labels are no security boundary: any workflow file of any branch, or of a
fork's pull request (``pull_request`` runs the PR's copy), may ask for
``[self-hosted, kakeya-mac-m4]``. The runbook's supported setups, in order:

a. an **organisation runner group** holding the Mac, restricted to the one workflow
   ``OWNER/REPO/.github/workflows/integration.yaml@refs/heads/main``
   (``restricted_to_workflows``, ``selected_workflows``) and to this repository alone
   (``visibility: selected``; ``allows_public_repositories`` matters only there);
b. a **private** (or internal) repository;
c. **ephemeral** runners (one job per registration) for anything else.

It also wants the fork pull request approval policy "all external contributors" on a
public repository. Every unsafe setting is one line ``unsafe: ...``; the exit code is 1
when there is any, 0 when the Mac can only be reached as above. Reading the groups
needs a token with the organisation's self-hosted runners (admin) read permission.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kakeya_evidence.github.client import GitHubApiError, GitHubClient
from kakeya_evidence.github.paths import WORKFLOW

__all__ = ["MAC_LABEL", "SAFE_APPROVAL_POLICY", "AuditResult", "allowed_workflow", "audit_runners"]

MAC_LABEL = "kakeya-mac-m4"
SAFE_APPROVAL_POLICY = "all_external_contributors"


@dataclass
class AuditResult:
    """The audit's findings, in the order they were made."""

    unsafe: list[str] = field(default_factory=list)
    ok: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """1 when any setting is unsafe, else 0."""
        return 1 if self.unsafe else 0

    def lines(self) -> list[str]:
        """``unsafe: ...`` lines first, then ``ok: ...``."""
        return [f"unsafe: {u}" for u in self.unsafe] + [f"ok: {o}" for o in self.ok]


def allowed_workflow(repo: str) -> str:
    """The one workflow reference a runner group may allow."""
    return f"{repo}/{WORKFLOW}@refs/heads/main"


def audit_runners(client: GitHubClient, repo: str, label: str = MAC_LABEL) -> AuditResult:
    """Read the repository, its runners and its organisation's runner groups; judge them.

    Raises:
        GitHubApiError: The repository or its runners cannot be read.
    """
    result = AuditResult()
    info = client.request("GET", f"/repos/{repo}").data or {}
    public = str(info.get("visibility") or ("private" if info.get("private") else "public"))
    public_repo = public == "public"
    result.ok.append(f"repository {repo} is {public}")
    if public_repo:
        _audit_approval(client, repo, result)
    repo_runners = [r for r in client.paginate(f"/repos/{repo}/actions/runners") if _mac(r, label)]
    group_runners = _audit_groups(client, repo, info, label, public_repo, result)
    for runner in repo_runners:
        name = str(runner.get("name") or runner.get("id"))
        if name in group_runners:
            continue  # the organisation's runner, listed for the repository too
        _audit_unguarded(runner, name, public_repo, result, "registered at repository level")
    if not repo_runners and not group_runners:
        result.unsafe.append(f"no runner with the label {label} is visible to {repo}")
    return result


def _audit_approval(client: GitHubClient, repo: str, result: AuditResult) -> None:
    url = f"/repos/{repo}/actions/permissions/fork-pr-contributor-approval"
    try:
        policy = str((client.request("GET", url).data or {}).get("approval_policy") or "")
    except GitHubApiError as exc:
        result.unsafe.append(f"fork PR approval policy unreadable (HTTP {exc.status})")
        return
    if policy == SAFE_APPROVAL_POLICY:
        result.ok.append(f"fork PR approval policy {policy}")
    else:
        result.unsafe.append(
            f"fork PR approval policy is {policy or 'unknown'}, not {SAFE_APPROVAL_POLICY}: "
            "a fork's own workflows run without a maintainer's approval"
        )


def _audit_groups(
    client: GitHubClient,
    repo: str,
    info: Mapping[str, Any],
    label: str,
    public_repo: bool,
    result: AuditResult,
) -> dict[str, Mapping[str, Any]]:
    """Audit each organisation group holding a Mac runner; return those runners by name."""
    owner = info.get("owner") or {}
    if owner.get("type") != "Organization":
        result.ok.append("user-owned repository: no runner groups exist")
        return {}
    org = str(owner.get("login") or repo.split("/", 1)[0])
    found: dict[str, Mapping[str, Any]] = {}
    try:
        groups = list(client.paginate(f"/orgs/{org}/actions/runner-groups"))
    except GitHubApiError as exc:
        result.unsafe.append(
            f"runner groups of {org} unreadable (HTTP {exc.status}); "
            "the audit needs a token with organisation self-hosted runners read"
        )
        return found
    for group in groups:
        gid = int(group.get("id") or 0)
        runners = [
            r
            for r in client.paginate(f"/orgs/{org}/actions/runner-groups/{gid}/runners")
            if _mac(r, label)
        ]
        if not runners:
            continue
        problems = _group_problems(client, org, group, repo, public_repo)
        for runner in runners:
            name = str(runner.get("name") or runner.get("id"))
            found[name] = runner
            where = f"in runner group {group.get('name')!r}"
            if not problems:
                result.ok.append(f"runner {name} {where}, restricted to {allowed_workflow(repo)}")
            elif runner.get("ephemeral") is True or not public_repo:
                reason = "ephemeral" if runner.get("ephemeral") is True else "private repository"
                result.ok.append(f"runner {name} {where} ({reason})")
            else:
                result.unsafe.extend(f"runner group {group.get('name')!r}: {p}" for p in problems)
    return found


def _group_problems(
    client: GitHubClient, org: str, group: Mapping[str, Any], repo: str, public_repo: bool
) -> list[str]:
    problems = []
    wanted = allowed_workflow(repo)
    if not group.get("restricted_to_workflows"):
        problems.append("restricted_to_workflows is false: every workflow may use it")
    else:
        others = [w for w in group.get("selected_workflows") or [] if w != wanted]
        if others:
            problems.append(f"selected_workflows allows {', '.join(map(str, others))}")
        if wanted not in (group.get("selected_workflows") or []):
            problems.append(f"selected_workflows does not name {wanted}")
    visibility = str(group.get("visibility") or "all")
    if visibility != "selected":
        public = " including public ones" if group.get("allows_public_repositories") else ""
        problems.append(f"visibility {visibility}: open to every repository of {org}{public}")
    else:
        url = f"/orgs/{org}/actions/runner-groups/{int(group.get('id') or 0)}/repositories"
        names = [str(r.get("full_name")) for r in client.paginate(url)]
        others = [n for n in names if n != repo]
        if others:
            problems.append(f"also open to {', '.join(others)}")
    if public_repo and not group.get("allows_public_repositories"):
        # Not unsafe, but then the public repository cannot use the group at all.
        problems.append(
            "allows_public_repositories is false, so this public repository cannot use it"
        )
    return problems


def _audit_unguarded(
    runner: Mapping[str, Any], name: str, public_repo: bool, result: AuditResult, where: str
) -> None:
    if runner.get("ephemeral") is True:
        result.ok.append(f"runner {name} {where} is ephemeral (one job per registration)")
    elif not public_repo:
        result.ok.append(f"runner {name} {where} of a private repository")
    else:
        result.unsafe.append(
            f"runner {name} is {where} of a public repository and not ephemeral: "
            "any workflow of any branch or pull request can reach it"
        )


def _mac(runner: Any, label: str) -> bool:
    if not isinstance(runner, Mapping):
        return False
    names = {str(item.get("name") or "").lower() for item in runner.get("labels") or []}
    return label.lower() in names
