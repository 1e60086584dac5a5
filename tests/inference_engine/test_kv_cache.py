"""SinkWindowCache on a small real Qwen3 built in memory (float32, seeded)."""

from __future__ import annotations

import pytest
import torch
from random_qwen3 import random_qwen3
from transformers import Qwen3ForCausalLM

from inference_engine.errors import InvariantViolation
from inference_engine.kv_cache import CacheShape, SinkWindowCache
from inference_engine.session.generator import forward, prefill, prefill_chunks

SINK, WINDOW = 3, 10


@pytest.fixture(scope="module")
def model() -> Qwen3ForCausalLM:
    return random_qwen3(vocab_size=97, hidden_size=32, head_dim=8)


def new_cache(model: Qwen3ForCausalLM, chunk: int = 8) -> SinkWindowCache:
    return SinkWindowCache(CacheShape.of(model), SINK, WINDOW, chunk)


def reference_logits(model: Qwen3ForCausalLM, tokens: list[int]) -> torch.Tensor:
    """No cache: one forward with the sink+window pattern as an explicit full mask."""
    n = len(tokens)
    q = torch.arange(n)[:, None]
    k = torch.arange(n)[None, :]
    mask = (k <= q) & ((k < SINK) | (k > q - WINDOW))
    with torch.inference_mode():
        out = model(
            input_ids=torch.tensor([tokens]),
            attention_mask=mask[None, None],
            position_ids=torch.arange(n)[None],
        )
    return out.logits[0, -1]


def run_chunked(model: Qwen3ForCausalLM, tokens: list[int], sizes: list[int]) -> torch.Tensor:
    cache = new_cache(model)
    offset = 0
    with torch.inference_mode():
        for size in sizes:
            logits = prefill(model, cache, tokens[offset : offset + size], chunk=8)
            offset += size
    assert offset == len(tokens)
    return logits


TOKENS = [(7 * i + 3) % 97 for i in range(41)]  # crosses S + W = 13 several times


@pytest.mark.parametrize(
    "sizes", [[41], [1] * 41, [5, 1, 12, 3, 20]], ids=["one-shot", "token-by-token", "uneven"]
)
def test_chunked_prefill_matches_full_masked_reference(model, sizes):
    expected = reference_logits(model, TOKENS)
    got = run_chunked(model, TOKENS, sizes)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert int(got.argmax()) == int(expected.argmax())


def test_window_really_forgets_the_middle(model):
    """Tokens between the sink and the window must not influence the next logits."""
    a = TOKENS[:]
    b = TOKENS[:]
    b[SINK + 2] = (b[SINK + 2] + 1) % 97  # far outside the window of the last query
    torch.testing.assert_close(run_chunked(model, a, [41]), run_chunked(model, b, [41]))
    c = TOKENS[:]
    c[0] = (c[0] + 1) % 97  # inside the sink: must matter
    assert not torch.allclose(run_chunked(model, a, [41]), run_chunked(model, c, [41]))


def test_live_tokens_and_bytes_stay_flat_past_the_bound(model):
    cache = new_cache(model)
    live = []
    with torch.inference_mode():
        for token in TOKENS:
            forward(model, cache, [token])
            live.append(cache.live_bytes)
    bound = cache.bound_bytes
    assert max(live) == bound
    assert live[SINK + WINDOW - 2 :] == [bound] * (len(TOKENS) - SINK - WINDOW + 2)
    assert cache.cached_tokens == SINK + WINDOW - 1
    assert cache.dropped_tokens == len(TOKENS) - (SINK + WINDOW - 1)
    assert cache.capacity <= cache.max_capacity


def test_prefill_chunks_align_to_absolute_positions():
    assert prefill_chunks(0, list(range(10)), 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert prefill_chunks(6, list(range(5)), 4) == [[0, 1], [2, 3, 4]]
    assert prefill_chunks(3, [9], 4) == [[9]]


def test_inv1_breaks_when_a_layer_misses_a_forward(model):
    cache = new_cache(model)
    with torch.inference_mode():
        forward(model, cache, [1, 2, 3])
        cache.layers[1].writes -= 1
        with pytest.raises(InvariantViolation) as raised:
            cache.check_invariants()
    assert raised.value.kind == "inv1"


def test_inv2_breaks_when_positions_go_backwards(model):
    cache = new_cache(model)
    with torch.inference_mode():
        forward(model, cache, [1, 2, 3])
    cache.next_position -= 1  # as if a later forward would reuse position 2
    with pytest.raises(InvariantViolation) as raised:
        cache.check_invariants()
    assert raised.value.kind in {"inv1", "inv2"}
    cache.next_position += 1
    cache.slot_positions[0] = cache.slot_positions[1]
    with pytest.raises(InvariantViolation) as raised:
        cache._check_inv2()
    assert raised.value.kind == "inv2"


def test_the_row_forward_computes_what_the_model_call_computes(model):
    """The row path skips the model's wrappers, not its math: a chunk (each row attending
    alone) agrees to rounding (test_decode_step: one token on equal caches, to the bit)."""
    via_model, direct = new_cache(model, chunk=20), new_cache(model, chunk=20)
    with torch.inference_mode():
        for ids in (TOKENS[:20], [5], [7, 8, 9], [11]):
            position_ids, mask = via_model.begin_forward(len(ids))
            expected = model(
                input_ids=torch.tensor([ids]),
                attention_mask=mask,
                position_ids=position_ids,
                cache=via_model,
                use_cache=True,
                logits_to_keep=1,
            ).logits[0, -1]
            via_model.end_forward(len(ids))
            got = forward(model, direct, ids)
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_a_query_sees_the_same_slots_whatever_the_chunking(model):
    """Slots are a function of the position (sink in order, then a ring), so every chunking
    lays the keys out alike and a query attends over the same leading slots."""
    one, other = new_cache(model), new_cache(model)
    with torch.inference_mode():
        for cache, sizes in ((one, [1] * 41), (other, [8, 3, 8, 8, 5, 9])):
            offset = 0
            for size in sizes:
                prefill(model, cache, TOKENS[offset : offset + size], chunk=8)
                offset += size
            assert cache.cached_tokens == SINK + WINDOW - 1
    assert one.slot_positions.tolist() == other.slot_positions.tolist()
    assert [one.attend_slots(p) for p in range(41)] == [other.attend_slots(p) for p in range(41)]
