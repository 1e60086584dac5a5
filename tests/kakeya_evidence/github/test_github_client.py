"""The REST client against the fake GitHub, and the fake against GitHub's documented rules."""

from __future__ import annotations

import time

import pytest
from fake_github import INSTALLATION_TOKEN, REPO, USER_TOKEN, FakeGitHub

from kakeya_evidence.github.client import (
    GitHubApiError,
    GitHubClient,
    RetryPolicy,
    check_repo,
    check_sha,
)

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


# ------------------------------------------------------------- a busy GitHub


def test_a_502_then_200_is_retried_after_a_backoff(fake, no_waiting):
    fake.fail_next(502)
    fake.add_comment(3, "hello")
    items = list(client(fake).paginate(f"/repos/{REPO}/issues/3/comments"))
    assert [c["body"] for c in items] == ["hello"]
    assert len(no_waiting) == 1 and no_waiting[0] >= 1


def test_429_waits_what_retry_after_asks(fake, no_waiting):
    fake.fail_next(429, {"Retry-After": "17"}, "too many requests")
    assert client(fake).request("GET", f"/repos/{REPO}/issues/3/comments").status == 200
    assert no_waiting == [17.0]


def test_a_secondary_rate_limit_403_is_retried_until_x_ratelimit_reset(fake, no_waiting):
    reset = int(time.time()) + 30
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)}
    fake.fail_next(403, headers, "API rate limit exceeded for installation")
    fake.fail_next(403, {}, "You have exceeded a secondary rate limit. Please wait.")
    assert client(fake).request("GET", f"/repos/{REPO}/issues/3/comments").status == 200
    assert len(no_waiting) == 2
    assert 29 <= no_waiting[0] <= 32  # until the reset, plus a second
    assert no_waiting[1] >= 1


def test_a_permission_403_is_not_retried(fake, no_waiting):
    fake.identities[INSTALLATION_TOKEN]["permissions"] = {"checks": "read"}
    body = {"name": "n", "head_sha": SHA, "output": {"title": "t", "summary": "s"}}
    with pytest.raises(GitHubApiError) as caught:
        client(fake).request("POST", f"/repos/{REPO}/check-runs", body)
    assert (caught.value.status, caught.value.message) == (
        403,
        "Resource not accessible by integration",
    )
    assert no_waiting == []
    assert len(fake.requests) == 1


def test_retries_are_bounded_in_attempts_and_in_time(fake, no_waiting):
    fake.fail_next(503, count=50)
    with pytest.raises(GitHubApiError) as caught:
        client(fake).request("GET", f"/repos/{REPO}/issues/3/comments")
    assert caught.value.status == 503
    assert len(no_waiting) == RetryPolicy().max_attempts - 1
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    fake.failures.clear()
    fake.fail_next(503, {"Retry-After": "100"}, count=50)
    slow = GitHubClient(fake.base_url, INSTALLATION_TOKEN, sleep=sleep, clock=lambda: now[0])
    with pytest.raises(GitHubApiError):
        slow.request("GET", f"/repos/{REPO}/issues/3/comments")
    assert sum(waits) <= RetryPolicy().budget_s  # gave up before passing the budget


def test_an_unknown_sha_is_422_and_not_retried(fake, no_waiting):
    fake.commits = {"1" * 40}
    body = {"name": "n", "head_sha": SHA, "output": {"title": "t", "summary": "s"}}
    with pytest.raises(GitHubApiError) as caught:
        client(fake).request("POST", f"/repos/{REPO}/check-runs", body)
    assert caught.value.status == 422 and "No commit found for SHA" in caught.value.message
    assert no_waiting == []


def test_downloads_are_retried_too(fake, no_waiting):
    item = fake.add_artifact("evidence", b"zip-bytes", head_branch="main")
    fake.fail_next(500)
    data = client(fake).download(f"/repos/{REPO}/actions/artifacts/{item['id']}/zip")
    assert data == b"zip-bytes" and len(no_waiting) == 1


def test_check_runs_of_several_apps_and_details_url_as_github_does(fake):
    other = {"id": 99, "slug": "someone-else"}
    fake.add_check_run(SHA, other)
    body = {
        "name": "Mac M4 evidence",
        "head_sha": SHA,
        "details_url": "https://example.com/report",
        "output": {"title": "t", "summary": "s"},
    }
    mine = client(fake).request("POST", f"/repos/{REPO}/check-runs", body).data
    assert mine["app"]["slug"] == "github-actions"
    assert mine["details_url"] != "https://example.com/report"  # ignored for GITHUB_TOKEN
    listed = client(fake).request("GET", f"/repos/{REPO}/commits/{SHA}/check-runs").data
    assert {r["app"]["slug"] for r in listed["check_runs"]} == {"github-actions", "someone-else"}
    with pytest.raises(GitHubApiError) as caught:  # another app's check run is not ours
        other_id = next(r["id"] for r in listed["check_runs"] if r["app"]["id"] == 99)
        client(fake).request("PATCH", f"/repos/{REPO}/check-runs/{other_id}", {"status": "queued"})
    assert caught.value.status == 403
