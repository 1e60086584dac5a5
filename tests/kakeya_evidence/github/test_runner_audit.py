"""``runner-audit``: exit 1 naming each unsafe setting, 0 when only main's workflow can reach."""

from __future__ import annotations

from typing import Any

import pytest
from fake_github import REPO, FakeGitHub

from kakeya_evidence.github.runner_audit import allowed_workflow

MAC = {"id": 5, "name": "mac-1", "os": "macOS", "status": "online", "ephemeral": False}
MAC["labels"] = [{"name": n} for n in ("self-hosted", "macOS", "ARM64", "kakeya-mac-m4")]


def safe_group(**changes: Any) -> dict[str, Any]:
    group = {
        "id": 3,
        "name": "kakeya-mac",
        "visibility": "selected",
        "allows_public_repositories": True,
        "restricted_to_workflows": True,
        "selected_workflows": [allowed_workflow(REPO)],
        "default": False,
        "runners": [MAC],
        "repositories": [REPO],
    }
    return {**group, **changes}


@pytest.fixture
def audit(fake: FakeGitHub, cli):
    def run(**state: Any) -> tuple[int, list[str]]:
        fake.runner_groups = state.pop("groups", [safe_group()])
        for key, value in state.items():
            setattr(fake, key, value)
        rc, out = cli(["runner-audit", "--repo", REPO])
        return rc, out.splitlines()

    return run


def unsafe(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("unsafe:")]


def test_the_safe_organisation_setup_passes(audit):
    rc, lines = audit(repo_runners=[MAC])  # the group's runner, listed for the repo too
    assert rc == 0, lines
    assert unsafe(lines) == []
    assert any(
        "restricted to" in line and "integration.yaml@refs/heads/main" in line for line in lines
    )


@pytest.mark.parametrize(
    "group, named",
    [
        (safe_group(restricted_to_workflows=False), "restricted_to_workflows is false"),
        (
            safe_group(
                selected_workflows=[
                    allowed_workflow(REPO),
                    f"{REPO}/.github/workflows/x.yaml@refs/heads/main",
                ]
            ),
            "selected_workflows allows",
        ),
        (
            safe_group(
                selected_workflows=[f"{REPO}/.github/workflows/integration.yaml@refs/heads/dev"]
            ),
            "does not name",
        ),
        (
            safe_group(visibility="all"),
            "visibility all: open to every repository of octo including public ones",
        ),
        (safe_group(repositories=[REPO, "octo/other"]), "also open to octo/other"),
        (safe_group(allows_public_repositories=False), "allows_public_repositories is false"),
    ],
)
def test_each_unsafe_group_setting_is_named(audit, group, named):
    rc, lines = audit(groups=[group])
    assert rc == 1
    assert any(named in line for line in unsafe(lines)), lines


def test_a_repository_level_runner_of_a_public_repository_is_unsafe(audit):
    rc, lines = audit(groups=[], repo_runners=[MAC])
    assert rc == 1
    assert any("registered at repository level of a public repository" in u for u in unsafe(lines))


@pytest.mark.parametrize(
    "state",
    [
        {"repo_info": {"visibility": "private", "private": True}},
        {"repo_runners": [{**MAC, "ephemeral": True}]},
    ],
    ids=["private-repository", "ephemeral-runner"],
)
def test_a_private_repository_or_ephemeral_runners_pass(audit, state):
    rc, lines = audit(groups=[], **({"repo_runners": [MAC]} | state))
    assert rc == 0, lines


def test_a_lax_fork_approval_policy_is_unsafe(audit):
    rc, lines = audit(approval_policy="first_time_contributors")
    assert rc == 1
    assert any("fork PR approval policy is first_time_contributors" in u for u in unsafe(lines))


def test_no_mac_runner_at_all_fails(audit):
    rc, lines = audit(groups=[safe_group(runners=[])], repo_runners=[])
    assert rc == 1 and any("no runner with the label kakeya-mac-m4" in u for u in unsafe(lines))


def test_a_token_that_cannot_read_the_groups_is_unsafe_not_silent(audit, fake):
    fake.identities[next(iter(fake.identities))]["permissions"] = {
        "metadata": "read", "administration": "read",
    }  # fmt: skip
    rc, lines = audit(repo_runners=[MAC])
    assert rc == 1
    assert any("runner groups of octo unreadable (HTTP 403)" in u for u in unsafe(lines))


def test_an_unreadable_repository_exits_2(audit, fake):
    fake.fail_status = 404
    assert audit()[0] == 2
