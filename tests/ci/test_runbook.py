"""Fault 5: the runner runbook's commands and files are the ones that work."""

from __future__ import annotations

import os
import plistlib
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from kakeya_evidence.github.checks import CHECK_NAME
from kakeya_evidence.github.paths import AUTO_LABEL, MAINTAINER_LABEL

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = (ROOT / "docs" / "ops" / "mac-m4-runner-setup.md").read_text()
HF = Path(sys.executable).parent / "hf"


def code_blocks() -> list[str]:
    return re.findall(r"```(?:sh|bash)?\n(.*?)```", RUNBOOK, flags=re.S)


def heredoc(opening: str) -> str:
    """The body of the heredoc that starts on the line containing ``opening``."""
    match = re.search(re.escape(opening) + r"[^\n]*<<'EOF'\n(.*?)\nEOF\n", RUNBOOK, flags=re.S)
    assert match, f"no heredoc for {opening!r}"
    return match.group(1)


def test_python_312_is_set_explicitly_for_the_runner():
    env = dict(line.split("=", 1) for line in heredoc("cat > .env").splitlines())
    assert env["PYTHON"] == "/opt/homebrew/bin/python3.12"
    path_line = re.search(r"echo '([^']+)' > \.path", RUNBOOK).group(1)
    assert path_line.split(":")[0] == "/opt/homebrew/opt/python@3.12/libexec/bin"
    assert "brew install python@3.12" in RUNBOOK


def test_the_labels_are_created_and_distinct():
    assert f"gh label create {MAINTAINER_LABEL} " in RUNBOOK
    assert f"gh label create {AUTO_LABEL} " in RUNBOOK


def hf_commands() -> list[list[str]]:
    commands = []
    for block in code_blocks():
        for line in block.splitlines():
            if not re.search(r"(^|[\s/])hf ", line):
                continue
            words = shlex.split(line.split("#", 1)[0].rstrip(" \\"))
            for i, word in enumerate(words):
                if word == "hf" or word.endswith("/hf"):
                    commands.append(words[i + 1 :])
    return commands


def test_no_removed_huggingface_cli_command_is_mentioned():
    assert "hf cache scan" not in RUNBOOK and "hf cache delete" not in RUNBOOK
    assert "huggingface-cli" not in RUNBOOK and "scan-cache" not in RUNBOOK


@pytest.mark.parametrize("argv", hf_commands(), ids=" ".join)
def test_every_hf_command_exists_in_huggingface_hub_1x(argv):
    subcommand = [w for w in argv if not w.startswith("-") and "<" not in w][:2]
    proc = subprocess.run(
        [str(HF), *subcommand, "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for flag in (w for w in argv if w.startswith("-")):
        assert flag in proc.stdout, f"hf {' '.join(subcommand)} has no {flag}"


def test_hf_cache_commands_cover_list_remove_and_prune():
    assert {tuple(c[:2]) for c in hf_commands()} >= {
        ("cache", "ls"),
        ("cache", "rm"),
        ("cache", "prune"),
    }


def test_one_launchd_choice_a_daemon_running_as_runner():
    runner = plistlib.loads(heredoc("com.kakeya.actions-runner.plist").encode())
    assert runner["UserName"] == "runner"
    assert runner["RunAtLoad"] is True and runner["KeepAlive"] is True
    assert runner["ProgramArguments"] == ["/Users/runner/actions-runner/runsvc.sh"]
    commands = "\n".join(code_blocks())
    assert "svc.sh install" not in commands  # that would be a LaunchAgent: no second choice
    assert "LaunchAgents" not in commands


def test_mps_is_checked_from_the_service_context():
    section = RUNBOOK.split("**Check MPS from the service context**", 1)[1].split("###", 1)[0]
    assert "kakeya-evidence host-check --require-device mps" in section
    workflow = (ROOT / ".github" / "workflows" / "integration.yaml").read_text()
    assert 'host-check --require-device "$KAKEYA_DEVICE"' in workflow


def test_minimum_runner_version_for_node_24_actions():
    assert "2.327.1" in RUNBOOK and "./config.sh --version" in RUNBOOK


def test_ephemeral_and_jit_runners_are_the_hardened_option():
    assert "--ephemeral" in RUNBOOK and "generate-jitconfig" in RUNBOOK and "--jitconfig" in RUNBOOK


def test_job_started_hook_is_configured_and_valid_bash(tmp_path):
    env = dict(line.split("=", 1) for line in heredoc("cat > .env").splitlines())
    hook = env["ACTIONS_RUNNER_HOOK_JOB_STARTED"]
    assert hook == "/Users/runner/actions-runner-hooks/job-started.sh"
    script = tmp_path / "job-started.sh"
    script.write_text(heredoc("cat > ~/actions-runner-hooks/job-started.sh"))
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)


def test_disk_cleanup_is_scheduled(tmp_path):
    job = plistlib.loads(heredoc("com.kakeya.runner-cleanup.plist").encode())
    assert job["UserName"] == "runner"
    assert set(job["StartCalendarInterval"]) == {"Weekday", "Hour", "Minute"}
    script = tmp_path / "cleanup.sh"
    script.write_text(heredoc("cat > ~/actions-runner-hooks/weekly-cleanup.sh"))
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
    assert "hf cache prune -y" in script.read_text()


def test_repository_settings_and_the_fork_procedure_are_written_down():
    settings = RUNBOOK.split("## Repository settings", 1)[1].split("\n## ", 1)[0]
    for needed in (
        f"**`{CHECK_NAME}`**",
        "Require approval",
        "Read repository contents",
        "runner group",
        "secrets",
    ):
        assert needed in settings
    fork = RUNBOOK.split("## Running a fork's pull request", 1)[1].split("\n## ", 1)[0]
    assert "gh workflow run integration.yaml --ref main -f sha=<SHA> -f pr=<N>" in fork
    inputs = yaml.safe_load((ROOT / ".github" / "workflows" / "integration.yaml").read_text())[True]
    assert {"sha", "pr"} <= set(inputs["workflow_dispatch"]["inputs"])
    assert "pull_request_target" in RUNBOOK.split("## Hardware", 1)[0]  # why, up front


def test_the_supported_isolation_setups_come_in_order_with_commands():
    section = RUNBOOK.split("## Supported setups (runner isolation), in order", 1)[1]
    section = section.split("\n## ", 1)[0]
    order = [section.index(f"\n{letter}. **") for letter in "abc"]
    assert order == sorted(order)
    assert "restricted_to_workflows=true" in section
    assert "integration.yaml@refs/heads/main" in section
    assert "visibility=selected" in section
    assert "kakeya-evidence runner-audit --repo ORG/REPO" in section
    assert "--runnergroup kakeya-mac" in RUNBOOK


def test_the_job_started_hook_cleans_tmp_through_the_symlink_but_never_its_start_dir(tmp_path):
    """The hook's find follows the /tmp symlink (-H) and never matches the start dir."""
    real, link = tmp_path / "private-tmp", tmp_path / "tmp"
    real.mkdir()
    link.symlink_to(real)
    old, new = real / "old-run", real / "new-run"
    old.mkdir()
    new.mkdir()
    for path in (old, real):
        os.utime(path, (time.time() - 3 * 86400,) * 2)
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "pkill").write_text("#!/bin/sh\nexit 0\n")  # never kill anything here
    (stubs / "pkill").chmod(0o755)
    script = tmp_path / "job-started.sh"
    script.write_text(heredoc("cat > ~/actions-runner-hooks/job-started.sh"))
    env = {**os.environ, "TMPDIR": str(link), "HOME": str(tmp_path), "GITHUB_WORKSPACE": ""}
    env["PATH"] = f"{stubs}:{env['PATH']}"
    subprocess.run(["bash", str(script)], env=env, timeout=60, check=False, capture_output=True)
    assert not old.exists()
    assert new.exists() and real.is_dir() and link.is_symlink()


def test_the_weekly_cleanup_never_runs_during_a_job():
    script = heredoc("cat > ~/actions-runner-hooks/weekly-cleanup.sh")
    hook = heredoc("cat > ~/actions-runner-hooks/job-started.sh")
    assert "pgrep -u" in script and "Runner.Worker" in script
    assert 'mkdir "$lock"' in script and "trap 'rmdir \"$lock\"' EXIT" in script
    assert script.index("Runner.Worker") < script.index("hf cache prune")
    assert "cleanup.lock" in hook  # a job waits while the cleanup holds the lock


def test_prewarm_uses_mains_own_venv():
    section = RUNBOOK.split("## Prewarm the model cache", 1)[1].split("\n## ", 1)[0]
    assert "KAKEYA_VENV_POOL=main" in section and "scripts/ci_venv.sh" in section
    assert '"$venv/bin/kakeya-runtime" prewarm --model Qwen/Qwen3-0.6B' in section
