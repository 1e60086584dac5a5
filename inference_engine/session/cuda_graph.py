"""Decode by CUDA graph replay: one captured single-token forward per session.

Eager decode of a small model on a fast GPU is bound by kernel launches from Python,
not by the GPU. A full-width `SinkWindowCache` gives the single-token forward fixed
shapes and addresses, so it can be captured once and replayed per token; the inputs
(token, position, slot, mask row) are copied into static buffers before each replay.
The computation is the eager one, kernel for kernel, so greedy outputs match it.
"""

from __future__ import annotations

import threading

import torch

from inference_engine.kv_cache import SinkWindowCache

_CAPTURE_LOCK = threading.Lock()  # one capture at a time on the device
_WARMUP_STEPS = 2


def graphs_available(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_available()


class GraphDecoder:
    """Replays a captured decode step over one session's full-width cache."""

    def __init__(self, model: torch.nn.Module, cache: SinkWindowCache) -> None:
        if not cache.full_width:
            raise ValueError("graph decode needs a full-width cache (static shapes)")
        device = cache.shape.device
        self.model = model
        self.cache = cache
        self.input_ids = torch.zeros((1, 1), dtype=torch.long, device=device)
        self.position_ids = torch.zeros((1, 1), dtype=torch.long, device=device)
        self.slots = torch.zeros(1, dtype=torch.long, device=device)
        self.mask = torch.zeros((1, 1, 1, cache.capacity), dtype=torch.bool, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.logits: torch.Tensor | None = None  # [1, 1, V], written by every replay

    def step(self, token_id: int) -> torch.Tensor:
        """Forward `token_id` at the cache's next position; return its logits `[V]`.

        Raises:
            RuntimeError: capture failed; nothing live in the cache was touched.
        """
        if self.graph is None:
            self._capture()
        cache = self.cache
        slots, positions = cache.claim(1)
        self.input_ids.fill_(token_id)
        self.position_ids.copy_(positions.view(1, 1))
        self.slots.copy_(slots)
        self.mask.copy_(cache.mask_for(positions))
        cache.write_slots = self.slots  # the captured index_copy_ reads this very tensor
        cache.write_start = None
        self.graph.replay()
        for layer in cache.layers:  # replay skips Python: count the writes the graph made
            layer.writes += 1
        cache.end_forward(1)
        return self.logits[0, -1]

    def _forward(self) -> torch.Tensor:
        out = self.model(
            input_ids=self.input_ids,
            attention_mask=self.mask,
            position_ids=self.position_ids,
            cache=self.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits

    def _capture(self) -> None:
        """Warm up on a side stream, then capture, on dummy inputs aimed at a free slot.

        The dummy token attends only to itself, so everything it writes is finite (a NaN
        in a masked slot would still poison attention: 0 * NaN); a free slot is masked
        for every real query and overwritten when claimed, so no live state changes.
        """
        cache = self.cache
        free = int((cache.slot_positions[: cache.capacity] < 0).nonzero()[0])
        self.input_ids.zero_()
        self.position_ids.fill_(cache.next_position)
        self.slots.fill_(free)
        self.mask.zero_()
        self.mask[..., free] = True
        cache.write_slots = self.slots
        cache.write_start = None  # capture the tensor-indexed write, replayed for any slot
        writes = [layer.writes for layer in cache.layers]
        try:
            self._record()
        finally:
            for layer, count in zip(cache.layers, writes, strict=True):
                layer.writes = count

    def _record(self) -> None:
        with _CAPTURE_LOCK:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(_WARMUP_STEPS):
                    self._forward()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                self.logits = self._forward()
            self.graph = graph
