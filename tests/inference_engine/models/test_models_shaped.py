"""The Qwen3-0.6B-shaped preset, built once (about 1.2 GB, tens of seconds): slow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from test_models_presets import QWEN3_0_6B  # the reference numbers, written once

from inference_engine.config import ModelConfig
from inference_engine.models.presets import SHAPED_MODEL_ID
from inference_engine.models.prewarm import CachedModel, prewarm_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shaped") / "hub"


@pytest.fixture(scope="module")
def shaped(cache: Path) -> CachedModel:
    return prewarm_model(SHAPED_MODEL_ID, cache)


def test_shaped_snapshot_has_qwen3_0_6b_config_in_bf16(shaped: CachedModel) -> None:
    config = json.loads((shaped.path / "config.json").read_text())
    assert {key: config[key] for key in QWEN3_0_6B} == QWEN3_0_6B
    assert config["rope_parameters"]["rope_theta"] == 1_000_000.0
    assert 1.1e9 < shaped.size_bytes < 1.3e9
    with safe_open(shaped.path / "model.safetensors", framework="pt") as weights:
        names = list(weights.keys())
        assert "lm_head.weight" not in names  # tied to the embedding
        embedding = weights.get_slice("model.embed_tokens.weight")
        assert embedding.get_dtype() == "BF16"
        assert embedding.get_shape() == [151936, 1024]


def test_shaped_model_loads_and_runs(shaped: CachedModel, cache: Path) -> None:
    from inference_engine.models.loader import load_model

    config = ModelConfig(model_id=SHAPED_MODEL_ID, device="cpu", dtype="bfloat16")
    loaded = load_model(config, cache)
    assert loaded.revision == shaped.revision
    assert loaded.vocab_size == 151936
    ids = torch.tensor([loaded.tokenizer.encode("The keeper opened a new ledger.")])
    with torch.no_grad():
        logits = loaded.model(input_ids=ids).logits[0].float()  # [T, V]
    assert torch.isfinite(logits).all()
    assert logits.std() > 1.0
