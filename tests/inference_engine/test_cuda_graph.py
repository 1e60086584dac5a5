"""Graph-replayed decode equals eager decode, token for token (needs CUDA; skipped elsewhere)."""

from __future__ import annotations

import pytest
import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

from inference_engine.kv_cache import CacheShape, SinkWindowCache
from inference_engine.session.cuda_graph import GraphDecoder, graphs_available
from inference_engine.session.generator import decode_one_token, prefill

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not graphs_available(torch.device("cuda")), reason="needs an NVIDIA GPU"),
]


def test_graph_decode_matches_eager_decode_across_the_window():
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        attn_implementation="sdpa",
    )
    model = Qwen3ForCausalLM(config).to("cuda", torch.bfloat16).eval()
    shape = CacheShape.of(model)
    eager = SinkWindowCache(shape, 4, 24, 16, full_width=True)
    graph_cache = SinkWindowCache(shape, 4, 24, 16, full_width=True)
    decoder = GraphDecoder(model, graph_cache)
    prompt = list(range(3, 40))
    with torch.inference_mode():
        a = int(prefill(model, eager, prompt, 16).argmax())
        b = int(prefill(model, graph_cache, prompt, 16).argmax())
        out_a, out_b = [a], [b]
        for _ in range(60):  # crosses S + W several times
            a = int(decode_one_token(model, eager, a).argmax())
            b = int(decoder.step(b).argmax())
            out_a.append(a)
            out_b.append(b)
    assert out_a == out_b
    assert graph_cache.cached_tokens == eager.cached_tokens == 4 + 24 - 1
