"""The GitHub workflows: trust boundary, least privilege, labels, wiring, and lint clean."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from expressions import Evaluator, job_runs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kakeya_evidence" / "github"))

from kakeya_evidence.github.gate import MAIN_ARTIFACT
from kakeya_evidence.github.paths import AUTO_LABEL, MAINTAINER_LABEL

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
MAC_RUNNER = ["self-hosted", "macOS", "ARM64", "kakeya-mac-m4"]
# Events whose workflow definition GitHub takes from the pull request itself.
PR_DEFINED_EVENTS = {"pull_request", "pull_request_review", "pull_request_review_comment"}
# Every pinned action, by commit; the version comment must say this release. Found in
# public workflows pinning these releases (upload-artifact v7 adds `archive: false`).
KNOWN_PINS = {
    "actions/checkout": {"de0fac2e4500dabe0009e67214ff5f5447ce83dd": "v6.0.2"},
    "actions/setup-python": {"a309ff8b426b58ec0e2a45f0f869d46889d02405": "v6.2.0"},
    "actions/upload-artifact": {"bbbca2ddaa5d8feaa63e36b76fdaad77386f024f": "v7.0.0"},
    "actions/download-artifact": {"3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c": "v8.0.1"},
    "actions/labeler": {"f27b608878404679385c85cfa523b85ccb86e213": "v6.1.0"},
}
USES = re.compile(r"^\s*(?:-\s+)?uses:\s+(?P<action>[\w.-]+/[\w.-]+)@(?P<ref>\S+)(?P<rest>.*)$")


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def workflow_names() -> list[str]:
    return sorted(p.name for p in WORKFLOWS.glob("*.y*ml"))


def triggers(workflow: dict[str, Any]) -> set[str]:
    on = workflow["on"]
    if isinstance(on, str):
        return {on}
    return set(on)


def runs_on_self_hosted(job: dict[str, Any]) -> bool:
    """True for any runner that may be self-hosted (a runner group counts as one)."""
    runs_on = job.get("runs-on", [])
    if isinstance(runs_on, dict):
        if "group" in runs_on:
            return True
        runs_on = runs_on.get("labels", [])
    labels = [runs_on] if isinstance(runs_on, str) else list(runs_on)
    return any("self-hosted" in str(label).lower() for label in labels)


def self_hosted_jobs_startable_by_a_pr(workflow: dict[str, Any]) -> list[str]:
    if not triggers(workflow) & PR_DEFINED_EVENTS:
        return []
    return [name for name, job in workflow["jobs"].items() if runs_on_self_hosted(job)]


def all_steps() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (name, job_id, step)
        for name in workflow_names()
        for job_id, job in load(name)["jobs"].items()
        for step in job.get("steps", [])
    ]


def integration_jobs() -> dict[str, Any]:
    return load("integration.yaml")["jobs"]


def mac_job() -> tuple[str, dict[str, Any]]:
    return next((k, j) for k, j in integration_jobs().items() if j["runs-on"] == MAC_RUNNER)


def step_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if s.get("uses", "").startswith(action + "@")]


# ------------------------------------------------------------- trust boundary


@pytest.mark.parametrize("name", workflow_names())
def test_no_self_hosted_job_can_be_started_by_a_pull_request_event(name):
    """Fault 1: for these events GitHub runs the PR's own copy of the workflow file."""
    assert self_hosted_jobs_startable_by_a_pr(load(name)) == []


@pytest.mark.parametrize(
    "text",
    [
        "on: pull_request\njobs: {a: {runs-on: [self-hosted, macOS]}}",
        "on: [push, pull_request_review]\njobs: {a: {runs-on: self-hosted}}",
        "on: {pull_request_review_comment: {}}\njobs: {a: {runs-on: {group: macs}}}",
        "on: {pull_request: {}}\njobs: {a: {runs-on: {labels: [Self-Hosted]}}}",
    ],
)
def test_the_trust_check_catches_every_form(text):
    workflow = yaml.safe_load(text)
    workflow["on"] = workflow.pop(True)
    assert self_hosted_jobs_startable_by_a_pr(workflow) == ["a"]


def test_pull_requests_reach_integration_only_as_pull_request_target_on_main():
    on = load("integration.yaml")["on"]
    assert triggers(load("integration.yaml")) == {
        "pull_request_target", "push", "schedule", "workflow_dispatch",
    }  # fmt: skip
    assert on["pull_request_target"]["branches"] == ["main"]
    assert set(on["pull_request_target"]["types"]) == {
        "opened",
        "synchronize",
        "reopened",
        "labeled",
    }
    assert "paths" not in on["pull_request_target"]  # a label on any PR must reach the gate


def test_the_mac_job_runs_only_what_the_gate_decided():
    _name, job = mac_job()
    gate = integration_jobs()[job["needs"]]
    assert gate["runs-on"] == "ubuntu-latest"
    assert "needs.gate.outputs.run == 'true'" in job["if"]
    (checkout,) = step_using(job, "actions/checkout")
    assert checkout["with"]["ref"] == "${{ needs.gate.outputs.sha }}"
    assert any("scripts/ci_github.py gate" in s.get("run", "") for s in gate["steps"])


def test_the_mac_job_holds_no_write_scope_no_secret_and_no_token():
    _name, job = mac_job()
    assert job["permissions"] == {"contents": "read"}
    text = yaml.safe_dump(job)
    assert "secrets." not in text
    assert "github.token" not in text and "GITHUB_TOKEN" not in text


def test_only_github_hosted_jobs_on_mains_code_hold_write_scopes_or_the_token():
    for name in workflow_names():
        for job_id, job in load(name)["jobs"].items():
            perms = job.get("permissions", {})
            writes = [k for k, v in perms.items() if v == "write"]
            if not writes and "github.token" not in yaml.safe_dump(job):
                continue
            assert not runs_on_self_hosted(job), f"{name}/{job_id}"
            if triggers(load(name)) & {"pull_request_target", "workflow_run"}:
                for checkout in step_using(job, "actions/checkout"):
                    assert checkout["with"]["ref"] == "main", f"{name}/{job_id} runs PR code"


def test_publish_runs_after_the_mac_job_whatever_happened_on_mains_code():
    jobs = integration_jobs()
    mac_id, _ = mac_job()
    publish = next(
        j
        for j in jobs.values()
        if any("ci_github.py publish" in s.get("run", "") for s in j["steps"])
    )
    assert publish["runs-on"] == "ubuntu-latest"
    assert mac_id in publish["needs"]
    assert publish["if"].startswith("always()")
    assert publish["permissions"] == {
        "contents": "read",
        "checks": "write",
        "pull-requests": "write",
    }
    (checkout,) = step_using(publish, "actions/checkout")
    assert checkout["with"]["ref"] == "main"
    (download,) = step_using(publish, "actions/download-artifact")
    mac_attempt = "${{ needs.evidence.outputs.attempt || github.run_attempt }}"
    assert download["with"]["name"] == "${{ needs.gate.outputs.artifact }}-" + mac_attempt
    assert download.get("continue-on-error") is True  # no evidence is published as such
    env = next(s for s in publish["steps"] if "run" in s)["env"]
    assert env["REPORT_URL"] == f"${{{{ needs.{mac_id}.outputs.report-url }}}}"
    assert env["JOB_RESULT"] == f"${{{{ needs.{mac_id}.result }}}}"


# ----------------------------------------------------------- who runs, when


def simulate(event_name: str, event: dict[str, Any], gate_out: dict[str, str], mac: str):
    """Which integration jobs start, given the gate's outputs and the Mac job's result."""
    jobs = integration_jobs()
    mac_id, _ = mac_job()
    github = {"event_name": event_name, "event": event, "repository": "octo/kakeya"}
    started: dict[str, bool] = {}
    results: dict[str, dict[str, Any]] = {}
    for job_id in ("gate", "pending", mac_id, "publish"):
        needs = jobs[job_id].get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        context = {"github": github, "needs": {n: results[n] for n in needs}, "inputs": {}}
        started[job_id] = job_runs(
            jobs[job_id].get("if"), context, {n: results[n]["result"] for n in needs}
        )
        result = (
            {"gate": "success", mac_id: mac}.get(job_id, "success")
            if started[job_id]
            else "skipped"
        )
        results[job_id] = {
            "result": result,
            "outputs": gate_out if job_id == "gate" and started[job_id] else {},
        }
    return started


RUN = {"run": "true", "sha": "a" * 40, "artifact": "evidence-mac-m4", "conclusion_if_not_run": ""}


def test_an_unrelated_label_starts_no_job_and_leaves_no_check():
    """Fault 6: no job starts, so nothing can show as skipped-success or overwrite the check."""
    event = {"action": "labeled", "label": {"name": "documentation"}}
    assert simulate("pull_request_target", event, RUN, "success") == {
        "gate": False, "pending": False, mac_job()[0]: False, "publish": False,
    }  # fmt: skip
    for label in (AUTO_LABEL, MAINTAINER_LABEL.upper()):
        expected = label != AUTO_LABEL  # GitHub compares strings without case
        event = {"action": "labeled", "label": {"name": label}}
        assert simulate("pull_request_target", event, RUN, "success")["gate"] is expected


def test_the_maintainers_label_and_pushes_reach_the_mac_job():
    event = {"action": "labeled", "label": {"name": MAINTAINER_LABEL}}
    assert all(simulate("pull_request_target", event, RUN, "success").values())
    assert all(simulate("push", {"ref": "refs/heads/main"}, RUN, "success").values())
    assert simulate("schedule", {}, RUN, "failure")["publish"]


@pytest.mark.parametrize("mac_result", ["failure", "cancelled"])
def test_publish_still_runs_when_the_mac_job_died(mac_result):
    started = simulate("pull_request_target", {"action": "synchronize"}, RUN, mac_result)
    assert started["publish"]


def test_not_running_publishes_a_check_only_when_the_gate_asks_for_one():
    mac_id, _ = mac_job()
    quiet = {**RUN, "run": "false"}
    started = simulate("pull_request_target", {"action": "synchronize"}, quiet, "skipped")
    assert (started[mac_id], started["publish"]) == (False, False)
    neutral = {**quiet, "conclusion_if_not_run": "neutral"}
    started = simulate("pull_request_target", {"action": "synchronize"}, neutral, "skipped")
    assert (started[mac_id], started["publish"]) == (False, True)


def test_the_expression_evaluator_follows_githubs_rules():
    evaluate = Evaluator({"github": {"event": {"x": "A"}}}, {}).evaluate
    assert evaluate("github.event.x == 'a'") is True  # strings compare without case
    assert evaluate("github.event.missing == ''") is True  # null and '' are both 0
    assert evaluate("github.event.x && 'yes' || 'no'") == "yes"
    assert evaluate("!(github.event.x != 'A')") is True
    assert evaluate("'it''s'") == "it's"


# ---------------------------------------------------------- the Mac job itself


def test_mac_job_shape_and_order():
    _, job = mac_job()
    assert job["timeout-minutes"] == 90
    assert (
        job["concurrency"]["cancel-in-progress"]
        == "${{ github.event_name == 'pull_request_target' }}"
    )
    assert "needs.gate.outputs.pr" in job["concurrency"]["group"]
    env = job["env"]
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["KAKEYA_RERUN_FAILURES"] == "1"  # fault 9: flaky tests get named
    assert env["KAKEYA_HISTORY"] == "inputs/history"
    assert "'mps'" in env["KAKEYA_DEVICE"]
    runs = [s.get("run", "") for s in job["steps"]]
    order = ["scripts/ci_venv.sh", "host-check --require-device", "prewarm", "ci_evidence.sh"]
    positions = [next(i for i, r in enumerate(runs) if key in r) for key in order]
    assert positions == sorted(positions)
    host = next(r for r in runs if "host-check" in r)
    assert '--require-device "$KAKEYA_DEVICE"' in host
    assert (
        "auto"
        not in load("integration.yaml")["on"]["workflow_dispatch"]["inputs"]["device"]["options"]
    )


def test_report_html_is_uploaded_alone_and_unzipped_and_the_directory_zipped():
    """Fault 8: one click opens the report."""
    _, job = mac_job()
    report, whole = step_using(job, "actions/upload-artifact")
    assert report["with"] == {
        "name": "report-${{ github.run_attempt }}.html",
        "path": "evidence/report.html",
        "archive": False,
        "overwrite": True,
        "retention-days": 30,
    }
    assert report["id"] == "report"
    assert job["outputs"]["report-url"] == "${{ steps.report.outputs.artifact-url }}"
    assert whole["with"]["path"] == "evidence/"
    assert whole["with"]["name"] == "${{ needs.gate.outputs.artifact }}-${{ github.run_attempt }}"
    assert whole["if"] == "always()"
    ci_uploads = step_using(load("ci.yaml")["jobs"]["test"], "actions/upload-artifact")
    assert any(s["with"].get("archive") is False for s in ci_uploads)


def test_mains_baseline_is_refreshed_weekly_and_kept_long():
    """Fault 9: a weekly run on main, and artifacts kept 90 days."""
    (schedule,) = load("integration.yaml")["on"]["schedule"]
    _minute, _hour, day, month, weekday = schedule["cron"].split()
    assert (day, month) == ("*", "*") and weekday != "*"
    _, job = mac_job()
    assert step_using(job, "actions/upload-artifact")[1]["with"]["retention-days"] == 90
    gate_runs = [s.get("run", "") for s in integration_jobs()["gate"]["steps"]]
    assert any("fetch-baseline" in r for r in gate_runs)
    assert any("fetch-history" in r and "--count 10" in r for r in gate_runs)
    assert MAIN_ARTIFACT not in (WORKFLOWS / "integration.yaml").read_text()  # one constant


# ------------------------------------------------------------------- labels


def test_auto_label_syncs_only_its_own_label_and_runs_no_pr_code():
    workflow = load("auto-label-mac.yaml")
    assert triggers(workflow) == {"pull_request_target"}
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    (step,) = job["steps"]
    assert step["uses"].startswith("actions/labeler@")
    assert step["with"] == {"configuration-path": ".github/labeler.yml", "sync-labels": True}
    assert AUTO_LABEL != MAINTAINER_LABEL
    gate_if = integration_jobs()["gate"]["if"]
    assert f"'{MAINTAINER_LABEL}'" in gate_if and AUTO_LABEL not in gate_if


# -------------------------------------------------------------- hygiene, lint


def test_every_action_is_pinned_to_a_known_release_commit():
    for name in workflow_names():
        for line in (WORKFLOWS / name).read_text().splitlines():
            match = USES.match(line)
            if not match:
                continue
            known = KNOWN_PINS.get(match["action"], {})
            assert match["ref"] in known, f"{name}: unknown pin {line.strip()}"
            assert match["rest"] == f" # {known[match['ref']]}", f"{name}: {line.strip()}"


def test_checkouts_do_not_persist_credentials():
    checkouts = [s for _, _, s in all_steps() if s.get("uses", "").startswith("actions/checkout@")]
    assert len(checkouts) >= 4
    assert all(s["with"]["persist-credentials"] is False for s in checkouts)


def test_no_expression_is_interpolated_into_run_scripts():
    for workflow, job, step in all_steps():
        assert "${{" not in step.get("run", ""), f"{workflow}/{job}/{step.get('name')}"


def test_workflows_default_to_no_permissions_and_raise_per_job():
    for name in workflow_names():
        data = load(name)
        assert data["permissions"] == {}, name
        for job_id, job in data["jobs"].items():
            assert "permissions" in job, f"{name}/{job_id}"
            assert "write-all" not in str(job["permissions"])


def test_ci_gate_runs_lint_tests_then_evidence():
    jobs = load("ci.yaml")["jobs"]
    assert any("scripts/ci_lint.sh" in s.get("run", "") for s in jobs["lint"]["steps"])
    runs = [s.get("run", "") for s in jobs["test"]["steps"]]
    assert runs.index("make test") < runs.index("make evidence")
    assert not any(runs_on_self_hosted(j) for j in jobs.values())


def test_actionlint_knows_the_runner_label():
    config = yaml.safe_load((ROOT / ".github" / "actionlint.yaml").read_text())
    assert "kakeya-mac-m4" in config["self-hosted-runner"]["labels"]


@pytest.mark.skipif(
    shutil.which("actionlint") is None,
    reason="actionlint binary absent: pip install -r scripts/lint-requirements.txt",
)
def test_actionlint_zizmor_and_the_path_lists_run_clean():
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ci_lint.sh"), "--workflows-only"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("persona", ["pedantic", "auditor"])
def test_zizmor_finds_nothing(persona):
    proc = subprocess.run(
        ["zizmor", "--offline", "--persona", persona, str(WORKFLOWS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_zizmor_ignore_says_why():
    """An ignore is a decision: each one carries its reason on its line or just above."""
    for name in workflow_names():
        lines = (WORKFLOWS / name).read_text().splitlines()
        for i, line in enumerate(lines):
            if "zizmor: ignore[" not in line:
                continue
            reason = line.split("]", 1)[1].strip() or lines[i - 1].strip().startswith("#")
            assert reason, f"{name}:{i + 1}: an ignore without a reason"


def test_zizmor_catches_an_injected_expression(tmp_path):
    """The lint can fail: a run step that interpolates a PR title is flagged."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "on: pull_request\npermissions: {}\njobs:\n  x:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo '${{ github.event.pull_request.title }}'\n"
    )
    proc = subprocess.run(
        ["zizmor", "--offline", str(bad)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode != 0
    assert "template-injection" in proc.stdout + proc.stderr


# ------------------------------------------------- attempts, App, environment


def uploads(job: dict[str, Any]) -> list[dict[str, Any]]:
    return step_using(job, "actions/upload-artifact")


def test_every_upload_overwrites_and_names_the_attempt():
    """A re-run reuses artifact names: without overwrite upload-artifact answers 409."""
    for name in workflow_names():
        for job_id, job in load(name)["jobs"].items():
            for step in uploads(job):
                assert step["with"].get("overwrite") is True, f"{job_id}: {step['name']}"
                assert "${{ github.run_attempt }}" in step["with"]["name"], f"{job_id}"
        for job_id, job in load(name)["jobs"].items():
            for step in step_using(job, "actions/download-artifact"):
                assert ".outputs.attempt" in step["with"]["name"], f"{job_id}"


def render_name(template: str, attempt: int, made_in: dict[str, int]) -> str:
    """An artifact name as GitHub evaluates it: this attempt, and each earlier job's
    ``outputs.attempt`` (kept from the attempt that ran it when a re-run skips it)."""
    text = template.replace("${{ needs.gate.outputs.artifact }}", "evidence-mac-m4")
    for job, made in made_in.items():
        text = text.replace(f"${{{{ needs.{job}.outputs.attempt }}}}", str(made))
        text = text.replace(
            f"${{{{ needs.{job}.outputs.attempt || github.run_attempt }}}}", str(made)
        )
    return text.replace("${{ github.run_attempt }}", str(attempt))


@pytest.mark.parametrize(
    "reruns",
    [
        [{"gate", "pending", "evidence", "publish"}] * 3,  # "Re-run all jobs", twice
        [{"publish"}, {"evidence", "publish"}],  # "Re-run failed jobs": publish, then the Mac
    ],
    ids=["rerun-all", "rerun-failed"],
)
def test_a_rerun_uploads_without_409_and_publish_reads_the_macs_attempt(reruns):
    """Every upload succeeds against the fake's 409 rule, and publish downloads the
    evidence of the attempt in which the Mac job last ran, never another."""
    from fake_github import FakeGitHub  # the fake of tests/kakeya_evidence/github

    fake = FakeGitHub()
    jobs = integration_jobs()
    made_in = {"gate": 1, "evidence": 1}
    for attempt, rerun in enumerate([set(jobs), *reruns], start=1):
        made_in.update({job: attempt for job in rerun if job in made_in})
        for job_id in (j for j in jobs if j in rerun):
            for step in step_using(jobs[job_id], "actions/download-artifact"):
                name = render_name(step["with"]["name"], attempt, made_in)
                source = "gate" if job_id == "evidence" else "evidence"
                assert name.endswith(f"-{made_in[source]}"), (job_id, name)
                assert (42, name) in fake.uploads, (job_id, name)
            for step in uploads(jobs[job_id]):
                name = render_name(step["with"]["name"], attempt, made_in)
                assert fake.upload_artifact(42, name, b"x", step["with"]["overwrite"]) == 201
                assert fake.upload_artifact(42, name, b"y", overwrite=False) == 409


def test_pending_and_publish_hold_the_apps_key_in_mains_environment():
    jobs = integration_jobs()
    for job_id in ("pending", "publish"):
        job = jobs[job_id]
        assert job["environment"] == "mac-evidence", job_id
        assert job["runs-on"] == "ubuntu-latest"
        (checkout,) = step_using(job, "actions/checkout")
        assert checkout["with"]["ref"] == "main"
        env = next(s for s in job["steps"] if "run" in s)["env"]
        assert env["KAKEYA_APP_PRIVATE_KEY"] == "${{ secrets.KAKEYA_APP_PRIVATE_KEY }}"
        assert env["KAKEYA_APP_ID"] == "${{ vars.KAKEYA_APP_ID }}"
    _, mac = mac_job()
    assert "environment" not in mac and "secrets." not in yaml.safe_dump(mac)
    text = (WORKFLOWS / "integration.yaml").read_text()
    assert text.count("secrets.") == 2  # the key, in the two environment jobs only
    assert jobs["pending"]["needs"] == "gate"
    assert "pending" in jobs["publish"]["needs"]
    run = next(s for s in jobs["pending"]["steps"] if "run" in s)["run"]
    assert "ci_github.py pending" in run and "--run-attempt" in run


def test_publish_is_told_the_attempt_and_the_partial_run():
    step = next(s for s in integration_jobs()["publish"]["steps"] if "run" in s)
    assert '--run-attempt "$MAC_ATTEMPT"' in step["run"]
    assert (
        step["env"]["MAC_ATTEMPT"] == "${{ needs.evidence.outputs.attempt || github.run_attempt }}"
    )
    assert '--run-id "$GITHUB_RUN_ID"' in step["run"]
    assert '--partial="$PARTIAL"' in step["run"]
    assert step["env"]["PARTIAL"] == "${{ inputs.pytest-args }}"


def test_the_mac_job_uses_the_pool_the_gate_chose():
    _, job = mac_job()
    assert job["env"]["KAKEYA_VENV_POOL"] == "${{ needs.gate.outputs.pool }}"
    assert integration_jobs()["gate"]["outputs"]["pool"] == "${{ steps.decide.outputs.pool }}"


def test_a_forged_check_from_a_branch_workflow_is_not_the_required_one():
    """Forged check scenario: any writer's branch workflow can post a "Mac M4 evidence:
    success" check with GITHUB_TOKEN. It carries the GitHub Actions app; the runbook
    requires the check from the evidence App, whose key only main's environment holds."""
    from kakeya_evidence.github.checks import CHECK_NAME

    runbook = (ROOT / "docs" / "ops" / "mac-m4-runner-setup.md").read_text()
    section = runbook.split("## A check only main can write", 1)[1].split("\n## ", 1)[0]
    assert f"`{CHECK_NAME}`" in section and "from the App" in section
    assert "Deployment branches" in section and "mac-evidence" in section
    assert "github-actions" in section  # names the forger's app
