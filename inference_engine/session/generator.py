"""The hot path: prefill, the batched decode step, sampling. Small functions, each testable alone.

Prefill splits pending tokens at multiples of `chunk` in absolute position, so the sequence
of forwards depends only on which positions are pending, never on how they were appended.

`decode_step` forwards one token for each of several sessions as one batch (the weights are
read once per step), each session attending over its own sink+window cache. The batch is
padded to a fixed number of lanes, so every step runs the same kernels on the same shapes
whichever sessions share it: a row's result depends on its own inputs only (batch
invariance), and a session's tokens are the same alone, amid others, or joining late.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
from torch.nn import functional as F
from transformers.integrations.sdpa_attention import pack_gqa, use_gqa_in_sdpa
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from inference_engine.errors import InvariantViolation
from inference_engine.kv_cache import SinkWindowCache
from inference_engine.session.events import GenerationParams

# Decoder-only families whose layers take (hidden, mask, position ids, cache, rotary
# embeddings) and whose model holds embed_tokens / rotary_emb / layers / norm + lm_head.
_DIRECT_LAYER_TYPES = frozenset({"qwen3", "qwen2", "llama"})


def forward(model: torch.nn.Module, cache: SinkWindowCache, token_ids: list[int]) -> torch.Tensor:
    """Run `token_ids` at the cache's next positions; return the last position's logits `[V]`."""
    logits = _forward_logits(model, cache, token_ids)
    cache.end_forward(len(token_ids))
    return logits


def _forward_logits(
    model: torch.nn.Module, cache: SinkWindowCache, token_ids: list[int]
) -> torch.Tensor:
    """One session's forward up to the logits; the caller ends it (`cache.end_forward`)."""
    position_ids, mask = cache.begin_forward(len(token_ids))  # [1, n], [1, 1, n, used] or None
    input_ids = torch.tensor([token_ids], dtype=torch.long, device=position_ids.device)  # [1, n]
    if getattr(model.config, "model_type", "") in _DIRECT_LAYER_TYPES:
        return forward_layers(model, input_ids, position_ids, mask, cache)
    out = model(
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=position_ids,
        cache=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    return out.logits[0, -1]


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
    inner: Any = model.model
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
    head: Any = model.lm_head
    return head(inner.norm(hidden[:, -1:]))[0, -1]


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


def decode_step(
    model: torch.nn.Module, caches: Sequence[SinkWindowCache], token_ids: Sequence[int], lanes: int
) -> tuple[torch.Tensor, list[InvariantViolation | None]]:
    """Forward `token_ids[i]` at the next position of `caches[i]`, all in one batch of `lanes`.

    Returns:
        Logits `[n, V]` (row i for session i) and, per session, the invariant violation its
        cache reported after the forward (None when the checks passed); a session with a
        violation must not be used again.

    Raises:
        ValueError: more sessions than lanes.
    """
    count = len(caches)
    if not 0 < count <= lanes:
        raise ValueError(f"{count} sessions for {lanes} lanes")
    if getattr(model.config, "model_type", "") in _DIRECT_LAYER_TYPES:
        logits = _batched_layers(model, caches, token_ids, lanes)
    else:  # unknown layer layout: one forward per session (still invariant, not batched)
        pairs = zip(caches, token_ids, strict=True)
        logits = torch.stack([_forward_logits(model, cache, [token]) for cache, token in pairs])
    return logits, [_end_forward(cache) for cache in caches]


def _batched_layers(
    model: torch.nn.Module, caches: Sequence[SinkWindowCache], token_ids: Sequence[int], lanes: int
) -> torch.Tensor:
    """The model's own modules on `[lanes, 1]` inputs; attention runs per session."""
    count = len(caches)
    inner: Any = model.model
    plans = [cache.begin_forward(1) for cache in caches]  # ([1, 1] positions, mask or None)
    device = plans[0][0].device
    position_ids = torch.zeros((lanes, 1), dtype=torch.long, device=device)  # [L, 1]
    position_ids[:count] = torch.cat([positions for positions, _ in plans])
    input_ids = torch.zeros((lanes, 1), dtype=torch.long, device=device)  # [L, 1]; pads: id 0
    input_ids[:count, 0] = torch.tensor(list(token_ids), dtype=torch.long, device=device)
    hidden = inner.embed_tokens(input_ids)  # [L, 1, hidden]
    rotary = inner.rotary_emb(hidden, position_ids)  # cos, sin: [L, 1, head_dim]
    masks = [mask for _, mask in plans]
    for layer in inner.layers:
        attended = _attention(layer.self_attn, layer.input_layernorm(hidden), rotary, caches, masks)
        hidden = hidden + attended
        hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
    head: Any = model.lm_head
    return head(inner.norm(hidden))[:count, -1]  # [n, V]


def _attention(
    attn: Any,
    hidden: torch.Tensor,
    rotary: tuple[torch.Tensor, torch.Tensor],
    caches: Sequence[SinkWindowCache],
    masks: Sequence[torch.Tensor | None],
) -> torch.Tensor:
    """Projections for all lanes at once; each session attends over its own cache alone."""
    lanes = hidden.shape[0]
    shape = (lanes, 1, -1, attn.head_dim)
    query = _project(attn, "q", hidden, shape)  # [L, heads, 1, head_dim]
    key = _project(attn, "k", hidden, shape)  # [L, kv_heads, 1, head_dim]
    value = attn.v_proj(hidden).view(shape).transpose(1, 2)  # [L, kv_heads, 1, head_dim]
    query, key = _rope_for(attn)(query, key, *rotary)
    attend = _one_query_attention(attn)
    rows = []
    for i, cache in enumerate(caches):
        layer = cache.slot_layers[attn.layer_idx]
        keys, values = layer.update(key[i : i + 1], value[i : i + 1])
        rows.append(attend(query[i : i + 1], keys, values, masks[i]))  # [1, 1, heads, head_dim]
    out = torch.cat(rows)
    if lanes > len(rows):  # padding lanes attend to nothing
        out = torch.cat([out, out.new_zeros((lanes - len(rows), *out.shape[1:]))])
    return attn.o_proj(out.reshape(lanes, 1, -1))  # [L, 1, hidden]


def _project(attn: Any, which: str, hidden: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """q or k projection, with the per-head norm where the family has one (Qwen3)."""
    states = getattr(attn, f"{which}_proj")(hidden).view(shape)
    norm = getattr(attn, f"{which}_norm", None)
    return (norm(states) if norm is not None else states).transpose(1, 2)


def _rope_for(attn: Any) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    rope: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    rope = sys.modules[type(attn).__module__].apply_rotary_pos_emb
    return rope


Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def _one_query_attention(attn: Any) -> Attend:
    """One session's attention for one query token, computed as the model's own layers do.

    For sdpa (what the loader picks) this is transformers' `sdpa_attention_forward` for a
    single query, minus its per-call checks (a quarter of a call's cost, paid once per
    session and layer): the same GQA decision, the same kernel, the same layout, so the same
    bits (tested). Other implementations go through the model's own function.
    """
    name = attn.config._attn_implementation
    groups, scale = attn.num_key_value_groups, attn.scaling
    if name == "sdpa":
        return functools.partial(_sdpa_one_query, groups=groups, scale=scale)
    function: Callable[..., Any]
    if name in ALL_ATTENTION_FUNCTIONS:
        function = ALL_ATTENTION_FUNCTIONS[name]
    else:
        function = sys.modules[type(attn).__module__].eager_attention_forward
    sliding = getattr(attn, "sliding_window", None)

    def attend(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: Any) -> Any:
        kwargs = {"dropout": 0.0, "scaling": scale, "sliding_window": sliding}
        return function(attn, query, keys, values, mask, **kwargs)[0]

    return attend


def _sdpa_one_query(
    query: torch.Tensor,  # [1, heads, 1, head_dim]
    keys: torch.Tensor,  # [1, kv_heads, slots, head_dim]
    values: torch.Tensor,
    mask: torch.Tensor | None,  # [1, 1, 1, slots] booleans, or None: every slot visible
    *,
    groups: int,
    scale: float,
) -> torch.Tensor:
    """`[1, 1, heads, head_dim]`, as transformers' sdpa attention returns it."""
    gqa: dict[str, bool] = {}
    if groups > 1:
        if use_gqa_in_sdpa(mask, keys, values):
            gqa["enable_gqa"] = True
        else:  # one query token: run on the key/value heads without repeating them
            query = cast(torch.Tensor, pack_gqa(query, groups))
    out = F.scaled_dot_product_attention(
        query, keys, values, attn_mask=mask, dropout_p=0.0, scale=scale, is_causal=False, **gqa
    )
    return out.reshape(out.shape[0], -1, 1, values.shape[-1]).transpose(1, 2).contiguous()


def rows_batch_invariant(model: torch.nn.Module, max_rows: int) -> bool:
    """Whether every matrix product of the model gives each row the same bits at any batch
    size from 1 to `max_rows`, on the model's device and dtype.

    Kernel libraries may pick another kernel, blocking or reduction order for another
    number of rows (float32 here; most GPU libraries): then a decode step must run a fixed
    number of lanes. Where they do not, a step runs exactly its sessions' rows. Kernel
    choice depends on shapes, not values, so each distinct shape is tried with random rows
    at every batch size, laid out as the decode step lays them out (`[rows, 1, features]`).
    """
    linears = {
        (m.in_features, m.out_features): m
        for m in model.modules()
        if isinstance(m, torch.nn.Linear)
    }
    with torch.inference_mode():
        return all(_linear_rows_invariant(linear, max_rows) for linear in linears.values())


def _linear_rows_invariant(linear: torch.nn.Linear, max_rows: int) -> bool:
    weight = linear.weight
    x = torch.randn((max_rows, 1, linear.in_features), generator=torch.Generator().manual_seed(0))
    x = x.to(device=weight.device, dtype=weight.dtype)  # [rows, 1, in]
    alone = torch.cat([linear(x[i : i + 1]) for i in range(max_rows)])
    return all(torch.equal(linear(x[:rows]), alone[:rows]) for rows in range(2, max_rows + 1))


def _end_forward(cache: SinkWindowCache) -> InvariantViolation | None:
    try:
        cache.end_forward(1)
    except InvariantViolation as violation:
        return violation
    return None


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
