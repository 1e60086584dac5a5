"""bench.json names the commit it measured; a run refuses a bench of another commit."""

from __future__ import annotations

import json
from pathlib import Path

from kakeya_evidence.bench.run import write_bench
from kakeya_evidence.cli import main
from kakeya_evidence.common.commit import bench_commit_problem, head_commit

FIXTURES = Path(__file__).parents[1] / "fixtures"


def test_a_written_bench_records_the_commit_it_measured(tmp_path):
    path = write_bench(tmp_path, {"model": "m"})
    assert json.loads(path.read_text())["commit"] == head_commit()


def test_run_refuses_a_bench_of_another_commit_and_says_which(tmp_path, capsys):
    out = tmp_path / "ev"
    out.mkdir()
    bench = json.loads((FIXTURES / "bench.json").read_text())
    bench["commit"] = "0123456789ab" + "0" * 28
    (out / "bench.json").write_text(json.dumps(bench))
    code = main(["run", "--output", str(out), "--tests", str(tmp_path), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "measured at commit 0123456789ab" in err
    assert f"this is commit {head_commit()[:12]}" in err
    evidence = json.loads((out / "evidence.json").read_text())
    assert evidence["exit_code"] == 2


def test_run_accepts_a_bench_of_this_commit(tmp_path):
    bench = json.loads((FIXTURES / "bench.json").read_text())
    bench["commit"] = head_commit()
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(bench))
    assert bench_commit_problem(path) is None
