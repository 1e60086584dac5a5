"""Which `StepShape` gives this model, on its device and dtype, invariant forwards: found by
running the real decode step at start-up, never by trying matrix products apart.

A shape is tried on the whole model: a few sessions of different lengths (past their sink
plus window) are prefilled, each one's next decode step is run alone, then amid the others
at the configured batch widths (each session in other rows), and the logits compared to
the bit (batch invariance). The same token forwarded as the last one of a one-shot prefill
must give the same bits too (chunk invariance: INV-3 to the bit, so the served dtype gives
the same greedy tokens whatever the chunking). Kernel choice depends on shapes, not values,
and one changed element changes the logits, so one step per width decides.

Candidates go from free to dear: unpadded, at least two rows per forward (one-row kernels
that round another way), each decode linear one row at a time (kernels whose rounding
depends on the row's place). The first that passes both checks wins; else the first that
keeps batch invariance, and chunk invariance is only to rounding (said at start-up).
"""

from __future__ import annotations

import copy
import logging
import weakref
from dataclasses import dataclass
from typing import Any

import torch

from inference_engine.kv_cache import CacheShape, SinkWindowCache
from inference_engine.session import generator as gen
from inference_engine.session.generator import StepShape

log = logging.getLogger(__name__)

CANDIDATES = (StepShape(), StepShape(min_rows=2), StepShape(split_rows=True))
_SINK, _WINDOW, _CHUNK = 2, 6, 8
_PROMPT_LENGTHS = (3, 7, 12)  # the last crosses sink + window


@dataclass(frozen=True)
class StepChoice:
    """The shape the engine runs, and what the probe found it promises."""

    shape: StepShape
    batch_invariant: bool
    chunk_invariant: bool

    def describe(self) -> str:
        batch = "batch-invariant" if self.batch_invariant else "NOT batch-invariant"
        chunk = "chunking-invariant" if self.chunk_invariant else "chunking-invariant to rounding"
        return f"{self.shape.describe()}; {batch}, {chunk}"


_CHOSEN: weakref.WeakKeyDictionary[torch.nn.Module, dict[int, StepChoice]] = (
    weakref.WeakKeyDictionary()
)


def choose_step_shape(model: torch.nn.Module, max_rows: int) -> StepChoice:
    """The cheapest candidate that keeps a session's bits whoever shares its steps (and,
    where one exists, however its history was chunked); cached per model and width."""
    known = _CHOSEN.setdefault(model, {})
    if max_rows not in known:
        known[max_rows] = _probe_all(model, max_rows)
        log.info("decode steps: %s", known[max_rows].describe())
    return known[max_rows]


def _probe_all(model: torch.nn.Module, max_rows: int) -> StepChoice:
    tried = []
    for shape in CANDIDATES:
        choice = StepChoice(shape, *probe_shape(model, max_rows, shape))
        if choice.batch_invariant and choice.chunk_invariant:
            return choice
        tried.append(choice)
    return next((c for c in tried if c.batch_invariant), tried[-1])


@torch.inference_mode()
def probe_shape(model: torch.nn.Module, max_rows: int, shape: StepShape) -> tuple[bool, bool]:
    """(batch-invariant, chunk-invariant) for `shape`, from the model's real forwards."""
    config: Any = model.config
    vocab = int(config.get_text_config().vocab_size)
    prompts = [
        [(31 * i + 17 * k + 5) % vocab for i in range(n)] for k, n in enumerate(_PROMPT_LENGTHS)
    ]
    tokens = [(13 * k + 1) % vocab for k in range(len(prompts))]
    bases = [_prefilled(model, prompt, shape) for prompt in prompts]
    solo = [_step(model, [bases[k]], [tokens[k]], shape)[0] for k in range(len(prompts))]
    for width in sorted({min(2, max_rows), max_rows} - {1}):
        order = [(width - 1 - j) % len(prompts) for j in range(width)]  # sessions change rows
        logits = _step(model, [bases[k] for k in order], [tokens[k] for k in order], shape)
        if not all(torch.equal(logits[j], solo[k]) for j, k in enumerate(order)):
            return False, False  # not worth the chunk check: this shape is out
    one_shot = _prefilled(model, prompts[0] + [tokens[0]], shape)
    return True, torch.equal(one_shot.last_logits, solo[0])


class _Probe(SinkWindowCache):
    last_logits: torch.Tensor


def _prefilled(model: torch.nn.Module, prompt: list[int], shape: StepShape) -> _Probe:
    cache = _Probe(CacheShape.of(model), _SINK, _WINDOW, _CHUNK)
    cache.last_logits = gen.prefill(model, cache, prompt, _CHUNK, shape.min_rows)
    return cache


def _step(
    model: torch.nn.Module, bases: list[_Probe], tokens: list[int], shape: StepShape
) -> torch.Tensor:
    """One decode step on copies of `bases` (each base can serve several rows)."""
    caches = [copy.deepcopy(base) for base in bases]
    lanes = max(len(caches), shape.min_rows)
    logits, _ = gen.decode_step(model, caches, tokens, lanes, shape.split_rows)
    return logits


__all__ = ["CANDIDATES", "StepChoice", "choose_step_shape", "probe_shape"]
