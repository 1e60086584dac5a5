"""The suite stage against fixture suites: counts as pytest's, hostile output, crashes,
hangs, leftovers, where pytest runs, workers and shards."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import psutil
import pytest

from kakeya_evidence.errors import StageError
from kakeya_evidence.stages.results import COUNTED
from kakeya_evidence.stages.suite import SuiteConfig, run_suite, run_suite_stage

pytestmark = pytest.mark.slow

BROKEN_MODULE = '"""A module with a syntax error on line 4."""\n\n\ndef broken(:\n    pass\n'


def _config(tests: Path, out: Path, **overrides) -> SuiteConfig:
    return SuiteConfig(tests=str(tests), output_dir=str(out), cwd=str(tests), **overrides)


def _stage(out: Path) -> dict:
    return json.loads((out / "stages" / "integration_suite.json").read_text(encoding="utf-8"))


def _pytest_counts(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if k in COUNTED and v}


def _strings(value: object):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_every_outcome_is_recorded_and_a_rerun_pass_is_flaky(fixture_suite, tmp_path):
    out = tmp_path / "ev"
    outcome = run_suite(_config(fixture_suite("outcomes"), out, rerun_failures=1))
    by_name = {r.nodeid.split("::")[-1]: r for r in outcome.results}
    assert outcome.status == "ok"
    assert by_name["test_passes"].outcome == "passed"
    assert by_name["test_fails"].outcome == "failed"
    assert by_name["test_fails"].message == "AssertionError: arithmetic is broken"
    assert "stdout of a failing test" in by_name["test_fails"].stdout
    assert by_name["test_errors"].outcome == "error"
    assert by_name["test_skipped"].outcome == "skipped"
    assert by_name["test_skipped"].message == "not on this host"
    assert by_name["test_xfails"].outcome == "xfailed"
    assert by_name["test_flaky"].outcome == "flaky"
    assert by_name["test_flaky"].rerun_outcomes == ("passed",)
    assert by_name["test_fails"].rerun_outcomes == ("failed",)
    assert outcome.counts["flaky"] == 1
    stage = _stage(out)
    assert stage["counts"] == outcome.counts
    assert (out / "junit.xml").is_file()


def test_counts_equal_pytests_own_summary_for_every_outcome(fixture_suite, plain_pytest, tmp_path):
    suite = fixture_suite("counts")
    outcome = run_suite(_config(suite, tmp_path / "ev"))
    plain = plain_pytest(suite)
    assert plain == {"failed": 4, "passed": 2, "skipped": 4, "xfailed": 1, "xpassed": 1, "error": 3}
    assert _pytest_counts(outcome.counts) == plain
    rows = {r.nodeid: r for r in outcome.results}
    both = rows["test_counts.py::test_fails_then_teardown_errors"]
    assert both.message == "AssertionError: the call's own assertion"
    assert [(p.when, p.category) for p in both.phases] == [
        ("call", "failed"),
        ("teardown", "error"),
    ]
    assert "teardown exploded" in both.traceback
    strict = rows["test_counts.py::test_xpasses_strict"]
    assert (strict.outcome, strict.message) == ("failed", "[XPASS(strict)] must fail")
    assert rows["test_counts.py::test_xpasses"].outcome == "xpassed"
    assert rows["test_counts.py::test_raises_custom"].exception == "QuotaError"
    assert rows["test_counts.py::test_fails"].line == 22  # the failing assert, in the test file


def test_module_level_skips_keep_pytests_reason_and_the_real_module_path(fixture_suite, tmp_path):
    outcome = run_suite(_config(fixture_suite("counts"), tmp_path / "ev"))
    rows = {r.nodeid: r for r in outcome.results}
    skipped = rows["test_module_skip.py"]
    assert (skipped.outcome, skipped.message) == ("skipped", "this platform lacks the feature")
    assert (skipped.path, skipped.line) == ("test_module_skip.py", 5)
    needs = rows["test_importorskip.py"]
    assert needs.message == "could not import 'kakeya_no_such_package': No module named " + (
        "'kakeya_no_such_package'"
    )
    assert not [n for n in rows if "." in n.split("::")[0].removesuffix(".py")]  # no dotted ids


def test_a_syntax_error_names_the_users_file_and_line_and_counts_once(
    fixture_suite, plain_pytest, tmp_path
):
    suite = fixture_suite("collect_error")
    (suite / "test_broken.py").write_text(BROKEN_MODULE)
    out = tmp_path / "ev"
    outcome = run_suite(_config(suite, out))
    assert plain_pytest(suite) == {"error": 1}
    assert _pytest_counts(outcome.counts) == {"error": 1}
    broken = next(r for r in outcome.results if r.nodeid == "test_broken.py")
    assert broken.message.startswith("test_broken.py:4: SyntaxError: ")
    assert (broken.path, broken.line, broken.exception) == ("test_broken.py", 4, "SyntaxError")
    assert "_pytest" not in broken.message
    never = sorted(r.nodeid for r in outcome.results if r.outcome == "not_run")
    assert never == ["test_good.py::test_one", "test_good.py::test_two"]
    assert outcome.counts["not_run"] == 2


def test_hostile_output_becomes_safe_text_once_and_pytest_runs_without_colour(
    fixture_suite, tmp_path, monkeypatch
):
    monkeypatch.setenv("FORCE_COLOR", "1")  # as ipykernel sets it
    out = tmp_path / "ev"
    outcome = run_suite(_config(fixture_suite("hostile"), out))
    raw = (out / "stages" / "integration_suite.json").read_bytes()
    raw.decode("utf-8")  # valid UTF-8
    for text in _strings(json.loads(raw)):
        text.encode("utf-8")  # no lone surrogates
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", text), text[:200]
    rows = {r.nodeid.split("::")[-1]: r for r in outcome.results}
    odd = rows["test_lone_surrogate_in_assertion"]
    assert odd.message == "AssertionError: cannot open report-\ufffd.txt"
    assert "stderr with report-" in odd.stderr  # pytest's capture already replaced it
    colour = rows["test_controls_and_colour"]
    assert colour.message == "AssertionError: green and \\x07bell"
    assert colour.stdout == "red bell\\x07 nul\\x00 esc\\x1b end\n"
    assert colour.stderr == "stderr bold\n"
    assert "raw \ufffd\ufffd bytes" in rows["test_raw_bytes_on_stdout"].stdout
    ET.parse(out / "junit.xml")
    summary = gzip.decompress((out / "pytest" / "run0" / "log.txt.gz").read_bytes())
    assert re.fullmatch(rb"3 failed, 1 passed in [\d.]+s", summary.strip().splitlines()[-1])


def test_long_output_keeps_its_end_and_the_log_is_compressed(fixture_suite, tmp_path):
    out = tmp_path / "ev"
    outcome = run_suite(_config(fixture_suite("hostile"), out))
    chatty = next(r for r in outcome.results if r.nodeid.endswith("test_long_output_keeps_its_end"))
    assert chatty.stdout.endswith("THE LAST LINE BEFORE THE FAILURE\n")
    cut = re.match(r"\[\.\.\. ([\d,]+) characters cut \.\.\.\]\n", chatty.stdout)
    assert cut and int(cut.group(1).replace(",", "")) + len(chatty.stdout) > 20_000 * 28
    assert len(chatty.stdout) < 20_100
    run = out / "pytest" / "run0"
    assert (run / "log.txt.gz").is_file() and (run / "record.jsonl.gz").is_file()
    assert not (run / "log").exists() and not (run / "record.jsonl").exists()


def test_a_usage_error_is_a_failed_stage_with_a_plain_reason(fixture_suite, tmp_path, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    config = _config(fixture_suite("passing"), tmp_path / "ev", pytest_args=("--no-such-flag",))
    outcome = run_suite(config)
    assert outcome.status == "failed"
    assert "--no-such-flag" in outcome.reason and "\x1b" not in outcome.reason


def test_pytest_runs_where_the_user_launched_and_loads_the_root_conftest(
    fixture_suite, plain_pytest, tmp_path
):
    project = fixture_suite("conftest_above")
    git = ["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "fixture"], check=True)
    head = subprocess.run([*git[:3], "rev-parse", "HEAD"], capture_output=True, text=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    tests = project / "pkg" / "tests"
    out = tmp_path / "ev"
    outcome = run_suite(SuiteConfig(tests=str(tests), output_dir=str(out), cwd=str(elsewhere)))
    assert _pytest_counts(outcome.counts) == plain_pytest(elsewhere, str(tests))
    assert _pytest_counts(outcome.counts) == {"passed": 1, "skipped": 1}
    stage = _stage(out)
    assert (stage["cwd"], stage["rootdir"]) == (str(elsewhere), str(project))
    assert stage["command"][1:4] == ["-m", "pytest", str(tests)]
    assert stage["tests_commit"] == head.stdout.strip()
    row = next(t for t in stage["tests"] if t["nodeid"].endswith("test_needs_gpu"))
    assert row["nodeid"] == "pkg/tests/test_below.py::test_needs_gpu"
    assert (row["path"], row["message"]) == (
        "pkg/tests/test_below.py",
        "no GPU here (root conftest)",
    )


def test_relative_paths_start_from_the_current_directory(fixture_suite, tmp_path, monkeypatch):
    suite = fixture_suite("passing")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    config = SuiteConfig(tests=f"../{suite.name}", output_dir="../ev", cwd="..")
    outcome = run_suite(config)
    assert outcome.counts["passed"] == 2
    stage = _stage(tmp_path / "ev")
    assert stage["cwd"] == str(tmp_path)
    assert stage["command"][3] == suite.name  # as a person would type it there
    assert stage["tests_commit"] is None  # not in a repository


def test_a_killed_pytest_process_names_the_test_and_keeps_junit_and_not_run(
    fixture_suite, tmp_path
):
    out = tmp_path / "ev"
    outcome = run_suite(_config(fixture_suite("crash"), out))
    assert outcome.status == "crashed"
    assert "SIGKILL" in outcome.reason and "test_kills_process" in outcome.reason
    outcomes = {r.nodeid.split("::")[-1]: r.outcome for r in outcome.results}
    assert outcomes == {
        "test_before_crash": "passed",
        "test_kills_process": "error",
        "test_after_crash": "not_run",
    }
    assert (outcome.counts["error"], outcome.counts["not_run"]) == (1, 1)
    cases = {c.get("name"): c for c in ET.parse(out / "junit.xml").iter("testcase")}
    assert cases["test_kills_process"].find("error") is not None
    assert cases["test_after_crash"].find("skipped").get("type") == "not_run"


def test_a_test_past_its_timeout_fails_with_its_stack(fixture_suite, tmp_path):
    outcome = run_suite(_config(fixture_suite("hang"), tmp_path / "ev", test_timeout_s=1.0))
    hung = next(r for r in outcome.results if r.nodeid.endswith("test_hangs_forever"))
    assert outcome.status == "ok"
    assert hung.outcome == "failed"
    assert "Timeout" in hung.message
    assert "test_hang.py" in hung.traceback


def test_the_stage_watchdog_kills_a_hang_keeps_its_stack_and_lists_what_never_ran(
    fixture_suite, tmp_path
):
    suite = fixture_suite("hang")
    (suite / "test_later.py").write_text("def test_after_the_hang():\n    assert True\n")
    out = tmp_path / "ev"
    config = _config(suite, out, test_timeout_s=600, stage_timeout_s=3)
    with pytest.raises(StageError) as caught:
        run_suite_stage(config)
    assert caught.value.status == "timeout"
    assert "test_hangs_forever" in caught.value.reason
    stage = _stage(out)
    hung = next(t for t in stage["tests"] if t["nodeid"].endswith("test_hangs_forever"))
    assert "test_hang.py" in hung["traceback"]
    assert "thread stacks" in hung["traceback"]
    assert stage["counts"]["not_run"] == 1
    names = [c.get("name") for c in ET.parse(out / "junit.xml").iter("testcase")]
    assert sorted(names) == ["test_after_the_hang", "test_hangs_forever", "test_quick"]


def test_processes_the_tests_left_behind_are_killed_and_listed(fixture_suite, tmp_path):
    out = tmp_path / "ev"
    outcome = run_suite(_config(fixture_suite("leftovers"), out))
    assert outcome.counts["passed"] == 2
    leftovers = _stage(out)["leftover_processes"]
    kinds = sorted(re.search(r"kakeya-leftover-\w+", p["cmdline"]).group() for p in leftovers)
    assert kinds == ["kakeya-leftover-child", "kakeya-leftover-grandchild"]
    assert all(p["killed"] for p in leftovers)
    for leftover in leftovers:
        alive = psutil.pid_exists(leftover["pid"]) and (
            psutil.Process(leftover["pid"]).status() != psutil.STATUS_ZOMBIE
        )
        assert not alive, leftover


def test_no_tests_is_a_failed_stage(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    outcome = run_suite(_config(empty, tmp_path / "ev"))
    assert outcome.status == "failed"
    assert "no tests" in outcome.reason


def test_workers_give_the_same_counts_and_record_each_tests_worker(fixture_suite, tmp_path):
    suite = fixture_suite("counts")
    serial = run_suite(_config(suite, tmp_path / "serial"))
    parallel = run_suite(_config(suite, tmp_path / "parallel", workers=2))
    assert parallel.counts == serial.counts
    workers = {r.worker for r in parallel.results if "::" in r.nodeid}
    assert workers <= {"gw0", "gw1"} and workers
    assert _stage(tmp_path / "parallel")["workers"] == 2
    timed = [r for r in parallel.results if r.start_s is not None]
    assert timed and all(0 <= r.start_s <= r.stop_s for r in timed)


def test_shards_are_disjoint_and_their_counts_add_up_to_the_whole(fixture_suite, tmp_path):
    suite = fixture_suite("counts")
    whole = run_suite(_config(suite, tmp_path / "whole"))
    slices = [run_suite(_config(suite, tmp_path / f"s{k}", shard=f"{k}/3")) for k in (1, 2, 3)]
    for key in whole.counts:
        assert sum(s.counts[key] for s in slices) == whole.counts[key], key
    ids = [r.nodeid for s in slices for r in s.results]
    assert sorted(ids) == sorted(r.nodeid for r in whole.results)
    assert _stage(tmp_path / "s2")["shard"] == "2/3"
    again = run_suite(_config(suite, tmp_path / "again", shard="2/3"))
    assert [r.nodeid for r in again.results] == [r.nodeid for r in slices[1].results]


def test_the_suites_own_model_load_is_recorded_and_reported(tmp_path):
    """The model fixture's load time reaches the stage file and the evidence's cache facts."""
    from kakeya_evidence.report.evidence import build_evidence
    from kakeya_evidence.stages import write_stage

    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_load.py").write_text(
        "import json, os\n"
        "def test_loads():\n"
        "    path = os.environ['KAKEYA_MODEL_LOAD_FILE']\n"
        "    open(path, 'w').write(json.dumps({'model_id': 'm', 'load_s': 1.25}))\n"
    )
    out = tmp_path / "ev"
    outcome = run_suite(SuiteConfig(tests=str(suite), output_dir=str(out), cwd=str(suite)))
    assert outcome.model_load == {"model_id": "m", "load_s": 1.25}
    write_stage(out, "cache_prewarm", {"status": "ok", "cache": {"id": "m", "load_s": None}})
    assert build_evidence(out)["cache"]["load_s"] == 1.25


def test_a_python_that_cannot_start_is_a_failed_stage(fixture_suite, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    outcome = run_suite(_config(fixture_suite("passing"), tmp_path / "ev"))
    assert outcome.status == "failed" and "could not start pytest" in outcome.reason
