from __future__ import annotations

import json

import pytest
from report_support import make_test, write_run

from kakeya_evidence.cli import main
from kakeya_evidence.errors import ParameterError
from kakeya_evidence.report import ReportConfig
from kakeya_evidence.report.merge import merge_runs


def _shard(tmp_path, name, tests, **kwargs):
    return write_run(tmp_path / name, tests, **kwargs)


def test_shards_merge_into_one_directory_whose_counts_add_up(tmp_path):
    one = _shard(
        tmp_path,
        "shard1",
        [make_test("a.py::t1", start_s=0.0, stop_s=1.0), make_test("a.py::t2", "failed")],
        suite={"shard": "1/2"},
    )
    two = _shard(
        tmp_path,
        "shard2",
        [make_test("b.py::t3", "skipped", start_s=0.0, stop_s=2.0), make_test("b.py::t4")],
        suite={"shard": "2/2"},
    )
    out = tmp_path / "merged"
    assert main(["merge", str(one), str(two), "--output", str(out)]) == 1
    evidence = json.loads((out / "evidence.json").read_text())
    assert evidence["counts"]["passed"] == 2 and evidence["counts"]["failed"] == 1
    assert evidence["counts"]["skipped"] == 1
    assert sorted(t["nodeid"] for t in evidence["tests"]) == [
        "a.py::t1",
        "a.py::t2",
        "b.py::t3",
        "b.py::t4",
    ]
    assert [r["shard"] for r in evidence["merge"]["runs"]] == ["1/2", "2/2"]
    assert evidence["merge"]["device_differences"] == []
    for name in ("report.html", "summary.md", "tests.csv", "stages/integration_suite.json"):
        assert (out / name).is_file()
    html = (out / "report.html").read_text()
    assert 'id="merged"' in html and 'id="devices"' not in html
    lanes = {t["worker"] for t in evidence["tests"] if t["start_s"] is not None}
    assert lanes == {"shard1", "shard2"}  # each shard keeps its own timeline lane
    assert main(["report", "--output", str(out)]) == 1  # the merged directory rebuilds


def test_runs_on_two_devices_show_the_tests_whose_outcome_differs(tmp_path):
    cpu = _shard(
        tmp_path,
        "cpu",
        [make_test("t.py::same"), make_test("t.py::differs"), make_test("t.py::cpu_only")],
        model_load={"device": "cpu", "dtype": "float32"},
    )
    mps = _shard(
        tmp_path,
        "mps",
        [make_test("t.py::same"), make_test("t.py::differs", "failed", message="MPS: nan")],
        model_load={"device": "mps", "dtype": "bfloat16"},
    )
    report = merge_runs([cpu, mps], tmp_path / "merged", ReportConfig())
    merge = report.evidence["merge"]
    assert merge["devices"] == ["cpu", "mps"]
    assert merge["device_differences"] == [
        {"nodeid": "t.py::cpu_only", "outcomes": {"cpu": "passed", "mps": None}},
        {"nodeid": "t.py::differs", "outcomes": {"cpu": "passed", "mps": "failed"}},
    ]
    assert report.evidence["counts"]["passed"] == 4 and report.evidence["counts"]["failed"] == 1
    assert report.evidence["model"]["device"] == "cpu, mps"
    html = report.html_path.read_text()
    table = html[html.index('id="devices"') :].split("</table>")[0]
    assert table.count('class="device-diff-row"') == 2
    assert '<td class="o-failed">failed</td>' in table and "absent" in table
    assert "[mps]" in html and "[cpu]" in html  # each row names its device


def test_stage_statuses_take_the_worst_and_keep_each_reason(tmp_path):
    ok = _shard(tmp_path, "ok", [make_test("a.py::t")])
    crashed = _shard(tmp_path, "bad", [make_test("b.py::t")], status="crashed")
    report = merge_runs([ok, crashed], tmp_path / "merged", ReportConfig())
    suite = report.evidence["stages"][2]
    assert suite["status"] == "crashed" and report.exit_code == 2


def test_bad_merge_inputs_are_clear_errors(tmp_path):
    run = _shard(tmp_path, "run", [make_test("a.py::t")])
    with pytest.raises(ParameterError, match="must not be one of"):
        merge_runs([run], run, ReportConfig())
    with pytest.raises(ParameterError, match="does not exist"):
        merge_runs([tmp_path / "nope"], tmp_path / "out", ReportConfig())
    (tmp_path / "empty").mkdir()
    with pytest.raises(ParameterError, match="holds no stages"):
        merge_runs([tmp_path / "empty"], tmp_path / "out", ReportConfig())
