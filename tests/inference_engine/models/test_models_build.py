"""Building the tiny preset into an HF cache: deterministic, scannable, loadable offline."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import scan_cache_dir

from inference_engine.errors import ModelNotCached
from inference_engine.models import build, hf_cache
from inference_engine.models.presets import PRESETS, TINY_MODEL_ID
from inference_engine.models.prewarm import CachedModel, check_model, prewarm_model

REPO_ROOT = Path(__file__).resolve().parents[3]
REPO_FOLDER = "models--kakeya--tiny-qwen3"
OFFLINE_LOAD = """
import json
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained("kakeya/tiny-qwen3")
tokenizer = AutoTokenizer.from_pretrained("kakeya/tiny-qwen3")
print(json.dumps({"arch": type(model).__name__, "vocab": model.config.vocab_size,
                  "tokenizer": len(tokenizer), "eos": tokenizer.eos_token}))
"""


@pytest.fixture(scope="module")
def cache_a(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hf_home_a") / "hub"


@pytest.fixture(scope="module")
def built(cache_a: Path) -> CachedModel:
    return prewarm_model(TINY_MODEL_ID, cache_a)


def relative_files(snapshot: Path) -> dict[str, bytes]:
    return {
        path.relative_to(snapshot).as_posix(): path.read_bytes()
        for path in hf_cache.snapshot_files(snapshot)
    }


def test_build_lands_in_the_hub_layout(built: CachedModel, cache_a: Path) -> None:
    repo = cache_a / REPO_FOLDER
    assert built.path == repo / "snapshots" / built.revision
    assert (repo / "refs" / "main").read_text() == built.revision
    assert len(built.revision) == 40 and int(built.revision, 16) >= 0
    names = set(relative_files(built.path))
    expected = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"}
    assert expected | {"tokenizer_config.json", "chat_template.jinja"} <= names
    assert not [path for path in repo.iterdir() if path.name.startswith(".kakeya")]


def test_tiny_model_is_a_few_megabytes(built: CachedModel) -> None:
    assert 1_000_000 < built.size_bytes < 20_000_000
    assert built.size_bytes == hf_cache.snapshot_size(built.path)


def test_revision_is_the_content_hash(built: CachedModel) -> None:
    assert hf_cache.content_revision(built.path) == built.revision


def test_two_builds_give_identical_bytes_and_revision(built: CachedModel, tmp_path: Path) -> None:
    second = prewarm_model(TINY_MODEL_ID, tmp_path / "hub")
    assert second.revision == built.revision
    assert relative_files(second.path) == relative_files(built.path)


def test_scan_cache_dir_lists_the_revision(built: CachedModel, cache_a: Path) -> None:
    info = scan_cache_dir(cache_a)
    assert not info.warnings
    (repo,) = [repo for repo in info.repos if repo.repo_id == TINY_MODEL_ID]
    assert repo.repo_type == "model"
    (revision,) = repo.revisions
    assert revision.commit_hash == built.revision
    assert revision.refs == frozenset({"main"})
    assert revision.size_on_disk == built.size_bytes


def test_config_and_generation_config_carry_the_token_ids(built: CachedModel) -> None:
    config = json.loads((built.path / "config.json").read_text())
    generation = json.loads((built.path / "generation_config.json").read_text())
    tokenizer_config = json.loads((built.path / "tokenizer_config.json").read_text())
    assert config["model_type"] == "qwen3"
    assert config["architectures"] == ["Qwen3ForCausalLM"]
    assert config["vocab_size"] == 4096
    assert config["eos_token_id"] in generation["eos_token_id"]
    assert tokenizer_config["eos_token"] == "<|im_end|>"


def test_second_prewarm_is_a_no_op(
    built: CachedModel, cache_a: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = built.path / "model.safetensors"
    before = weights.stat().st_mtime_ns

    def refuse(*_args: object) -> None:
        raise AssertionError("an installed preset must not be rebuilt")

    monkeypatch.setattr(build, "build_preset", refuse)
    assert prewarm_model(TINY_MODEL_ID, cache_a) == built
    assert weights.stat().st_mtime_ns == before


def test_check_finds_the_built_model(built: CachedModel, cache_a: Path) -> None:
    assert check_model(TINY_MODEL_ID, cache_a) == built


def test_check_rejects_tampered_bytes_and_prewarm_repairs_them(
    built: CachedModel, tmp_path: Path
) -> None:
    cache = tmp_path / "hub"
    prewarm_model(TINY_MODEL_ID, cache)
    config = cache / REPO_FOLDER / "snapshots" / built.revision / "config.json"
    config.write_text(config.read_text().replace("4096", "4097"))
    with pytest.raises(ModelNotCached, match="do not match revision"):
        check_model(TINY_MODEL_ID, cache)
    assert prewarm_model(TINY_MODEL_ID, cache).revision == built.revision
    assert check_model(TINY_MODEL_ID, cache) == dataclasses.replace(built, path=config.parent)


def test_a_new_recipe_installs_a_new_revision(
    built: CachedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "hub"
    prewarm_model(TINY_MODEL_ID, cache)
    reseeded = dataclasses.replace(PRESETS[TINY_MODEL_ID], seed=7)
    monkeypatch.setitem(PRESETS, TINY_MODEL_ID, reseeded)
    second = prewarm_model(TINY_MODEL_ID, cache)
    assert second.revision != built.revision
    assert hf_cache.read_ref(cache / REPO_FOLDER) == second.revision
    revisions = {path.name for path in (cache / REPO_FOLDER / "snapshots").iterdir()}
    assert revisions == {built.revision, second.revision}


def test_a_failed_build_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(_preset: object, out_dir: Path) -> None:
        (out_dir / "config.json").write_text("{}")
        raise OSError("disk full")

    monkeypatch.setattr(build, "build_preset", explode)
    cache = tmp_path / "hub"
    with pytest.raises(OSError, match="disk full"):
        prewarm_model(TINY_MODEL_ID, cache)
    assert list((cache / REPO_FOLDER).iterdir()) == []
    with pytest.raises(ModelNotCached):
        check_model(TINY_MODEL_ID, cache)


def test_offline_from_pretrained_loads_it_by_id(built: CachedModel, cache_a: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HF_HOME": str(cache_a.parent),
        "HF_HUB_OFFLINE": "1",
    }
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_LOAD],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == {
        "arch": "Qwen3ForCausalLM",
        "vocab": 4096,
        "tokenizer": 4096,
        "eos": "<|im_end|>",
    }
