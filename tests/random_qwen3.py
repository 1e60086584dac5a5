"""A small real Qwen3 built in memory with seeded random weights (float32, SDPA attention)."""

from __future__ import annotations

import torch
from transformers import Qwen3Config, Qwen3ForCausalLM


def random_qwen3(vocab_size: int, hidden_size: int, head_dim: int) -> Qwen3ForCausalLM:
    """Two layers, 4 query and 2 key/value heads, an MLP twice the hidden size; seed 0."""
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=head_dim,
        max_position_embeddings=4096,
        attn_implementation="sdpa",
    )
    return Qwen3ForCausalLM(config).eval()
