"""`load_model`, the runtime's one loading path, on the tiny preset in a temporary cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import DynamicCache

from inference_engine.config import ModelConfig
from inference_engine.errors import InvalidArgument, ModelNotCached
from inference_engine.models.loader import LoadedModel, load_model
from inference_engine.models.presets import TINY_MODEL_ID
from inference_engine.models.prewarm import CachedModel, prewarm_model

FLOAT32 = ModelConfig(model_id=TINY_MODEL_ID, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("loader") / "hub"


@pytest.fixture(scope="module")
def cached(cache: Path) -> CachedModel:
    return prewarm_model(TINY_MODEL_ID, cache)


@pytest.fixture(scope="module")
def loaded(cached: CachedModel, cache: Path) -> LoadedModel:
    return load_model(FLOAT32, cache)


def logits_of(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits[0]  # [T, V]


def test_a_miss_raises_model_not_cached_naming_the_command(tmp_path: Path) -> None:
    with pytest.raises(ModelNotCached, match="kakeya-runtime prewarm --model kakeya/tiny-qwen3"):
        load_model(FLOAT32, tmp_path)


def test_bad_device_is_reported_before_touching_the_cache(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="device"):
        load_model(ModelConfig(model_id=TINY_MODEL_ID, device="tpu"), tmp_path)


def test_loaded_model_describes_itself(loaded: LoadedModel, cached: CachedModel) -> None:
    assert loaded.model_id == TINY_MODEL_ID
    assert loaded.revision == cached.revision
    assert loaded.device == torch.device("cpu")
    assert loaded.dtype is torch.float32
    assert loaded.vocab_size == 4096 == loaded.model.config.vocab_size
    assert not loaded.model.training
    assert {param.dtype for param in loaded.model.parameters()} == {torch.float32}
    assert loaded.model.config._attn_implementation == "sdpa"
    assert loaded.load_s > 0
    assert loaded.tokenizer.eos_token == "<|im_end|>"
    assert len(loaded.tokenizer) == 4096


def test_bf16_load(cached: CachedModel, cache: Path) -> None:
    config = ModelConfig(model_id=TINY_MODEL_ID, device="cpu", dtype="bf16")
    model = load_model(config, cache).model
    assert {param.dtype for param in model.parameters()} == {torch.bfloat16}


def test_greedy_logits_are_peaky(loaded: LoadedModel) -> None:
    ids = torch.randint(0, 4091, (1, 256), generator=torch.Generator().manual_seed(0))
    top2 = logits_of(loaded.model, ids).topk(2, dim=-1).values
    gaps = top2[:, 0] - top2[:, 1]
    # Greedy streams are compared across prefill chunkings: gaps must dwarf 1e-5 noise.
    assert gaps.median() > 1.0
    assert (gaps < 1e-3).float().mean() < 0.01


def test_outputs_depend_on_the_history(loaded: LoadedModel) -> None:
    ids = torch.randint(0, 4091, (1, 200), generator=torch.Generator().manual_seed(1))
    edited = ids.clone()
    edited[0, 20] = (edited[0, 20] + 1) % 4091
    before = logits_of(loaded.model, ids)[100:].argmax(-1)
    after = logits_of(loaded.model, edited)[100:].argmax(-1)
    # A KV-cache bug that loses old positions must change what the model predicts.
    assert (before != after).float().mean() > 0.1


def test_chunked_prefill_matches_one_shot(loaded: LoadedModel) -> None:
    ids = torch.randint(0, 4091, (1, 96), generator=torch.Generator().manual_seed(2))
    one_shot = logits_of(loaded.model, ids)
    cache = DynamicCache(config=loaded.model.config)
    chunks = []
    with torch.no_grad():
        for start in range(0, 96, 17):
            piece = ids[:, start : start + 17]
            positions = torch.arange(start, start + piece.shape[1])[None, :]
            out = loaded.model(input_ids=piece, position_ids=positions, cache=cache, use_cache=True)
            chunks.append(out.logits[0])
    chunked = torch.cat(chunks)
    # Logits reach ~30 in magnitude; float32 chunking noise stays near 1e-4.
    assert torch.allclose(chunked, one_shot, atol=2e-3, rtol=0)
    assert torch.equal(chunked.argmax(-1), one_shot.argmax(-1))


def test_greedy_generation_is_not_a_single_repeated_token(loaded: LoadedModel) -> None:
    prompt = loaded.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Tell me about caches."}],
        add_generation_prompt=True,
        enable_thinking=False,
        return_dict=False,
    )
    ids = torch.tensor([prompt])  # [1, T]
    produced: list[int] = []
    with torch.no_grad():
        for _ in range(24):
            next_id = int(loaded.model(input_ids=ids).logits[0, -1].argmax())
            produced.append(next_id)
            ids = torch.cat([ids, torch.tensor([[next_id]])], dim=1)
    assert len(set(produced)) > 4
