"""`prewarm --check` and cache misses: fail fast, naming the exact prewarm command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import constants

from inference_engine.errors import InvalidArgument, ModelNotCached, prewarm_command
from inference_engine.models import hf_cache
from inference_engine.models.presets import SHAPED_MODEL_ID, TINY_MODEL_ID
from inference_engine.models.prewarm import check_model, prewarm_model, run_prewarm

REPO_ROOT = Path(__file__).resolve().parents[3]


def run_cli(hf_home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HF_HOME": str(hf_home),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(REPO_ROOT),
    }
    return subprocess.run(
        [sys.executable, "-m", "inference_engine.cli", "prewarm", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("model_id", [TINY_MODEL_ID, SHAPED_MODEL_ID, "Qwen/Qwen3-0.6B"])
def test_check_on_an_empty_cache_names_the_command(tmp_path: Path, model_id: str) -> None:
    with pytest.raises(ModelNotCached) as info:
        check_model(model_id, tmp_path)
    assert f"kakeya-runtime prewarm --model {model_id}" in str(info.value)
    assert info.value.command == prewarm_command(model_id)
    assert not any(tmp_path.iterdir()), "a check must not write to the cache"


def test_check_reports_a_ref_without_its_snapshot(tmp_path: Path) -> None:
    repo = hf_cache.repo_dir(tmp_path, TINY_MODEL_ID)
    hf_cache.write_ref(repo, "0" * 40)
    with pytest.raises(ModelNotCached, match="missing"):
        check_model(TINY_MODEL_ID, tmp_path)


def test_check_reports_a_snapshot_without_weights(tmp_path: Path) -> None:
    repo = hf_cache.repo_dir(tmp_path, "someone/model")
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    hf_cache.write_ref(repo, "a" * 40)
    with pytest.raises(ModelNotCached, match=r"weights .*tokenizer"):
        check_model("someone/model", tmp_path)


@pytest.mark.parametrize("model_id", ["", "bad id", "a/b/c", "../escape"])
def test_invalid_model_ids_are_rejected(tmp_path: Path, model_id: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        check_model(model_id, tmp_path)
    assert info.value.field == "model"
    with pytest.raises(InvalidArgument):
        prewarm_model(model_id, tmp_path)


def test_run_prewarm_check_fails_on_the_default_cache_when_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert run_prewarm(TINY_MODEL_ID, check_only=True) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"run: kakeya-runtime prewarm --model {TINY_MODEL_ID}" in captured.err


def test_run_prewarm_builds_into_the_default_cache_and_prints_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert run_prewarm(TINY_MODEL_ID, check_only=False) == 0
    (line,) = capsys.readouterr().out.splitlines()
    revision = hf_cache.read_ref(hf_cache.repo_dir(tmp_path, TINY_MODEL_ID))
    snapshot = tmp_path / "models--kakeya--tiny-qwen3" / "snapshots" / str(revision)
    size = hf_cache.snapshot_size(snapshot)
    assert line == f"ok {TINY_MODEL_ID} revision={revision} path={snapshot} size_bytes={size}"
    assert run_prewarm(TINY_MODEL_ID, check_only=True) == 0
    assert capsys.readouterr().out.strip() == line


def test_cli_check_exits_1_with_the_command(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "--model", TINY_MODEL_ID, "--check")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "kakeya-runtime prewarm --model kakeya/tiny-qwen3" in result.stderr
    assert not (tmp_path / "hub").exists()


def test_cli_prewarm_of_an_unreachable_hub_model_exits_1(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "--model", "kakeya-test/not-cached")
    assert result.returncode == 1
    assert "kakeya-runtime prewarm --model kakeya-test/not-cached" in result.stderr
    assert "download failed" in result.stderr
