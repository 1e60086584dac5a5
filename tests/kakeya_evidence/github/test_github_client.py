"""The REST client against the fake GitHub, and the fake against GitHub's documented rules."""

from __future__ import annotations

import pytest
from fake_github import INSTALLATION_TOKEN, REPO, USER_TOKEN, FakeGitHub

from kakeya_evidence.github.client import GitHubApiError, GitHubClient, check_repo, check_sha

SHA = "0" * 40


def client(fake: FakeGitHub, token: str | None = INSTALLATION_TOKEN) -> GitHubClient:
    return GitHubClient(fake.base_url, token)


def annotation(i: int) -> dict:
    return {
        "path": "a.py",
        "start_line": i + 1,
        "end_line": i + 1,
        "annotation_level": "failure",
        "message": f"m{i}",
    }


def test_pagination_follows_link_headers_to_the_last_page(fake):
    for i in range(250):
        fake.add_comment(3, f"c{i}")
    bodies = [c["body"] for c in client(fake).paginate(f"/repos/{REPO}/issues/3/comments")]
    assert bodies == [f"c{i}" for i in range(250)]
    assert [r.path.rsplit("page=", 1)[-1] for r in fake.requests][1:] == ["2", "3"]


def test_a_next_link_to_another_host_is_refused(fake):
    api = client(fake)
    fake.base_url = "http://127.0.0.2:9"  # the fake now writes Link headers to another host
    for i in range(150):
        fake.add_comment(3, f"c{i}")
    pages = api.paginate(f"/repos/{REPO}/issues/3/comments")
    assert len([next(pages) for _ in range(100)]) == 100
    with pytest.raises(GitHubApiError, match="outside"):
        next(pages)
    assert len(fake.requests) == 1


def test_the_fake_requires_and_checks_the_token(fake):
    with pytest.raises(GitHubApiError) as missing:
        client(fake, None).request("GET", f"/repos/{REPO}/issues/1/comments")
    with pytest.raises(GitHubApiError) as bad:
        client(fake, "ghs_wrong").request("GET", f"/repos/{REPO}/issues/1/comments")
    assert (missing.value.status, missing.value.message) == (401, "Requires authentication")
    assert (bad.value.status, bad.value.message) == (401, "Bad credentials")


def test_get_user_is_403_for_an_installation_token_and_200_for_a_user(fake):
    with pytest.raises(GitHubApiError) as caught:
        client(fake).request("GET", "/user")
    assert caught.value.status == 403
    assert caught.value.message == "Resource not accessible by integration"
    assert client(fake, USER_TOKEN).request("GET", "/user").data["login"] == "maintainer"


def test_comments_carry_their_author_and_reject_bodies_over_65536(fake):
    api = client(fake)
    made = api.request("POST", f"/repos/{REPO}/issues/5/comments", {"body": "x" * 65_536})
    assert made.status == 201
    assert made.data["user"] == {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"}
    with pytest.raises(GitHubApiError) as caught:
        api.request("POST", f"/repos/{REPO}/issues/5/comments", {"body": "x" * 65_537})
    assert caught.value.status == 422


def test_check_runs_take_at_most_50_annotations_per_request_and_append(fake):
    api = client(fake)
    output = {"title": "t", "summary": "s"}
    body = {"name": "n", "head_sha": SHA, "output": {**output, "annotations": []}}
    with pytest.raises(GitHubApiError) as caught:
        too_many = [annotation(i) for i in range(51)]
        api.request(
            "POST",
            f"/repos/{REPO}/check-runs",
            {**body, "output": {**output, "annotations": too_many}},
        )
    assert caught.value.status == 422
    run = api.request("POST", f"/repos/{REPO}/check-runs", body)
    assert run.status == 201
    url = f"/repos/{REPO}/check-runs/{run.data['id']}"
    for start in (0, 50):
        batch = [annotation(i) for i in range(start, start + 50)]
        assert api.request("PATCH", url, {"output": {**output, "annotations": batch}}).status == 200
    done = api.request("PATCH", url, {"conclusion": "failure", "output": output})
    assert done.data["status"] == "completed"
    assert done.data["output"]["annotations_count"] == 100


@pytest.mark.parametrize(
    "broken",
    [
        {"status": "completed"},  # no conclusion
        {"conclusion": "passed"},  # not a conclusion GitHub knows
        {"head_sha": "abc123"},
        {"output": {"title": "t"}},  # summary missing
        {"output": {"title": "t", "summary": "s" * 65_536}},
        {"output": {"title": "t", "summary": "s", "annotations": [{"path": "a.py"}]}},
    ],
)
def test_the_fake_rejects_what_the_checks_api_rejects(fake, broken):
    body = {"name": "n", "head_sha": SHA, **broken}
    with pytest.raises(GitHubApiError) as caught:
        client(fake).request("POST", f"/repos/{REPO}/check-runs", body)
    assert caught.value.status == 422


def test_artifact_downloads_follow_the_redirect_without_the_token(fake):
    item = fake.add_artifact("evidence", b"zip-bytes", head_branch="main")
    data = client(fake).download(f"/repos/{REPO}/actions/artifacts/{item['id']}/zip")
    storage = [r for r in fake.requests if r.path.startswith("/storage/")]
    assert data == b"zip-bytes"
    assert storage[0].authorization is None
    assert fake.requests[0].authorization == f"Bearer {INSTALLATION_TOKEN}"


def test_downloads_over_the_size_cap_are_refused(fake):
    item = fake.add_artifact("evidence", b"x" * 2000, head_branch="main")
    with pytest.raises(GitHubApiError, match="larger than"):
        client(fake).download(f"/repos/{REPO}/actions/artifacts/{item['id']}/zip", max_bytes=1000)


def test_the_client_never_shows_its_token(fake):
    api = client(fake)
    assert INSTALLATION_TOKEN not in repr(api)
    fake.fail_status = 500
    with pytest.raises(GitHubApiError) as caught:
        api.request("GET", f"/repos/{REPO}/issues/1/comments")
    assert INSTALLATION_TOKEN not in str(caught.value)


@pytest.mark.parametrize("repo", ["octo", "octo/kakeya/x", "../etc", "a/b c", "a/b;rm", ""])
def test_check_repo_refuses_anything_but_owner_name(repo):
    with pytest.raises(ValueError, match="OWNER/NAME"):
        check_repo(repo)


@pytest.mark.parametrize("sha", ["abc1234", "A" * 40, "g" * 40, "0" * 39, "refs/pull/1/head"])
def test_check_sha_wants_a_full_lowercase_commit_id(sha):
    with pytest.raises(ValueError, match="full commit SHA"):
        check_sha(sha)
    assert check_sha("0a" * 20) == "0a" * 20
