"""``publish`` and ``pending`` never show the wrong attempt, commit or state (fake GitHub)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import fake_github_actions as actions
import pytest
from fake_github import ACTIONS_APP, REPO, FakeGitHub
from test_publish import (
    NEXT_SHA,
    SHA,
    bot_comments,
    evidence,
    publish_argv,
    test_row,
    title,
    write,
    write_record,
)

from kakeya_evidence.github.publish import FALLBACK_WARNING

APP_ID = 777


def attempt_evidence(attempt: int, rows: list[dict[str, Any]] | None = None, **extra: Any):
    data = evidence(rows if rows is not None else [test_row(1, "passed")], **extra)
    data["provenance"] = {"commit": SHA, "run_id": 42, "run_attempt": attempt}
    return data


def runs(fake: FakeGitHub) -> list[dict[str, Any]]:
    return sorted(fake.check_runs.values(), key=lambda r: r["id"])


@pytest.fixture(autouse=True)
def head_of_the_pr(fake: FakeGitHub) -> None:
    fake.heads[7] = SHA


# ------------------------------------------------------------------- attempts


def test_a_rerun_publishes_its_own_attempt_and_refuses_another(fake, cli, tmp_path):
    """Re-run failed jobs: attempt 2's publish must not show attempt 1's verdict."""
    failing = attempt_evidence(1, [test_row(1)])
    rc, _ = cli([*publish_argv(write(tmp_path, failing)), "--run-id", "42", "--run-attempt", "2"])
    (run,) = runs(fake)
    assert rc == 0
    assert run["conclusion"] == "failure"
    assert title(run).startswith("no evidence: no evidence for attempt 2")
    passing = attempt_evidence(2)
    cli([*publish_argv(write(tmp_path, passing)), "--run-id", "42", "--run-attempt", "2"])
    assert runs(fake)[-1]["conclusion"] == "success"
    assert runs(fake)[-1]["external_id"] == "run:42:2"


def test_evidence_of_another_run_with_the_same_attempt_is_refused(fake, cli, tmp_path):
    data = attempt_evidence(1)
    cli([*publish_argv(write(tmp_path, data)), "--run-id", "43", "--run-attempt", "1"])
    assert "no evidence for attempt 1" in title(runs(fake)[-1])


# ------------------------------------------------------- counts and partial runs


def test_removed_and_added_tests_are_counted_in_the_check_and_the_comment(fake, cli, tmp_path):
    removed = [f"tests/integration/test_old.py::test_{i}" for i in range(57)]
    base = {"commit": "0" * 40, "tests": {"removed": removed, "added": ["tests/a.py::test_new"]}}
    cli(publish_argv(write(tmp_path, evidence([test_row(1, "passed")], baseline=base))))
    run = runs(fake)[-1]
    body = bot_comments(fake)[0]["body"]
    assert run["conclusion"] == "success"
    assert "57 tests removed" in title(run) and "1 test added" in title(run)
    assert "**57 tests removed**" in body and "Removed (57)" in body
    assert "No test changed status" not in body


def test_a_run_with_pytest_args_is_a_neutral_partial_run(fake, cli, tmp_path):
    cli([*publish_argv(write(tmp_path, evidence([test_row(1, "passed")]))), "--partial", "-k x"])
    run = runs(fake)[-1]
    assert run["conclusion"] == "neutral"
    assert title(run).startswith("partial run (pytest-args -k x)")
    assert "PARTIAL RUN" in bot_comments(fake)[0]["body"]


def test_a_shard_recorded_in_the_evidence_is_a_partial_run(fake, cli, tmp_path):
    data = evidence([test_row(1, "passed")], suite={"shard": "1/3"})
    cli(publish_argv(write(tmp_path, data)))
    assert runs(fake)[-1]["conclusion"] == "neutral"
    assert "shard 1/3" in title(runs(fake)[-1])


def test_a_failing_partial_run_still_fails(fake, cli, tmp_path):
    cli([*publish_argv(write(tmp_path, evidence([test_row(1)]))), "--partial", "-k x"])
    assert runs(fake)[-1]["conclusion"] == "failure"
    assert "PARTIAL RUN, FAILED" in bot_comments(fake)[0]["body"]


# ---------------------------------------------------- the verdict is main's


def test_a_forged_pass_that_the_record_contradicts_is_a_failure(fake, cli, tmp_path):
    """The PR's code wrote exit_code 0; main's recheck of the raw record finds a failure."""
    directory = write(tmp_path, evidence([test_row(1, "passed"), test_row(2, "passed")]))
    rows = [(test_row(1)["nodeid"], "passed"), (test_row(2)["nodeid"], "failed")]
    write_record(directory / "pytest" / "run0", rows, finished=True)
    cli(publish_argv(directory))
    run = runs(fake)[-1]
    assert run["conclusion"] == "failure"
    assert title(run).startswith("disagreement: junit.xml has 0 failing test cases, the record 1")


def test_a_pass_without_the_raw_record_is_a_failure(fake, cli, tmp_path):
    cli(publish_argv(write(tmp_path, evidence([test_row(1, "passed")]), raw=False)))
    assert title(runs(fake)[-1]).startswith("disagreement: no raw pytest record")


def test_a_pass_whose_pytest_never_finished_is_a_failure(fake, cli, tmp_path):
    directory = write(tmp_path, evidence([test_row(1, "passed")]))
    write_record(directory / "pytest" / "run0", [(test_row(1)["nodeid"], "passed")], False)
    cli(publish_argv(directory))
    assert "pytest never finished" in title(runs(fake)[-1])


def test_a_flaky_test_that_passed_on_the_rerun_agrees(fake, cli, tmp_path):
    rows = [test_row(1, "passed"), test_row(2, "flaky", message="")]
    cli(publish_argv(write(tmp_path, evidence(rows))))
    assert runs(fake)[-1]["conclusion"] == "success"


# ------------------------------------------------------------ truthful states


def test_pending_marks_the_head_in_progress_and_publish_completes_that_check(fake, cli, tmp_path):
    cli(publish_argv(write(tmp_path, evidence([test_row(1, "passed")]))))  # an older verdict
    fake.heads[7] = NEXT_SHA
    argv = ["pending", "--repo", REPO, "--sha", NEXT_SHA, "--pr", "7", "--run-attempt", "1"]
    rc, _ = cli([*argv, "--run-id", "42"])
    pending_run = runs(fake)[-1]
    (comment,) = bot_comments(fake)
    assert rc == 0
    assert (pending_run["head_sha"], pending_run["status"]) == (NEXT_SHA, "in_progress")
    assert f"evidence pending for `{NEXT_SHA[:7]}`" in comment["body"]
    assert "PASSED" not in comment["body"]
    data = evidence([test_row(1, "passed")], provenance={"commit": NEXT_SHA})
    cli(publish_argv(write(tmp_path, data), NEXT_SHA))
    assert len([r for r in runs(fake) if r["head_sha"] == NEXT_SHA]) == 1
    assert fake.check_runs[pending_run["id"]]["conclusion"] == "success"


def test_a_check_left_in_progress_by_a_crash_is_completed_next_time(fake, cli, tmp_path):
    first = fake.add_check_run(SHA, ACTIONS_APP, status="in_progress", conclusion=None)
    second = fake.add_check_run(SHA, ACTIONS_APP, status="in_progress", conclusion=None)
    cli(publish_argv(write(tmp_path, evidence([test_row(1, "passed")]))))
    assert len(runs(fake)) == 2
    assert fake.check_runs[second["id"]]["conclusion"] == "success"  # the newest is reused
    assert fake.check_runs[first["id"]]["conclusion"] == "cancelled"  # never left hanging


def test_a_superseded_run_is_cancelled_and_leaves_the_new_heads_comment_alone(fake, cli, tmp_path):
    fake.heads[7] = NEXT_SHA  # a newer push cancelled this run
    steps = "checkout=success,venv=success,host-check=success,cache=success,pipeline=cancelled"
    argv = [*publish_argv(write(tmp_path, None)), "--job-result", "cancelled", "--steps", steps]
    rc, out = cli(argv)
    run = runs(fake)[-1]
    assert rc == 0
    assert (run["head_sha"], run["conclusion"]) == (SHA, "cancelled")
    assert title(run) == "cancelled: step pipeline cancelled"
    assert fake.comments == {}  # never the comment: SHA is no longer the head
    assert "is not the head of #7" in out


def test_a_cancelled_run_on_the_head_says_cancelled(fake, cli, tmp_path):
    cli([*publish_argv(write(tmp_path, None)), "--job-result", "cancelled"])
    assert "CANCELLED" in bot_comments(fake)[0]["body"]


def test_an_older_run_finishing_late_never_rewrites_the_comment(fake, cli, tmp_path):
    fake.heads[7] = NEXT_SHA
    cli(["pending", "--repo", REPO, "--sha", NEXT_SHA, "--pr", "7"])
    cli(publish_argv(write(tmp_path, evidence([test_row(1)]))))  # SHA's run, late
    (comment,) = bot_comments(fake)
    assert f"pending for `{NEXT_SHA[:7]}`" in comment["body"]
    assert [r["head_sha"] for r in runs(fake) if r["conclusion"] == "failure"] == [SHA]


def test_action_required_never_replaces_a_completed_run_on_the_same_sha(fake, cli, tmp_path):
    """A maintainer dispatched the fork's SHA (success); a later label event says
    action_required for the same SHA: the completed check stands."""
    cli(publish_argv(write(tmp_path, evidence([test_row(1, "passed")]))))
    argv = [*publish_argv(write(tmp_path, None)), "--not-run", "fork PR from x/y"]
    rc, out = cli([*argv, "--not-run-conclusion", "action_required"])
    assert rc == 0
    assert [r["conclusion"] for r in runs(fake)] == ["success"]
    assert "does not replace it" in out


def test_not_run_rewrites_an_existing_comment_for_the_new_head(fake, cli, tmp_path):
    cli(publish_argv(write(tmp_path, evidence([test_row(1, "passed")]))))
    fake.heads[7] = NEXT_SHA
    cli([*publish_argv(write(tmp_path, None), NEXT_SHA), "--not-run", "no runtime path changed"])
    body = bot_comments(fake)[0]["body"]
    assert f"`{NEXT_SHA[:7]}`: NOT RUN" in body and "PASSED" not in body


def test_a_502_then_200_still_publishes(fake, cli, tmp_path, no_waiting):
    fake.fail_next(502)
    rc, _ = cli(publish_argv(write(tmp_path, evidence([test_row(1, "passed")]))))
    assert rc == 0
    assert runs(fake)[-1]["conclusion"] == "success"
    assert "PASSED" in bot_comments(fake)[0]["body"]
    assert no_waiting


def test_a_token_without_checks_write_fails_loudly(fake, cli, tmp_path, capsys):
    fake.identities[next(iter(fake.identities))]["permissions"] = {
        "checks": "read", "pull_requests": "write",
    }  # fmt: skip
    rc, _ = cli(publish_argv(write(tmp_path, evidence([test_row(1, "passed")]))))
    assert rc == 2
    assert "Resource not accessible by integration" in capsys.readouterr().err


# ----------------------------------------------------------------- the App


@pytest.fixture
def app_key(tmp_path_factory, fake, monkeypatch) -> str:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    path = tmp_path_factory.mktemp("app") / "key.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(path), "2048"], check=True, timeout=60)
    out = subprocess.run(
        ["openssl", "rsa", "-in", str(path), "-noout", "-modulus"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    actions.add_app(fake, APP_ID, "kakeya-evidence", int(out.split("=", 1)[1], 16))
    monkeypatch.setenv("KAKEYA_APP_ID", str(APP_ID))
    monkeypatch.setenv("KAKEYA_APP_PRIVATE_KEY", path.read_text())
    return path.read_text()


def test_with_the_app_the_check_is_the_apps_and_a_forged_one_is_ignored(
    fake, cli, tmp_path, app_key
):
    """Forged check: a branch workflow's GITHUB_TOKEN posted "success" (github-actions
    app). The App's publish neither reuses nor trusts it; branch protection requires
    the check from the App."""
    forged = fake.add_check_run(SHA, ACTIONS_APP, status="in_progress", conclusion=None)
    rc, _ = cli(publish_argv(write(tmp_path, evidence([test_row(1)]))))
    ours = [r for r in runs(fake) if r["app"]["slug"] == "kakeya-evidence"]
    assert rc == 0
    assert len(ours) == 1 and ours[0]["conclusion"] == "failure"
    assert not ours[0]["output"]["title"].startswith(FALLBACK_WARNING)
    assert ours[0]["details_url"].endswith("/artifacts/7")  # honoured for an App
    assert fake.check_runs[forged["id"]]["status"] == "in_progress"  # not ours: untouched
    (comment,) = fake.comments[7]
    assert comment["user"]["login"] == "kakeya-evidence[bot]"


def test_app_credentials_that_fail_never_fall_back_to_github_token(
    fake, cli, tmp_path, app_key, monkeypatch, capsys
):
    monkeypatch.setenv("KAKEYA_APP_ID", "999")  # an App the fake does not know
    rc, _ = cli(publish_argv(write(tmp_path, evidence([test_row(1, "passed")]))))
    assert rc == 2
    assert fake.check_runs == {} and fake.comments == {}
    assert "installation token failed" in capsys.readouterr().err


def test_without_the_app_the_title_warns(fake, cli, tmp_path):
    rc, out = cli(publish_argv(write(tmp_path, evidence([test_row(1, "passed")]))))
    assert rc == 0
    assert runs(fake)[-1]["output"]["title"].startswith(FALLBACK_WARNING)
    assert "::warning::" in out


def test_evidence_json_records_the_run_and_attempt(monkeypatch):
    """The tiny edit in report/evidence.py: provenance carries run id and attempt."""
    from kakeya_evidence.report.evidence import collect_provenance

    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    monkeypatch.setenv("GITHUB_RUN_ATTEMPT", "3")
    provenance = collect_provenance({})
    assert (provenance["run_id"], provenance["run_attempt"]) == (42, 3)
    monkeypatch.delenv("GITHUB_RUN_ATTEMPT")
    assert collect_provenance({})["run_attempt"] is None
    json.dumps(provenance)  # stays JSON
