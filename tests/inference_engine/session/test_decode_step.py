"""The batched decode step on a small real Qwen3 built in memory (float32, seeded).

float32 is the strict case: on this CPU a matrix product of one row and one of several rows
round differently, so only fixed lanes make a session's logits independent of the batch.
"""

from __future__ import annotations

import copy

import pytest
import torch
from random_qwen3 import random_qwen3
from transformers import Qwen3ForCausalLM

from inference_engine.kv_cache import CacheShape, SinkWindowCache
from inference_engine.session.generator import (
    decode_step,
    forward,
    prefill,
    rows_batch_invariant,
)

SINK, WINDOW, CHUNK, LANES = 3, 12, 8, 6
PROMPTS = [[(5 * i + 7 * k + 1) % 89 for k in range(9 + 4 * i)] for i in range(LANES)]


@pytest.fixture(scope="module")
def model() -> Qwen3ForCausalLM:
    return random_qwen3(vocab_size=89, hidden_size=64, head_dim=16)


def prefilled(model: Qwen3ForCausalLM, which: int) -> tuple[SinkWindowCache, int]:
    cache = SinkWindowCache(CacheShape.of(model), SINK, WINDOW, CHUNK)
    with torch.inference_mode():
        first = int(prefill(model, cache, PROMPTS[which], CHUNK).argmax())
    return cache, first


def run(
    model,
    order: list[int],
    steps: int,
    join_at: dict[int, int] | None = None,
    lanes: int | None = LANES,
):
    """Greedy-decode the sessions in `order` together; `join_at[s]`: the step s joins at.
    Returns each session's logits per step (the step's row for that session)."""
    join_at = join_at or {}
    state = {s: prefilled(model, s) for s in order}
    tokens = {s: first for s, (_, first) in state.items()}
    rows: dict[int, list[torch.Tensor]] = {s: [] for s in order}
    with torch.inference_mode():
        for step in range(steps):
            active = [s for s in order if join_at.get(s, 0) <= step]
            caches = [state[s][0] for s in active]
            width = lanes or len(active)  # None: exactly the active rows, unpadded
            logits, faults = decode_step(model, caches, [tokens[s] for s in active], width)
            assert faults == [None] * len(active)
            for s, row in zip(active, logits, strict=True):
                rows[s].append(row.clone())
                tokens[s] = int(row.argmax())
    return rows


def test_a_session_alone_amid_others_and_joining_late_gets_bit_identical_logits(model):
    steps = 16  # past S + W: eviction and slot reuse happen during the run
    alone = run(model, [0], steps)[0]
    crowd = run(model, [3, 1, 0, 5, 2, 4], steps)[0]  # session 0 in lane 2
    others_first = run(model, [1, 2, 3, 0], steps + 5, join_at={0: 5})[0]  # joins a running batch
    for a, b, c in zip(alone, crowd, others_first, strict=True):
        assert torch.equal(a, b)
        assert torch.equal(a, c)


def test_batched_step_computes_what_a_one_token_forward_computes(model):
    caches, firsts = zip(*(prefilled(model, s) for s in range(3)), strict=True)
    twins, _ = zip(*(prefilled(model, s) for s in range(3)), strict=True)
    with torch.inference_mode():
        logits, _ = decode_step(model, list(caches), list(firsts), LANES)
        for row, twin, first in zip(logits, twins, firsts, strict=True):
            expected = forward(model, twin, [first])
            torch.testing.assert_close(row, expected, rtol=1e-4, atol=1e-4)
            assert int(row.argmax()) == int(expected.argmax())
    assert [c.next_position for c in caches] == [t.next_position for t in twins]


def test_an_invariant_fault_is_reported_for_its_session_only(model):
    (good, first_good), (bad, first_bad) = prefilled(model, 0), prefilled(model, 1)
    reference = run(model, [0], 1)[0][0]
    bad.layers[0].writes += 1  # corrupt: INV-1 fails after this forward
    with torch.inference_mode():
        logits, faults = decode_step(model, [good, bad], [first_good, first_bad], LANES)
    assert faults[0] is None and faults[1] is not None and faults[1].kind == "inv1"
    assert torch.equal(logits[0], reference)


def test_more_sessions_than_lanes_is_refused(model):
    caches = [prefilled(model, 0)[0] for _ in range(LANES + 1)]
    with pytest.raises(ValueError, match="lanes"):
        decode_step(model, caches, [1] * len(caches), LANES)


def test_one_lane_step_is_bit_identical_to_the_models_own_one_token_forward(model):
    """With one lane the step runs the same kernels as the model's layers on one token, so
    its own attention call (transformers' sdpa path without the per-call checks) and the
    batched plumbing change nothing: the logits are equal to the last bit."""
    steps = []
    (cache, first), (twin, _) = prefilled(model, 3), prefilled(model, 3)
    token = first
    with torch.inference_mode():
        for _ in range(SINK + WINDOW + 2):  # past S + W: a mask with free slots, then none
            logits, _ = decode_step(model, [cache], [token], 1)
            expected = forward(model, twin, [token])
            steps.append(torch.equal(logits[0], expected))
            token = int(expected.argmax())
    assert all(steps), steps


@pytest.mark.parametrize("with_mask", [False, True], ids=["no-mask", "mask"])
def test_the_one_query_sdpa_matches_transformers_sdpa_attention(with_mask):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from inference_engine.session.generator import _sdpa_one_query

    class Module:
        num_key_value_groups, is_causal, training = 2, True, False

    torch.manual_seed(1)
    query = torch.randn(1, 4, 1, 16, dtype=torch.bfloat16)
    keys = torch.randn(1, 2, 64, 16, dtype=torch.bfloat16)[:, :, :37]  # a view, as the cache gives
    values = torch.randn(1, 2, 64, 16, dtype=torch.bfloat16)[:, :, :37]
    mask = (torch.arange(37) % 5 != 1)[None, None, None] if with_mask else None
    expected, _ = sdpa_attention_forward(Module(), query, keys, values, mask, scaling=0.25)
    got = _sdpa_one_query(query, keys, values, mask, groups=2, scale=0.25)
    assert torch.equal(got, expected)


class _CountsItsRows(torch.nn.Linear):
    """A matrix product whose every row depends on how many rows came with it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + 1e-3 * x.shape[0]


class _RowByRow(torch.nn.Linear):
    """A matrix product computed one row at a time: invariant by construction."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([super(_RowByRow, self).forward(x[i : i + 1]) for i in range(len(x))])


@pytest.mark.parametrize("linear,invariant", [(_CountsItsRows, False), (_RowByRow, True)])
def test_the_batch_invariance_check_sees_a_row_that_depends_on_the_batch(linear, invariant):
    torch.manual_seed(2)
    model = torch.nn.Sequential(linear(16, 8), linear(8, 4))
    assert rows_batch_invariant(model, max_rows=6) is invariant


def test_a_batch_of_exactly_its_rows_is_invariant_where_the_check_says_so(model):
    """Where the kernels pass the check, steps run unpadded: a session's logits alone and
    amid others are still the same bits (and where they fail it, the engine pads)."""
    bf16 = copy.deepcopy(model).to(torch.bfloat16)  # float32 here depends on the batch size
    if not rows_batch_invariant(bf16, max_rows=LANES):
        pytest.skip("this device's bfloat16 products depend on the batch size: steps pad")
    alone = run(bf16, [0], 6, lanes=None)[0]
    crowd = run(bf16, [3, 1, 0, 5], 6, lanes=None)[0]
    assert all(torch.equal(a, b) for a, b in zip(alone, crowd, strict=True))
