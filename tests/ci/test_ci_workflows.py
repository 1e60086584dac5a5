"""The GitHub workflows: security rules, wiring, and actionlint/zizmor run clean."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kakeya_evidence import github

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
MAC_RUNNER = ["self-hosted", "macOS", "ARM64", "kakeya-mac-m4"]
SAME_REPO_GUARD = "github.event.pull_request.head.repo.full_name == github.repository"
PINNED_USES = re.compile(r"^\s*(?:-\s+)?uses:\s+([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # v\d+(\.\d+)*$")


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def all_steps() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path.name, job_id, step)
        for path in sorted(WORKFLOWS.glob("*.y*ml"))
        for job_id, job in load(path.name)["jobs"].items()
        for step in job.get("steps", [])
    ]


def mac_job() -> dict[str, Any]:
    jobs = load("integration.yaml")["jobs"]
    return next(job for job in jobs.values() if job["runs-on"] == MAC_RUNNER)


def test_the_three_workflows_exist() -> None:
    names = {p.name for p in WORKFLOWS.glob("*.y*ml")}
    assert names == {"integration.yaml", "auto-label-mac.yaml", "ci.yaml"}


def test_every_action_is_pinned_to_a_full_sha_with_version_comment() -> None:
    for path in WORKFLOWS.glob("*.y*ml"):
        for line in path.read_text().splitlines():
            if re.match(r"^\s*(-\s+)?uses:", line):
                assert PINNED_USES.match(line), f"{path.name}: unpinned action: {line.strip()}"


def test_checkouts_do_not_persist_credentials() -> None:
    checkouts = [s for _, _, s in all_steps() if s.get("uses", "").startswith("actions/checkout@")]
    assert checkouts
    assert all(s["with"]["persist-credentials"] is False for s in checkouts)


def test_no_expression_is_interpolated_into_run_scripts() -> None:
    for workflow, job, step in all_steps():
        script = step.get("run", "")
        assert "${{" not in script, f"{workflow}/{job}/{step.get('name')}: use env vars"


def test_workflows_default_to_no_permissions_and_raise_per_job() -> None:
    for path in WORKFLOWS.glob("*.y*ml"):
        data = load(path.name)
        assert data["permissions"] == {}, path.name
        for job_id, job in data["jobs"].items():
            assert "permissions" in job, f"{path.name}/{job_id}"
            assert "write-all" not in str(job["permissions"])


def test_mac_job_only_runs_same_repository_code() -> None:
    workflow = load("integration.yaml")
    job = mac_job()
    assert SAME_REPO_GUARD in " ".join(job["if"].split())
    gate = workflow["jobs"][job["needs"]]
    assert SAME_REPO_GUARD in " ".join(gate["if"].split())
    assert "pull_request_target" not in workflow["on"]
    assert "GITHUB_TOKEN" not in job.get("env", {})  # tests never see a token


def test_mac_job_shape() -> None:
    job = mac_job()
    assert job["timeout-minutes"] == 90
    assert job["concurrency"]["cancel-in-progress"]
    assert "github.event.pull_request.number" in job["concurrency"]["group"]
    assert job["env"]["HF_HUB_OFFLINE"] == "1"
    assert "Qwen/Qwen3-0.6B" in job["env"]["KAKEYA_MODEL"]
    assert "'mps'" in job["env"]["KAKEYA_DEVICE"]
    runs = [s.get("run", "") for s in job["steps"]]
    order = ["scripts/ci_venv.sh", "host-check", "prewarm", "fetch-baseline", "ci_evidence.sh"]
    positions = [next(i for i, r in enumerate(runs) if key in r) for key in order]
    assert positions == sorted(positions)


def test_mac_job_reports_even_when_the_run_failed() -> None:
    steps = mac_job()["steps"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()"
    assert "evidence/" in upload["with"]["path"]
    for command in ("step-summary", "annotate", "pr-comment"):
        step = next(s for s in steps if f"kakeya-evidence {command}" in s.get("run", ""))
        assert step["if"].startswith("always()"), command
    comment = next(s for s in steps if "pr-comment" in s.get("run", ""))
    assert comment["env"]["GITHUB_TOKEN"] == "${{ github.token }}"


def test_integration_triggers() -> None:
    on = load("integration.yaml")["on"]
    assert set(on["pull_request"]["types"]) == {"opened", "synchronize", "reopened", "labeled"}
    assert "paths" not in on["pull_request"]  # a label on any PR must be able to start it
    assert {"model", "device", "pytest-args", "sha"} <= set(on["workflow_dispatch"]["inputs"])
    assert on["push"]["branches"] == ["main"]


def test_path_rules_agree_in_labeler_gate_and_push_filter() -> None:
    labeler = yaml.safe_load((ROOT / ".github" / "labeler.yml").read_text())
    globs = labeler[github.LABEL][0]["changed-files"][0]["any-glob-to-any-file"]
    assert tuple(globs) == github.RUNTIME_PATH_GLOBS
    push_paths = load("integration.yaml")["on"]["push"]["paths"]
    assert tuple(push_paths) == github.RUNTIME_PATH_GLOBS


def test_auto_label_never_checks_out_or_runs_pr_code() -> None:
    workflow = load("auto-label-mac.yaml")
    assert list(workflow["on"]) == ["pull_request_target"]
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    (step,) = job["steps"]
    assert step["uses"].startswith("actions/labeler@")
    assert step["with"]["sync-labels"] is True
    assert "run" not in step
    assert all("checkout" not in s.get("uses", "") for s in job["steps"])


def test_ci_gate_runs_lint_tests_then_evidence() -> None:
    jobs = load("ci.yaml")["jobs"]
    assert any("scripts/ci_lint.sh" in s.get("run", "") for s in jobs["lint"]["steps"])
    runs = [s.get("run", "") for s in jobs["test"]["steps"]]
    assert runs.index("make test") < runs.index("make evidence")
    upload = next(s for s in jobs["test"]["steps"] if "upload-artifact" in s.get("uses", ""))
    assert upload["with"]["path"] == "evidence/"
    assert "cancelled()" in upload["if"]


def test_actionlint_knows_the_runner_label() -> None:
    config = yaml.safe_load((ROOT / ".github" / "actionlint.yaml").read_text())
    assert "kakeya-mac-m4" in config["self-hosted-runner"]["labels"]


@pytest.mark.skipif(
    shutil.which("actionlint") is None,
    reason="actionlint binary absent: pip install -r scripts/lint-requirements.txt",
)
def test_actionlint_and_zizmor_run_clean() -> None:
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ci_lint.sh"), "--workflows-only"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_pedantic_finds_nothing() -> None:
    proc = subprocess.run(
        ["zizmor", "--offline", "--persona", "pedantic", str(WORKFLOWS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_catches_an_injected_expression(tmp_path: Path) -> None:
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
