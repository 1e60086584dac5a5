"""The hot path: prefill, one decode step, sampling. Small functions, each testable alone.

Prefill splits pending tokens at multiples of `chunk` in absolute position, so the sequence
of forwards depends only on which positions are pending, never on how they were appended.
"""

from __future__ import annotations

import torch

from inference_engine.kv_cache import SinkWindowCache
from inference_engine.session.events import GenerationParams

# Decoder-only families whose layers take (hidden, mask, position ids, cache, rotary
# embeddings) and whose model holds embed_tokens / rotary_emb / layers / norm + lm_head.
_DIRECT_LAYER_TYPES = frozenset({"qwen3", "qwen2", "llama"})


def forward(model: torch.nn.Module, cache: SinkWindowCache, token_ids: list[int]) -> torch.Tensor:
    """Run `token_ids` at the cache's next positions; return the last position's logits `[V]`."""
    count = len(token_ids)
    position_ids, mask = cache.begin_forward(count)  # [1, n], [1, 1, n, used] or None
    input_ids = torch.tensor([token_ids], dtype=torch.long, device=position_ids.device)  # [1, n]
    if getattr(model.config, "model_type", "") in _DIRECT_LAYER_TYPES:
        logits = forward_layers(model, input_ids, position_ids, mask, cache)
    else:
        out = model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        logits = out.logits[0, -1]
    cache.end_forward(count)
    return logits


def forward_layers(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    position_ids: torch.Tensor,
    mask: torch.Tensor | None,
    cache: SinkWindowCache,
) -> torch.Tensor:
    """The model's own modules in the model's own order, minus its wrappers.

    On a small model the per-call machinery of `model(...)` (input checks, mask
    preparation, output records) costs as much as the layers; calling the layers
    directly gives bit-identical logits (tested) and only the last position reaches
    the final norm and the LM head (both act per position). Returns logits `[V]`.
    """
    inner = model.model
    hidden = inner.embed_tokens(input_ids)  # [1, n, hidden]
    rotary = inner.rotary_emb(hidden, position_ids)
    for layer in inner.layers:
        hidden = layer(
            hidden,
            attention_mask=mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=True,
            position_embeddings=rotary,
        )
    return model.lm_head(inner.norm(hidden[:, -1:]))[0, -1]


def prefill_chunks(start: int, token_ids: list[int], chunk: int) -> list[list[int]]:
    """Split tokens that start at absolute `start` into pieces ending on multiples of `chunk`."""
    pieces: list[list[int]] = []
    offset = 0
    while offset < len(token_ids):
        position = start + offset
        take = min(chunk - position % chunk, len(token_ids) - offset)
        pieces.append(token_ids[offset : offset + take])
        offset += take
    return pieces


def prefill(
    model: torch.nn.Module, cache: SinkWindowCache, token_ids: list[int], chunk: int
) -> torch.Tensor:
    """Forward all pending tokens in position-aligned chunks; return the last logits `[V]`."""
    pieces = prefill_chunks(cache.next_position, token_ids, chunk)
    if not pieces:
        raise ValueError("prefill needs at least one token")
    for piece in pieces:
        logits = forward(model, cache, piece)
    return logits


def decode_one_token(model: torch.nn.Module, cache: SinkWindowCache, token_id: int) -> torch.Tensor:
    return forward(model, cache, [token_id])


def make_generator(params: GenerationParams) -> torch.Generator | None:
    """A CPU generator for seeded sampling; None for greedy."""
    if params.temperature == 0.0:
        return None
    generator = torch.Generator(device="cpu")
    if params.seed is None:
        generator.seed()
    else:
        generator.manual_seed(params.seed)
    return generator


def sample(
    logits: torch.Tensor, params: GenerationParams, generator: torch.Generator | None
) -> int:
    """Greedy when temperature is 0, else temperature / top-k / top-p sampling."""
    if generator is None:
        return int(torch.argmax(logits).item())
    scores = logits.float().cpu() / params.temperature  # [V]
    if params.top_k > 0:
        kth = torch.topk(scores, min(params.top_k, scores.numel())).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    if params.top_p < 1.0:
        probs = _top_p(probs, params.top_p)
    return int(torch.multinomial(probs, 1, generator=generator).item())


def _top_p(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of tokens whose mass reaches `top_p` (always the top one)."""
    sorted_probs, order = torch.sort(probs, descending=True)
    before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs  # mass ahead of each token
    sorted_probs = sorted_probs.masked_fill(before >= top_p, 0.0)
    kept = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return kept / kept.sum()
