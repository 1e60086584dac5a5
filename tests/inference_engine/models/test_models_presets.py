"""The embedded presets' shapes: the shaped preset is exactly Qwen3-0.6B."""

from __future__ import annotations

import dataclasses

import pytest
from transformers import Qwen3Config

from inference_engine.models.presets import (
    PRESETS,
    SHAPED_MODEL_ID,
    TINY_MODEL_ID,
    TOKENIZER_VOCAB_SIZE,
    Preset,
    find_preset,
)

# From Qwen/Qwen3-0.6B's config.json.
QWEN3_0_6B = {
    "vocab_size": 151936,
    "hidden_size": 1024,
    "intermediate_size": 3072,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "max_position_embeddings": 40960,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
    "hidden_act": "silu",
    "attention_bias": False,
    "use_sliding_window": False,
    "model_type": "qwen3",
}


def test_ids_are_the_documented_ones() -> None:
    assert TINY_MODEL_ID == "kakeya/tiny-qwen3"
    assert SHAPED_MODEL_ID == "kakeya/qwen3-0.6b-shaped"
    assert set(PRESETS) == {TINY_MODEL_ID, SHAPED_MODEL_ID}
    assert all(preset.model_id == model_id for model_id, preset in PRESETS.items())


def test_shaped_preset_config_equals_qwen3_0_6b() -> None:
    config = Qwen3Config(**PRESETS[SHAPED_MODEL_ID].config_kwargs())
    assert {key: getattr(config, key) for key in QWEN3_0_6B} == QWEN3_0_6B
    assert config.rope_parameters["rope_theta"] == 1_000_000.0
    assert config.rope_parameters["rope_type"] == "default"
    assert config.dtype == "bfloat16" or str(config.dtype) == "torch.bfloat16"


def test_tiny_preset_matches_the_tokenizer_and_is_small() -> None:
    preset = PRESETS[TINY_MODEL_ID]
    config = Qwen3Config(**preset.config_kwargs())
    assert config.vocab_size == TOKENIZER_VOCAB_SIZE
    assert config.num_attention_heads * config.head_dim == config.hidden_size
    assert config.num_attention_heads % config.num_key_value_heads == 0
    assert config.tie_word_embeddings
    assert config.max_position_embeddings == 32768
    assert config.rope_parameters["rope_theta"] == 1_000_000.0
    assert preset.save_dtype == "float32"


def test_presets_are_frozen_values() -> None:
    preset = PRESETS[TINY_MODEL_ID]
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset.seed = 1  # type: ignore[misc]
    assert preset.recipe()["seed"] == preset.seed
    assert "seed" not in preset.config_kwargs()


def test_find_preset_tells_presets_from_hub_models() -> None:
    assert isinstance(find_preset(TINY_MODEL_ID), Preset)
    assert find_preset("Qwen/Qwen3-0.6B") is None
