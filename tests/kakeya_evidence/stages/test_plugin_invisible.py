"""The plugin is invisible to the tests: scratch suites that patch what the plugin could
use, rename outcomes or call pytest.exit() are recorded as plain pytest sees them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kakeya_evidence.stages.suite import SuiteConfig, run_suite

pytestmark = pytest.mark.slow


def _suite(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def _run(suite: Path, out: Path, **overrides):
    return run_suite(
        SuiteConfig(tests=str(suite), output_dir=str(out), cwd=str(suite), **overrides)
    )


def _plain(suite: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=suite,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _outcomes(outcome) -> dict[str, str]:
    return {r.nodeid: str(r.outcome) for r in outcome.results}


PATCHING = """
    import builtins
    import json
    import os
    import sys
    import time
    import types


    def test_patches_json_dumps_and_fails(monkeypatch):
        monkeypatch.setattr(json, "dumps", lambda *a, **k: "not json {")
        monkeypatch.setattr(json.JSONEncoder, "encode", lambda *a, **k: "not json {")
        assert False, "fails for real"


    def test_swaps_json_in_sys_modules_and_fails(monkeypatch):
        monkeypatch.setitem(sys.modules, "json", types.ModuleType("json"))
        raise RuntimeError("fails with json swapped out")


    def test_patches_clock_open_and_os_write_and_fails(monkeypatch):
        monkeypatch.setattr(time, "time", lambda: -1.0)
        monkeypatch.setattr(builtins, "open", None)
        monkeypatch.setattr(os, "write", lambda fd, data: len(data))
        assert 1 == 2


    def test_passes():
        pass
"""


def test_a_test_that_patches_json_the_clock_or_os_write_is_recorded_as_failing(tmp_path):
    suite = _suite(tmp_path / "suite", {"test_patching.py": PATCHING})
    outcome = _run(suite, tmp_path / "ev")
    assert outcome.status == "ok", outcome.reason
    assert _outcomes(outcome) == {
        "test_patching.py::test_patches_json_dumps_and_fails": "failed",
        "test_patching.py::test_swaps_json_in_sys_modules_and_fails": "failed",
        "test_patching.py::test_patches_clock_open_and_os_write_and_fails": "failed",
        "test_patching.py::test_passes": "passed",
    }
    rows = {r.nodeid.rsplit("::", 1)[1]: r for r in outcome.results}
    assert rows["test_patches_json_dumps_and_fails"].message == "AssertionError: fails for real"
    clock = rows["test_patches_clock_open_and_os_write_and_fails"]
    assert clock.start_s is not None and clock.start_s >= 0  # the plugin's clock, not -1
    assert outcome.counts["failed"] == 3 and outcome.counts["passed"] == 1


KNOWNFAIL_CONFTEST = """
    def pytest_report_teststatus(report, config):
        if report.when == "call" and "known" in report.nodeid:
            if report.failed:
                return "knownfail", "K", "KNOWNFAIL"
            return "knownpass", "k", "KNOWNPASS"
"""
KNOWNFAIL_TESTS = """
    def test_known_bug():
        assert 0, "still broken"


    def test_known_fine():
        pass


    def test_plain():
        pass
"""


def test_a_conftests_own_status_word_is_kept_as_a_label_and_counted_as_pytest_counts_it(
    tmp_path,
):
    suite = _suite(
        tmp_path / "suite",
        {"conftest.py": KNOWNFAIL_CONFTEST, "test_known.py": KNOWNFAIL_TESTS},
    )
    plain = _plain(suite)
    assert plain.returncode == 1 and "1 knownfail" in plain.stdout  # pytest: a failure
    outcome = _run(suite, tmp_path / "ev")
    rows = {r.nodeid.rsplit("::", 1)[1]: r for r in outcome.results}
    assert rows["test_known_bug"].outcome == "failed"
    assert [(p.category, p.label) for p in rows["test_known_bug"].phases] == [
        ("failed", "knownfail")
    ]
    assert rows["test_known_fine"].outcome == "passed"
    assert rows["test_known_fine"].phases[0].label == "knownpass"
    assert outcome.counts["failed"] == 1 and outcome.counts["passed"] == 2
    stage = json.loads((tmp_path / "ev/stages/integration_suite.json").read_text())
    bug = next(t for t in stage["tests"] if t["nodeid"].endswith("test_known_bug"))
    assert bug["phases"] == [
        {
            "when": "call",
            "category": "failed",
            "message": "AssertionError: still broken",
            "label": "knownfail",
        }
    ]


EXITING = """
    import pytest


    def test_first():
        pass


    def test_exits():
        pytest.exit("enough for today")


    def test_after():
        pass
"""


def test_pytest_exit_in_a_test_is_recorded_as_exited_with_its_reason_and_is_no_pass(tmp_path):
    suite = _suite(tmp_path / "suite", {"test_exit.py": EXITING})
    assert _plain(suite).returncode == 2
    outcome = _run(suite, tmp_path / "ev")
    assert outcome.status == "failed"
    assert outcome.reason.startswith("exited: pytest.exit() in test_exit.py::test_exits")
    assert "enough for today" in outcome.reason
    assert _outcomes(outcome) == {
        "test_exit.py::test_first": "passed",
        "test_exit.py::test_exits": "error",
        "test_exit.py::test_after": "not_run",
    }


def test_pytest_exit_in_a_conftest_during_collection_is_no_pass(tmp_path):
    suite = _suite(
        tmp_path / "suite",
        {
            "conftest.py": "import pytest\n\npytest.exit('no database here')\n",
            "test_a.py": "def test_a():\n    pass\n",
        },
    )
    outcome = _run(suite, tmp_path / "ev")
    assert outcome.status == "failed"
    assert "no database here" in outcome.reason


ODD_IDS = """
    import pytest


    @pytest.mark.parametrize("x", [1, 2, 3, 4], ids=["a\\rb", "a\\nb", "a\\x1b[31mb", "a[31mb"])
    def test_id(x):
        assert x != 4
"""


def test_node_ids_are_kept_byte_for_byte_and_distinct_ids_never_merge(tmp_path):
    ini = "[pytest]\ndisable_test_id_escaping_and_forfeit_all_rights_to_community_support = true\n"
    suite = _suite(tmp_path / "suite", {"pytest.ini": ini, "test_ids.py": ODD_IDS})
    outcome = _run(suite, tmp_path / "ev")
    assert outcome.status == "ok", outcome.reason
    assert _outcomes(outcome) == {
        "test_ids.py::test_id[a\rb]": "passed",
        "test_ids.py::test_id[a\nb]": "passed",
        "test_ids.py::test_id[a\x1b[31mb]": "passed",
        "test_ids.py::test_id[a[31mb]": "failed",
    }
    assert outcome.counts["passed"] == 3 and outcome.counts["failed"] == 1


def test_os_exit_0_during_collection_is_a_crash_not_no_tests(tmp_path):
    suite = _suite(
        tmp_path / "suite",
        {
            "conftest.py": "",
            "test_a.py": "import os\n\nos._exit(0)\n\n\ndef test_a():\n    pass\n",
        },
    )
    outcome = _run(suite, tmp_path / "ev")
    assert outcome.status == "crashed"
    assert "exited with code 0" in outcome.reason and "before finishing" in outcome.reason
