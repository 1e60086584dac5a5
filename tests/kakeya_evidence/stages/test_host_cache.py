from __future__ import annotations

import json
from pathlib import Path

import pytest

from kakeya_evidence.errors import CacheMissError
from kakeya_evidence.stages.cache import CacheConfig, check_cache, parse_ok_line
from kakeya_evidence.stages.host import collect_host_facts, run_host_check


def test_host_facts_cover_what_a_reviewer_needs(tmp_path: Path):
    facts = run_host_check(tmp_path)
    for key in ("chip", "cpu_cores_logical", "memory_total_bytes", "memory_pressure", "os"):
        assert facts[key] is not None
    assert facts["python"].count(".") == 2
    assert facts["torch"] and facts["transformers"]
    assert isinstance(facts["cuda"], bool) and isinstance(facts["mps"], bool)
    assert facts["disk_free_bytes"] > 0
    stage = json.loads((tmp_path / "stages" / "host_check.json").read_text())
    assert stage["status"] == "ok"
    assert stage["host"]["chip"] == facts["chip"]


def test_host_facts_survive_a_broken_probe():
    facts = collect_host_facts(".", probe_timeout_s=0.001)
    assert facts["cuda"] is None
    assert facts["probe_error"]


def test_parse_ok_line_reads_the_prewarm_output():
    line = "ok kakeya/tiny-qwen3 revision=abc path=/c/snap size_bytes=123\n"
    assert parse_ok_line("noise\n" + line) == {
        "id": "kakeya/tiny-qwen3",
        "revision": "abc",
        "path": "/c/snap",
        "size_bytes": 123,
    }
    assert parse_ok_line("error: missing") is None


@pytest.mark.slow
def test_a_missing_model_offline_names_the_prewarm_command(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CacheMissError) as caught:
        check_cache(CacheConfig(model="nobody/missing-model", measure_load=False, timeout_s=120))
    assert "kakeya-runtime prewarm --model nobody/missing-model" in caught.value.reason
