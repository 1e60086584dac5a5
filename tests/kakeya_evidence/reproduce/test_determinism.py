"""Determinism facts: recorded in the provenance, shown in the report, diffed by a reproduction."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from kakeya_evidence.reproduce.checkout import dirty_refusal, map_path
from kakeya_evidence.reproduce.compare import DIFFER, MATCH, compare_runs, render_markdown
from kakeya_evidence.reproduce.determinism import TORCH_FLAGS, collect_determinism, lock_pins
from kakeya_evidence.reproduce.errors import CannotReproduce
from kakeya_evidence.reproduce.source import load_evidence
from kakeya_evidence.stages.host import collect_host_facts

REPO = Path(__file__).resolve().parents[3]


def test_the_host_probe_reads_torchs_flags_and_thread_counts():
    facts = collect_host_facts()
    assert facts["probe_error"] is None
    assert all(key in facts for key in TORCH_FLAGS)
    assert facts["torch_deterministic_algorithms"] is False  # torch's default
    assert facts["torch_num_threads"] >= 1


def test_determinism_records_flags_env_seed_and_lock(monkeypatch):
    monkeypatch.setenv("PYTHONHASHSEED", "7")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    host = {key: f"value {key}" for key in TORCH_FLAGS}
    facts = collect_determinism({"model": "kakeya/tiny-qwen3"}, host, REPO)
    assert {key: facts[key] for key in TORCH_FLAGS} == host
    assert facts["env PYTHONHASHSEED"] == "7" and facts["env OMP_NUM_THREADS"] is None
    assert facts["seed model build"] == 20250617
    assert collect_determinism({"model": "Qwen/Qwen3-0.6B"}, {}, REPO)["seed model build"] is None
    assert facts["lock file"] == "locks/linux-cpu.txt"
    assert facts["lock fresh"] is True and len(facts["lock sha256"]) == 64
    assert isinstance(facts["lock differs"], list)


def test_lock_pins_normalises_names():
    text = "Jinja2==3.1.6 \\\n    --hash=sha256:ab\ntyping_extensions==4.15.0\n# x==1\n"
    assert lock_pins(text) == {"jinja2": "3.1.6", "typing-extensions": "4.15.0"}


def test_the_evidence_records_determinism_and_the_report_shows_it(tmp_path, monkeypatch):
    from kakeya_evidence.report.evidence import build_evidence
    from kakeya_evidence.report.html import render_html

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    built = build_evidence(tmp_path, parameters={"model": "kakeya/tiny-qwen3"})
    determinism = built["provenance"]["determinism"]
    assert determinism["env OMP_NUM_THREADS"] == "3"
    assert determinism["seed model build"] == 20250617
    html = render_html(built, [], {})
    assert "determinism: env OMP_NUM_THREADS</th><td>3" in html
    assert "determinism: env PYTHONHASHSEED</th><td>not set" in html


def evidence(outcomes: dict[str, str], verdict: str, **determinism: object) -> dict:
    tests = [{"nodeid": n, "outcome": o} for n, o in outcomes.items()]
    return {
        "verdict": verdict,
        "tests": tests,
        "model": {"id": "kakeya/tiny-qwen3", "revision": "r1", "device": "cpu"},
        "host": {"python": "3.11.7", "machine": "x86_64"},
        "provenance": {
            "commit": "abc",
            "packages": {"torch": "2.13.0"},
            "determinism": {"torch_num_threads": 2, **determinism},
        },
    }


def test_a_reproduction_names_each_difference():
    then = evidence({"t.py::a": "passed", "t.py::b": "failed"}, "failed")
    now = evidence({"t.py::a": "passed", "t.py::b": "passed"}, "passed", torch_num_threads=4)
    now["provenance"]["packages"]["torch"] = "2.14.0"
    report = compare_runs(then, now)
    assert report["result"] == DIFFER
    assert report["tests_differ"] == [{"nodeid": "t.py::b", "then": "failed", "now": "passed"}]
    assert report["determinism_differs"] == [{"key": "torch_num_threads", "then": 2, "now": 4}]
    assert report["packages_differ"] == [{"key": "torch", "then": "2.13.0", "now": "2.14.0"}]
    markdown = render_markdown(report)
    assert "| torch_num_threads | 2 | 4 |" in markdown and "outcomes differ" in markdown
    # one test only: the unchanged one matches
    assert compare_runs(then, now, "tests/t.py::a")["result"] == MATCH
    # a file or folder selects the tests under it; a node id of another rootdir still matches
    assert compare_runs(then, now, "t.py")["verdict"] == {
        "then": "1 failed, 1 passed",
        "now": "2 passed",
    }
    assert compare_runs(then, now, "/src/repo/t.py::a")["tests_compared"] == 1
    assert compare_runs(then, now, "other.py")["result"] == DIFFER  # nothing compared


def test_the_same_outcomes_on_another_revision_differ():
    then = evidence({"t.py::a": "passed"}, "passed")
    now = evidence({"t.py::a": "passed"}, "passed")
    assert compare_runs(then, now)["result"] == MATCH
    now["model"]["revision"] = "r2"
    assert compare_runs(then, now)["result"] == DIFFER


def test_perf_is_shown_with_its_noise_band():
    then, now = evidence({"a": "passed"}, "passed"), evidence({"a": "passed"}, "passed")
    then["perf"] = {"decode_tok_s": {"runtime": 100.0}, "decode_tok_s_spread": {"runtime": 5.0}}
    assert compare_runs(then, now)["perf"]["status"] == "not re-measured"
    now["perf"] = {"decode_tok_s": {"runtime": 90.0}, "decode_tok_s_spread": {"runtime": 5.0}}
    rows = compare_runs(then, now)["perf"]["rows"]
    assert [(r["metric"], r["baseline"], r["current"]) for r in rows] == [
        ("decode_tok_s.runtime", 100.0, 90.0)
    ]
    assert "noise band" in render_markdown(compare_runs(then, now))


def test_evidence_loads_from_a_file_a_directory_or_a_zip(tmp_path):
    data = evidence({"a": "passed"}, "passed")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "evidence.json").write_text(json.dumps(data))
    with zipfile.ZipFile(tmp_path / "artifact.zip", "w") as archive:
        archive.writestr("evidence/evidence.json", json.dumps(data))
    for source in ("run/evidence.json", "run", "artifact.zip"):
        assert load_evidence(tmp_path / source)["verdict"] == "passed"
    (tmp_path / "empty").mkdir()
    with pytest.raises(CannotReproduce, match=r"no evidence\.json"):
        load_evidence(tmp_path / "empty")
    (tmp_path / "nocommit.json").write_text(json.dumps({"provenance": {}}))
    with pytest.raises(CannotReproduce, match="records no commit"):
        load_evidence(tmp_path / "nocommit.json")


def test_paths_of_the_original_checkout_move_into_the_worktree(tmp_path):
    tree = tmp_path / "wt"
    assert map_path("/src/repo/tests/x.py::t", "/src/repo", tree) == f"{tree}/tests/x.py::t"
    assert map_path("tests/integration", "/src/repo", tree) == "tests/integration"
    assert map_path("/elsewhere/x.py", "/src/repo", tree) == "/elsewhere/x.py"


def test_a_clean_original_needs_no_refusal():
    assert dirty_refusal({"commit": "abc", "dirty": False}) is None
    assert "--allow-dirty" in (dirty_refusal({"commit": "abc", "dirty": True}) or "")


def test_recorded_versions_the_index_no_longer_has_are_listed(tmp_path):
    from kakeya_evidence.reproduce.environment import unavailable_versions

    # a stand-in for `python -m pip index versions NAME`, as pip prints it
    fake = tmp_path / "python"
    fake.write_text(
        '#!/bin/sh\necho "$4 (2.13.0+cpu)"\necho "Available versions: 2.13.0+cpu, 2.12.1"\n'
    )
    fake.chmod(0o755)
    pins = {"torch": "2.13.0", "numpy": "1.0.0", "other": "2.12.1"}
    assert unavailable_versions(str(fake), pins) == ["numpy==1.0.0"]
