"""Every command the workflows run exists and accepts the flags they pass.

Commands are read from the workflows' ``run:`` steps (and from the argv that
``scripts/ci_evidence.sh`` builds), then checked with ``--help`` or a dry run.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def workflow_commands() -> list[list[str]]:
    commands = []
    for path in sorted(WORKFLOWS.glob("*.y*ml")):
        jobs = yaml.safe_load(path.read_text())["jobs"]
        for job in jobs.values():
            for step in job.get("steps", []):
                if "run" in step:
                    commands.append(shlex.split(" ".join(step["run"].split())))
    return commands


def run_help(argv: list[str]) -> str:
    """Run ``argv + ['--help']`` and return its output; fails the test on a non-zero exit."""
    proc = subprocess.run(
        [*argv, "--help"], capture_output=True, text=True, timeout=120, cwd=ROOT, check=False
    )
    assert proc.returncode == 0, f"{argv} --help failed:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def entry_point(name: str) -> list[str]:
    """argv that runs a console script from pyproject without needing it installed."""
    module, func = SCRIPTS[name].split(":")
    code = f"import sys; from {module} import {func} as m; sys.argv[0] = {name!r}; sys.exit(m())"
    return [sys.executable, "-c", code]


def check_flags(help_text: str, argv: list[str]) -> None:
    flags = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    missing = sorted(f for f in flags if f not in help_text)
    assert not missing, f"{argv[:2]} does not accept {missing}"


def check_command(argv: list[str]) -> None:
    name = argv[0]
    if name in SCRIPTS:
        check_flags(run_help([*entry_point(name), argv[1]]), argv[2:])
    elif name in {"python", "python3"} and argv[1] == "scripts/ci_github.py":
        check_flags(run_help([sys.executable, *argv[1:3]]), argv[3:])
    elif name in {"python", "python3"} and argv[1:4] == ["-m", "pip", "install"]:
        assert (ROOT / argv[-1]).is_file()
    elif name.startswith("scripts/"):
        script = ROOT / name
        assert os.access(script, os.X_OK), f"{name} is not executable"
        subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
    elif name == "make":
        proc = subprocess.run(["make", "-n", *argv[1:]], cwd=ROOT, capture_output=True, timeout=30)
        assert proc.returncode == 0, f"make has no target {argv[1:]}: {proc.stderr!r}"
    elif name == "rm":
        assert argv[1] == "-rf" and all(not p.startswith(("/", "~", "..")) for p in argv[2:])
    else:
        pytest.fail(f"workflow runs an unknown command: {argv}")


COMMANDS = workflow_commands()


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(c[:2]) for c in COMMANDS])
def test_workflow_command_exists_and_accepts_its_flags(argv: list[str]) -> None:
    check_command(argv)


def evidence_argv(env: dict[str, str]) -> list[str]:
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ci_evidence.sh"), "--dry-run"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return shlex.split(proc.stdout)


def test_ci_evidence_builds_a_run_command_the_cli_accepts(tmp_path: Path) -> None:
    baseline = tmp_path / "evidence.json"
    baseline.write_text("{}")
    env = {
        "KAKEYA_MODEL": "Qwen/Qwen3-0.6B",
        "KAKEYA_DEVICE": "mps",
        "KAKEYA_BASELINE": str(baseline),
        "KAKEYA_TESTS": "tests/integration",
        "KAKEYA_PYTEST_ARGS": "-k 'generate and not slow'",
        "KAKEYA_NO_PREWARM": "1",
    }
    argv = evidence_argv(env)
    assert argv[:2] == ["kakeya-evidence", "run"]
    assert argv[argv.index("--baseline") + 1] == str(baseline)
    assert "--no-prewarm" in argv
    check_command(argv)


def test_ci_evidence_reruns_failures_and_passes_history_only_when_present(tmp_path: Path) -> None:
    """Fault 9: CI re-runs failures once (flaky tests get named) and hands over main's history."""
    argv = evidence_argv({"KAKEYA_HISTORY": str(tmp_path)})
    assert argv[argv.index("--rerun-failures") + 1] == "1"
    assert argv[argv.index("--history") + 1] == str(tmp_path)
    argv = evidence_argv({"KAKEYA_HISTORY": str(tmp_path / "none"), "KAKEYA_RERUN_FAILURES": "2"})
    assert "--history" not in argv
    assert argv[argv.index("--rerun-failures") + 1] == "2"


def test_ci_evidence_passes_untrusted_text_as_one_argument() -> None:
    hostile = '-k x"; touch /tmp/pwned; echo "$(id)'
    argv = evidence_argv({"KAKEYA_PYTEST_ARGS": hostile, "KAKEYA_BASELINE": "/no/such/file"})
    assert argv[-1] == f"--pytest-args={hostile}"
    assert "--baseline" not in argv
    assert argv[argv.index("--model") + 1] == "kakeya/tiny-qwen3"


def venv_dry_run(
    project: Path,
    root: Path,
    keep: str = "3",
    python: str = sys.executable,
    check: bool = True,
    pool: str = "pr",
) -> tuple[str, str]:
    env = {**os.environ, "KAKEYA_PROJECT_DIR": str(project), "KAKEYA_VENV_ROOT": str(root)}
    env.update(KAKEYA_VENV_KEEP=keep, PYTHON=python, KAKEYA_VENV_POOL=pool)
    env.pop("GITHUB_PATH", None)
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ci_venv.sh"), "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )
    lines = proc.stdout.strip().splitlines() or [""]
    return lines[-1], proc.stderr


def test_ci_venv_refuses_a_python_older_than_the_project_requires(tmp_path: Path) -> None:
    """Fault 5: Apple's python3 (3.9) must not build a venv that rejects the project."""
    apple = tmp_path / "python3"
    apple.write_text("#!/bin/sh\necho 3.9\n")  # answers the version probe like Python 3.9
    apple.chmod(0o755)
    last, log = venv_dry_run(ROOT, tmp_path / "venvs", python=str(apple), check=False)
    assert last == ""
    assert f"PYTHON={apple} is Python 3.9; the project requires >= 3.11." in log
    assert "PYTHON=/opt/homebrew/bin/python3.12" in log
    assert "-m venv" not in log
    _, log = venv_dry_run(ROOT, tmp_path / "venvs", python=str(tmp_path / "none"), check=False)
    assert "cannot run PYTHON=" in log


def test_ci_venv_is_keyed_by_the_dependency_files(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = []\n')
    root = tmp_path / "venvs"
    first, log = venv_dry_run(project, root)
    assert Path(first).parent == root / "pr"
    assert f"-m pip install --quiet {project}[evidence,test]" in log
    assert f"--no-deps --force-reinstall {project}" in log
    assert venv_dry_run(project, root)[0] == first
    (project / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["y"]\n')
    second = venv_dry_run(project, root)[0]
    assert second != first
    (project / "locks").mkdir()
    for name in ("linux-cpu.txt", "macos-arm64.txt"):  # issue 23's lock files
        (project / "locks" / name).write_text("y==1 --hash=sha256:00\n")
        third, log = venv_dry_run(project, root)
        assert third != second
        second = third
    assert "--require-hashes -r" in log  # installed from the lock, hashes checked


def test_main_baseline_and_pr_runs_never_share_a_venv(tmp_path: Path) -> None:
    """A PR's code installs into a `pr` venv; main's baseline runs use `main` ones only."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    root = tmp_path / "venvs"
    pr_venv, _ = venv_dry_run(project, root, pool="pr")
    main_venv, _ = venv_dry_run(project, root, pool="main")
    assert Path(pr_venv).parent == root / "pr" and Path(main_venv).parent == root / "main"
    _, log = venv_dry_run(project, root, pool="../main", check=False)
    assert "KAKEYA_VENV_POOL must be main or pr" in log


def test_ci_venv_reuses_a_complete_venv_and_prunes_old_ones(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    root = tmp_path / "venvs"
    current, _ = venv_dry_run(project, root)
    Path(current).mkdir(parents=True)
    (Path(current) / ".kakeya-complete").touch()
    pool = root / "pr"
    for index, name in enumerate(("old1", "old2")):
        (pool / name).mkdir()
        os.utime(pool / name, (1000 + index, 1000 + index))
    _, log = venv_dry_run(project, root, keep="2")
    assert f"reusing {current}" in log
    assert "-m venv" not in log
    assert f"rm -rf {pool}/old1" in log
    assert f"rm -rf {pool}/old2" not in log
