"""`--weights int8`: weight-only int8 linears against the bfloat16 model they came from."""

from __future__ import annotations

import copy

import pytest
import torch
from random_qwen3 import random_qwen3

from inference_engine.errors import InvalidArgument
from inference_engine.kv_cache import CacheShape, SinkWindowCache
from inference_engine.models.int8 import Int8Linear, quantize_linears
from inference_engine.models.loader import check_weights
from inference_engine.session.generator import prefill
from inference_engine.session.step_shape import choose_step_shape

# The stated tolerance (docs/performance.md): int8 logits within 10 % of the bfloat16
# logits' spread at worst and 2.5 % on average (|diff| / std), the same greedy token on
# most positions. Per-row int8 steps are 1/254 of a row's largest weight; bfloat16 itself
# keeps 8 bits of mantissa.
MAX_DIFF_OVER_STD = 0.10
MEAN_DIFF_OVER_STD = 0.025
TOKENS = [(11 * i + 5) % 97 for i in range(40)]


@pytest.fixture(scope="module")
def models():
    bf16 = random_qwen3(vocab_size=97, hidden_size=128, head_dim=32).to(torch.bfloat16)
    int8 = copy.deepcopy(bf16)
    assert quantize_linears(int8) == 2 * 7 + 1  # q, k, v, o, gate, up, down per layer; head
    return bf16, int8


def logits_per_position(model, tokens: list[int]) -> torch.Tensor:
    cache = SinkWindowCache(CacheShape.of(model), 4, 60, 8)
    rows = []
    with torch.inference_mode():
        for token in tokens:
            rows.append(prefill(model, cache, [token], 8, min_rows=2).float())
    return torch.stack(rows)  # [n, V]


def test_an_int8_linear_computes_its_dequantized_product():
    torch.manual_seed(3)
    linear = torch.nn.Linear(64, 48, bias=False).to(torch.bfloat16)
    quantized = Int8Linear.quantize(linear)
    x = torch.randn(5, 1, 64, dtype=torch.bfloat16)
    reference = x.float() @ (quantized.weight.float() * quantized.scale.float()[:, None]).T
    torch.testing.assert_close(quantized(x).float(), reference, rtol=2e-2, atol=2e-2)
    assert quantized.weight.dtype is torch.int8
    assert quantized.weight.abs().max() <= 127


def test_int8_logits_stay_within_the_stated_tolerance_of_bfloat16(models):
    bf16, int8 = models
    expected, got = logits_per_position(bf16, TOKENS), logits_per_position(int8, TOKENS)
    spread = expected.std()
    assert float((got - expected).abs().max() / spread) <= MAX_DIFF_OVER_STD
    assert float((got - expected).abs().mean() / spread) <= MEAN_DIFF_OVER_STD
    agree = (got.argmax(-1) == expected.argmax(-1)).float().mean()
    assert agree >= 0.9


def test_int8_steps_are_batch_and_chunk_invariant(models):
    _, int8 = models
    choice = choose_step_shape(int8, 6)
    assert choice.batch_invariant and choice.chunk_invariant, choice.describe()


def test_an_unknown_weights_mode_is_invalid_argument():
    check_weights("int8")
    with pytest.raises(InvalidArgument, match="weights"):
        check_weights("int4")
