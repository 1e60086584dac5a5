"""Sampling alone: greedy, seeded reproducibility, top-k and top-p supports."""

from __future__ import annotations

import torch

from inference_engine.session.events import GenerationParams
from inference_engine.session.generator import make_generator, sample

LOGITS = torch.tensor([0.0, 3.0, 2.9, -1.0, 1.0])


def draws(params: GenerationParams, n: int = 200) -> list[int]:
    g = make_generator(params)
    return [sample(LOGITS, params, g) for _ in range(n)]


def test_greedy_is_argmax_and_needs_no_generator():
    params = GenerationParams(max_tokens=1)
    assert make_generator(params) is None
    assert sample(LOGITS, params, None) == 1


def test_same_seed_same_tokens_other_seed_other_tokens():
    p = GenerationParams(max_tokens=1, temperature=1.0, seed=7)
    assert draws(p) == draws(p)
    assert draws(p) != draws(GenerationParams(max_tokens=1, temperature=1.0, seed=8))


def test_top_k_limits_the_support():
    assert set(draws(GenerationParams(max_tokens=1, temperature=5.0, top_k=2, seed=1))) == {1, 2}


def test_top_p_keeps_the_smallest_set_reaching_the_mass():
    got = set(draws(GenerationParams(max_tokens=1, temperature=1.0, top_p=0.5, seed=3)))
    assert got <= {1, 2} and 1 in got
    only_top = set(draws(GenerationParams(max_tokens=1, temperature=1.0, top_p=1e-6, seed=3)))
    assert only_top == {1}
