"""The hot path: prefill, the batched decode step, sampling. Small functions, each testable alone.

Prefill splits pending tokens at multiples of `chunk` in absolute position, so the sequence
of forwards depends only on which positions are pending, never on how they were appended.

Every forward of a direct-layer family (prefill pieces and decode steps alike) runs the
model's own modules on rows `[rows, 1, hidden]`: one row per token, each session's rows
writing its own sink+window cache, and every row attending alone (one query) over the slots
its position attends to (`SinkWindowCache.attend_slots`). A row's attention is then the
same call whoever shares the forward and however the history was chunked; what is left is
the linears, whose kernels may round a row differently with another number of rows. A
`StepShape` (chosen at start-up by running the real step, see `session.step_shape`) fixes
that: at least `min_rows` rows per forward (bfloat16 here: one row takes another kernel than
two or more), or each linear one row at a time (float32 here: the row's place in the batch
changes its bits).
"""

from __future__ import annotations

import functools
import itertools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class StepShape:
    """How forwards are shaped so that a row's bits depend on its own inputs only.

    `min_rows`: every forward runs at least this many rows (padding the rest); `split_rows`:
    a decode step runs each linear one row at a time (prefill still runs its rows together).
    """

    min_rows: int = 1
    split_rows: bool = False

    def describe(self) -> str:
        if self.split_rows:
            return "one row per linear (row-dependent kernels)"
        if self.min_rows > 1:
            return f"at least {self.min_rows} rows per forward"
        return "unpadded (batch-invariant kernels)"


def forward(
    model: torch.nn.Module, cache: SinkWindowCache, token_ids: list[int], min_rows: int = 1
) -> torch.Tensor:
    """Run `token_ids` at the cache's next positions; return the last position's logits `[V]`."""
    if _direct(model):
        logits = _forward_rows(model, [cache], [token_ids], min_rows, split_rows=False)[0]
    else:
        logits = _forward_logits(model, cache, token_ids)
    cache.end_forward(len(token_ids))
    return logits


def _direct(model: torch.nn.Module) -> bool:
    return getattr(model.config, "model_type", "") in _DIRECT_LAYER_TYPES


def _forward_logits(
    model: torch.nn.Module, cache: SinkWindowCache, token_ids: list[int]
) -> torch.Tensor:
    """One session's forward through `model(...)`; the caller ends it (`cache.end_forward`)."""
    position_ids, mask = cache.begin_forward(len(token_ids))  # [1, n], [1, 1, n, used]
    input_ids = torch.tensor([token_ids], dtype=torch.long, device=position_ids.device)  # [1, n]
    out = model(
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=position_ids,
        cache=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    return out.logits[0, -1]


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
    model: torch.nn.Module,
    cache: SinkWindowCache,
    token_ids: list[int],
    chunk: int,
    min_rows: int = 1,
) -> torch.Tensor:
    """Forward all pending tokens in position-aligned chunks; return the last logits `[V]`."""
    pieces = prefill_chunks(cache.next_position, token_ids, chunk)
    if not pieces:
        raise ValueError("prefill needs at least one token")
    for piece in pieces:
        logits = forward(model, cache, piece, min_rows)
    return logits


def decode_step(
    model: torch.nn.Module,
    caches: Sequence[SinkWindowCache],
    token_ids: Sequence[int],
    lanes: int,
    split_rows: bool = False,
) -> tuple[torch.Tensor, list[InvariantViolation | None]]:
    """Forward `token_ids[i]` at the next position of `caches[i]`, all in one batch of `lanes`
    rows (padding beyond the sessions); `split_rows`: each linear one row at a time.

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
    if _direct(model):
        logits = _forward_rows(model, caches, [[t] for t in token_ids], lanes, split_rows)
    else:  # unknown layer layout: one forward per session (still invariant, not batched)
        pairs = zip(caches, token_ids, strict=True)
        logits = torch.stack([_forward_logits(model, cache, [token]) for cache, token in pairs])
    return logits, [_end_forward(cache) for cache in caches]


Linear = Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]


def _whole(linear: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return cast(torch.Tensor, linear(x))


def _row_by_row(linear: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`[R, 1, in]` one row per call: each row runs the one-row kernel wherever it sits."""
    return torch.cat([linear(x[i : i + 1]) for i in range(x.shape[0])])


@dataclass(frozen=True)
class _Row:
    """One query row: its session (index into the forward's caches) and the keys it sees."""

    segment: int
    span: int  # leading slots it attends over
    mask: torch.Tensor  # [1, 1, 1, span] booleans


def _forward_rows(
    model: torch.nn.Module,
    caches: Sequence[SinkWindowCache],
    token_lists: Sequence[Sequence[int]],
    min_rows: int,
    split_rows: bool,
) -> torch.Tensor:
    """The model's own modules on `[lanes, 1]` rows, session after session; returns the
    logits of each session's last row `[sessions, V]`. The caller ends each cache's forward."""
    inner: Any = model.model
    plans = [c.begin_forward(len(t)) for c, t in zip(caches, token_lists, strict=True)]
    count = sum(len(t) for t in token_lists)
    lanes = max(count, min_rows)
    device = plans[0][0].device
    position_ids = torch.zeros((lanes, 1), dtype=torch.long, device=device)  # [L, 1]
    position_ids[:count, 0] = torch.cat([positions[0] for positions, _ in plans])
    input_ids = torch.zeros((lanes, 1), dtype=torch.long, device=device)  # [L, 1]; pads: id 0
    flat = [t for tokens in token_lists for t in tokens]
    input_ids[:count, 0] = torch.tensor(flat, dtype=torch.long, device=device)
    rows = _query_rows(caches, plans)
    linear = _row_by_row if split_rows else _whole
    hidden = inner.embed_tokens(input_ids)  # [L, 1, hidden]
    rotary = inner.rotary_emb(hidden, position_ids)  # cos, sin: [L, 1, head_dim]
    for layer in inner.layers:
        normed = layer.input_layernorm(hidden)
        hidden = hidden + _attention(layer.self_attn, normed, rotary, caches, plans, rows, linear)
        hidden = hidden + _mlp(layer.mlp, layer.post_attention_layernorm(hidden), linear)
    ends = list(itertools.accumulate(len(t) for t in token_lists))
    last = [end - 1 for end in ends]
    last += [last[-1]] * (min_rows - len(last))  # the head too runs at least min_rows rows
    head: Any = model.lm_head
    return linear(head, inner.norm(hidden[last]))[: len(caches), -1]  # [sessions, V]


def _query_rows(
    caches: Sequence[SinkWindowCache], plans: Sequence[tuple[torch.Tensor, torch.Tensor]]
) -> list[_Row]:
    rows = []
    for segment, (cache, (positions, mask)) in enumerate(zip(caches, plans, strict=True)):
        for i, position in enumerate(positions[0].tolist()):
            span = cache.attend_slots(position)
            rows.append(_Row(segment, span, mask[:, :, i : i + 1, :span].contiguous()))
    return rows


def _mlp(mlp: Any, x: torch.Tensor, linear: Linear) -> torch.Tensor:
    """The gated MLP of the llama family, as its module computes it."""
    return linear(mlp.down_proj, mlp.act_fn(linear(mlp.gate_proj, x)) * linear(mlp.up_proj, x))


def _attention(
    attn: Any,
    hidden: torch.Tensor,
    rotary: tuple[torch.Tensor, torch.Tensor],
    caches: Sequence[SinkWindowCache],
    plans: Sequence[tuple[torch.Tensor, torch.Tensor]],
    rows: Sequence[_Row],
    linear: Linear,
) -> torch.Tensor:
    """Projections for all rows at once; each row attends alone over its own session's keys."""
    lanes = hidden.shape[0]
    shape = (lanes, 1, -1, attn.head_dim)
    query = _project(attn, "q", hidden, shape, linear)  # [L, heads, 1, head_dim]
    key = _project(attn, "k", hidden, shape, linear)  # [L, kv_heads, 1, head_dim]
    value = linear(attn.v_proj, hidden).view(shape).transpose(1, 2)  # [L, kv_heads, 1, head_dim]
    query, key = _rope_for(attn)(query, key, *rotary)
    attend = _one_query_attention(attn)
    buffers = []
    start = 0
    for cache, (positions, _) in zip(caches, plans, strict=True):
        n = positions.shape[1]
        layer = cache.slot_layers[attn.layer_idx]  # [n, H, 1, D] -> [1, H, n, D]
        layer.update(
            key[start : start + n].transpose(0, 2), value[start : start + n].transpose(0, 2)
        )
        buffers.append(layer.buffers())
        start += n
    out = []
    for i, row in enumerate(rows):
        keys, values = buffers[row.segment]
        span = row.span
        out.append(attend(query[i : i + 1], keys[:, :, :span], values[:, :, :span], row.mask))
    if lanes > len(out):  # padding rows attend to nothing
        out.append(out[0].new_zeros((lanes - len(out), *out[0].shape[1:])))
    attended = torch.cat(out)  # [L, 1, heads, head_dim]
    return linear(attn.o_proj, attended.reshape(lanes, 1, -1))  # [L, 1, hidden]


def _project(
    attn: Any, which: str, hidden: torch.Tensor, shape: tuple[int, ...], linear: Linear
) -> torch.Tensor:
    """q or k projection, with the per-head norm where the family has one (Qwen3)."""
    states = linear(getattr(attn, f"{which}_proj"), hidden).view(shape)
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
