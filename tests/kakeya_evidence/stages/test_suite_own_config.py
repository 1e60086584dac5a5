"""The suite's own configuration wins: its timeout, its cache, its paths as given, and
processes it leaves behind are found by process tree and session, not by environment."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from kakeya_evidence.config import run_config
from kakeya_evidence.runner import _parameters
from kakeya_evidence.stages.suite import SuiteConfig, run_suite

pytestmark = pytest.mark.slow


def _suite(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def _plain(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _outcomes(outcome) -> dict[str, str]:
    return {r.nodeid: str(r.outcome) for r in outcome.results}


SLOW = """
    import time


    def test_slower_than_the_suites_timeout():
        time.sleep(4)
"""


def test_the_suites_own_timeout_wins_over_the_pipelines(tmp_path):
    suite = _suite(tmp_path / "s", {"pytest.ini": "[pytest]\ntimeout = 1\n", "test_slow.py": SLOW})
    assert _plain(suite, "-p", "no:cacheprovider").returncode == 1  # plain: Timeout
    outcome = run_suite(
        SuiteConfig(tests=str(suite), output_dir=str(tmp_path / "ev"), cwd=str(suite))
    )
    assert _outcomes(outcome) == {"test_slow.py::test_slower_than_the_suites_timeout": "failed"}
    assert "Timeout" in outcome.results[0].message
    assert not any(a.startswith("--timeout") for a in outcome.added_options)


def test_the_pipelines_timeout_is_added_where_the_suite_sets_none_and_says_so(tmp_path):
    suite = _suite(tmp_path / "s", {"test_slow.py": SLOW})
    config = SuiteConfig(
        tests=str(suite), output_dir=str(tmp_path / "ev"), cwd=str(suite), test_timeout_s=1.0
    )
    outcome = run_suite(config)
    assert _outcomes(outcome) == {"test_slow.py::test_slower_than_the_suites_timeout": "failed"}
    assert "--timeout=1" in outcome.added_options
    assert "--timeout" not in " ".join(outcome.command)


CACHE_USER = """
    def test_uses_the_cache_fixture(cache):
        cache.set("kakeya/seen", 1)
        assert cache.get("kakeya/seen", None) == 1
"""


def test_a_suite_using_the_cache_fixture_runs_and_its_cache_lands_in_the_runs_dir(tmp_path):
    suite = _suite(tmp_path / "s", {"test_cache.py": CACHE_USER})
    out = tmp_path / "ev"
    outcome = run_suite(SuiteConfig(tests=str(suite), output_dir=str(out), cwd=str(suite)))
    assert outcome.status == "ok", outcome.reason
    assert _outcomes(outcome) == {"test_cache.py::test_uses_the_cache_fixture": "passed"}
    assert not (suite / ".pytest_cache").exists()
    assert list((out / "pytest").rglob("kakeya/seen"))
    assert any(a.startswith("-o cache_dir=") for a in outcome.added_options)


def test_a_suites_own_cache_dir_under_strict_config_is_kept(tmp_path):
    ini = "[pytest]\naddopts = --strict-config\ncache_dir = .own_cache\n"
    suite = _suite(tmp_path / "s", {"pytest.ini": ini, "test_cache.py": CACHE_USER})
    outcome = run_suite(
        SuiteConfig(tests=str(suite), output_dir=str(tmp_path / "ev"), cwd=str(suite))
    )
    assert outcome.status == "ok", outcome.reason
    assert (suite / ".own_cache").is_dir()
    assert not any("cache_dir" in a for a in outcome.added_options)


def _symlinked_project(tmp_path: Path) -> Path:
    _suite(
        tmp_path / "real_tests",
        {
            "test_a.py": "def test_needs_conftest(flag):\n    assert flag\n\n\n"
            "import pytest\n\n\n@pytest.mark.slowish\ndef test_deselected():\n    pass\n",
        },
    )
    project = _suite(
        tmp_path / "project",
        {
            "pytest.ini": "[pytest]\naddopts = -m 'not slowish'\nmarkers = slowish\n",
            "conftest.py": "import pytest\n\n\n@pytest.fixture\ndef flag():\n    return True\n",
        },
    )
    (project / "tests").symlink_to("../real_tests")
    return project


def test_a_tests_folder_reached_through_a_symlink_is_passed_as_given(tmp_path, monkeypatch):
    project = _symlinked_project(tmp_path)
    plain = _plain(project, "tests", "-p", "no:cacheprovider")
    assert "1 passed, 1 deselected" in plain.stdout
    monkeypatch.chdir(project)
    outcome = run_suite(SuiteConfig(tests="tests", output_dir=str(tmp_path / "ev"), cwd=""))
    assert _outcomes(outcome) == {"tests/test_a.py::test_needs_conftest": "passed"}


def test_the_runner_hands_the_suite_notebook_the_tests_path_without_resolving_symlinks(
    tmp_path, monkeypatch
):
    project = _symlinked_project(tmp_path)
    monkeypatch.chdir(project)
    params = _parameters("integration_suite", run_config({"tests": "tests"}), tmp_path / "ev")
    assert params["tests"] == str(project / "tests")
    assert params["cwd"] == str(project)


DAEMON = """
    import os
    import subprocess
    import sys


    def test_starts_a_scrubbed_setsid_daemon():
        code = "import os, time; os.fork() and os._exit(0); os.setsid(); time.sleep(300)"
        spawn = (
            "import subprocess, sys; subprocess.Popen([sys.executable, '-c', sys.argv[1],"
            " 'kakeya-scrubbed-daemon'], env={})"
        )
        subprocess.run([sys.executable, "-c", spawn, code], env={}, check=True)
"""


def test_a_setsid_daemon_with_a_scrubbed_environment_is_found_killed_and_listed(tmp_path):
    suite = _suite(tmp_path / "s", {"test_daemon.py": DAEMON})
    outcome = run_suite(
        SuiteConfig(tests=str(suite), output_dir=str(tmp_path / "ev"), cwd=str(suite))
    )
    daemons = [p for p in outcome.leftover_processes if "kakeya-scrubbed-daemon" in p["cmdline"]]
    alive = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if "kakeya-scrubbed-daemon" in " ".join(p.info["cmdline"] or [])
        and p.status() != psutil.STATUS_ZOMBIE
    ]
    for pid in alive:  # never leave one behind, even when an assertion below fails
        os.kill(pid, 9)
    assert outcome.status == "ok", outcome.reason
    assert daemons and all(p["killed"] for p in daemons)
    assert alive == []


def test_a_missing_relative_tests_path_names_the_path_it_resolved_to(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outcome = run_suite(SuiteConfig(tests="../tests/nowhere", output_dir=str(tmp_path / "ev")))
    assert outcome.status == "failed"
    assert f"resolved against {tmp_path} it is {tmp_path.parent / 'tests' / 'nowhere'}" in (
        outcome.reason
    )
    assert "--cwd" in outcome.reason


def test_deselected_tests_are_counted_and_shown_with_what_the_pipeline_added(tmp_path, monkeypatch):
    from kakeya_evidence.report import write_report

    project = _symlinked_project(tmp_path)
    monkeypatch.chdir(project)
    out = tmp_path / "ev"
    outcome = run_suite(SuiteConfig(tests="tests", output_dir=str(out), cwd=""))
    assert outcome.deselected == 1
    report = write_report(out)
    assert report.evidence["suite"]["deselected"] == 1
    assert "1 deselected (not counted above)." in report.summary
    html = report.html_path.read_text()
    assert "1 deselected" in html and "--timeout=300" in html


ORPHAN = """
    import subprocess
    import sys
    import time


    def test_leaves_an_orphan_that_exits_on_its_own():
        code = "import os, time; os.fork() and os._exit(0); time.sleep(0.2)"
        subprocess.run([sys.executable, "-c", code], check=True)
        time.sleep(1.0)
"""


def test_orphans_that_exit_on_their_own_leave_no_zombie_and_no_subreaper(tmp_path):
    import ctypes

    suite = _suite(tmp_path / "s", {"test_orphan.py": ORPHAN})
    before = {p.pid for p in psutil.Process().children()}
    outcome = run_suite(
        SuiteConfig(tests=str(suite), output_dir=str(tmp_path / "ev"), cwd=str(suite))
    )
    assert outcome.status == "ok", outcome.reason
    zombies = [
        p.pid
        for p in psutil.Process().children()
        if p.pid not in before and p.status() == psutil.STATUS_ZOMBIE
    ]
    assert zombies == []
    if sys.platform.startswith("linux"):
        flag = ctypes.c_int(-1)
        ctypes.CDLL(None).prctl(37, ctypes.byref(flag), 0, 0, 0)  # PR_GET_CHILD_SUBREAPER
        assert flag.value == 0
