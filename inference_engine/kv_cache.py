"""A per-session KV cache bounded by an attention sink plus a window, over absolute positions.

Keys and values live in per-layer slot buffers `[1, kv_heads, capacity, head_dim]`. Every
slot remembers the absolute position of the token it holds (or -1 when free); attention
goes through a 4-D boolean mask built from those positions, so a query at position q sees
exactly the sink `k < S` plus the window `q - W < k <= q`, however the history was chunked.
After each forward, positions no future query can see are freed: the cache then holds at
most `S + W - 1` live positions, and its buffers never grow past `S + W - 1 + prefill_chunk`
slots.

The slot of a position is a function of the position alone (sink positions in order, then a
ring of `W - 1 + prefill_chunk` slots), and so is the slot range a query at position q
attends over (`attend_slots(q)`): whatever the chunking, a query sees the same keys in the
same slots, so one-query attention reduces them in one order (INV-3 to the bit, where the
linears are row-invariant; see `session.generator`).

Invariants, checked after every mutation:
- INV-1: every layer was written by every forward, all layers share one capacity, and the
  live slot count equals the count implied by the positions forwarded so far.
- INV-2: positions never go backwards: each forward starts where the last ended, and the
  live positions are unique with the newest one last forwarded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

from inference_engine.errors import InvariantViolation

_MIN_CAPACITY = 64


@dataclass(frozen=True)
class CacheShape:
    """What one layer stores per token; fixed by the model config and dtype."""

    num_layers: int
    kv_heads: int
    head_dim: int
    dtype: torch.dtype
    device: torch.device

    @property
    def bytes_per_token(self) -> int:
        element = torch.empty((), dtype=self.dtype).element_size()
        return self.num_layers * 2 * self.kv_heads * self.head_dim * element

    @classmethod
    def of(cls, model: torch.nn.Module) -> CacheShape:
        config: Any = model.config
        head_dim = (
            getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        )
        param = next(model.parameters())
        return cls(
            num_layers=config.num_hidden_layers,
            kv_heads=config.num_key_value_heads,
            head_dim=head_dim,
            dtype=param.dtype,
            device=param.device,
        )


class SlotLayer(CacheLayerMixin):
    """One layer's slot buffers; the owning cache decides which slots a forward writes."""

    is_compileable = False
    is_sliding = False

    def __init__(self, owner: SinkWindowCache) -> None:
        super().__init__()
        self.owner = owner
        self.writes = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.keys, self.values = self.owner.allocate_buffers()
        self.is_initialized = True

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        keys, values = self.buffers()  # [1, H, capacity, D] each
        start = self.owner.write_start
        if start is None:  # scattered slots
            slots = self.owner.write_slots  # [n]
            keys.index_copy_(2, slots, key_states)
            values.index_copy_(2, slots, value_states)
        else:  # one contiguous run of slots: a plain slice copy is cheaper
            end = start + key_states.shape[2]
            keys[:, :, start:end].copy_(key_states)
            values[:, :, start:end].copy_(value_states)
        self.writes += 1
        used = self.owner.used_slots
        return keys[:, :, :used], values[:, :, :used]

    def buffers(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The key and value buffers (allocated at the first write).

        Raises:
            RuntimeError: nothing has been written yet.
        """
        if self.keys is None or self.values is None:
            raise RuntimeError("slot layer read before its first write")
        return self.keys, self.values

    def grow(self, capacity: int) -> None:
        if not self.is_initialized:
            return
        keys, values = self.buffers()
        self.keys = _grown(keys, capacity)
        self.values = _grown(values, capacity)

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.owner.used_slots, 0

    def get_seq_length(self) -> int:
        return self.owner.cached_tokens

    def get_max_length(self) -> int:
        return self.owner.max_capacity


def _grown(buffer: torch.Tensor, capacity: int) -> torch.Tensor:
    bigger = buffer.new_zeros((*buffer.shape[:2], capacity, buffer.shape[3]))
    bigger[:, :, : buffer.shape[2]] = buffer
    return bigger


class SinkWindowCache(Cache):
    """Sink + window KV cache for one session, driven by `begin_forward` / `end_forward`."""

    def __init__(self, shape: CacheShape, sink: int, window: int, max_chunk: int) -> None:
        self.slot_layers = [SlotLayer(self) for _ in range(shape.num_layers)]
        super().__init__(layers=list(self.slot_layers))
        self.shape = shape
        self.sink = sink
        self.window = window
        self.ring = window - 1 + max_chunk  # window slots: a chunk never overwrites a live one
        self.max_chunk = max_chunk
        self.max_capacity = sink + self.ring
        self.capacity = min(_MIN_CAPACITY, self.max_capacity)
        # absolute position per slot (-1: free), on the CPU: bookkeeping stays off the device
        self.slot_positions = torch.full((self.max_capacity,), -1, dtype=torch.long)
        self.used_slots = 0  # slots [0, used_slots) have been handed out at least once
        self.live_slots = 0  # slots holding a position some future query still sees
        self.window_slots: dict[int, int] = {}  # window position -> slot, until evicted
        self.evicted_below = sink  # window positions below this have been freed
        self.next_position = 0  # positions forwarded so far
        self.forwards = 0
        self.write_slots = torch.empty(0, dtype=torch.long, device=shape.device)
        self.write_start: int | None = None  # first slot when the written slots are a run

    # -- sizes ---------------------------------------------------------------
    @property
    def cached_tokens(self) -> int:
        return self.live_slots

    @property
    def dropped_tokens(self) -> int:
        return self.next_position - self.cached_tokens

    @property
    def live_bytes(self) -> int:
        return self.cached_tokens * self.shape.bytes_per_token

    @property
    def bound_bytes(self) -> int:
        """The most live bytes this cache ever holds: S + W - 1 positions."""
        return (self.sink + self.window - 1) * self.shape.bytes_per_token

    def release(self) -> None:
        """Drop every buffer now (its session ended). The layers refer back to the cache, so
        without this the memory would wait for the cycle collector."""
        for layer in self.slot_layers:
            layer.keys = layer.values = None
            layer.is_initialized = False

    def allocate_buffers(self) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.shape
        size = (1, s.kv_heads, self.capacity, s.head_dim)
        return (
            torch.zeros(size, dtype=s.dtype, device=s.device),
            torch.zeros(size, dtype=s.dtype, device=s.device),
        )

    # -- one forward -----------------------------------------------------------
    def slot_of(self, position: int) -> int:
        """The slot a position lives in: fixed by the position alone."""
        if position < self.sink:
            return position
        return self.sink + (position - self.sink) % self.ring

    def attend_slots(self, position: int) -> int:
        """How many leading slots a query at `position` attends over (a function of it alone)."""
        return min(position + 1, self.max_capacity)

    def begin_forward(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Claim slots for the next `count` positions; return position ids and the mask.

        Returns:
            `position_ids` `[1, count]` and a boolean attention mask `[1, 1, count, used]`
            (always a mask: a kernel without one may reduce in another order).

        Raises:
            ValueError: `count` is over the chunk bound the cache was built for.
        """
        slots, positions = self.claim(count)
        device = self.shape.device
        self.write_slots = slots.to(device)
        first = int(slots[0])
        self.write_start = first if int(slots[-1]) == first + count - 1 else None
        position_ids = positions.to(device).unsqueeze(0)
        return position_ids, self.mask_for(positions).to(device)

    def claim(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Give the next `count` positions slots; return both (CPU tensors)."""
        start = self.next_position
        claimed = self._claim_slots(count)
        for position, slot in zip(range(start, start + count), claimed, strict=True):
            if position >= self.sink:
                self.window_slots[position] = slot
        slots = torch.tensor(claimed, dtype=torch.long)
        positions = torch.arange(start, start + count, dtype=torch.long)
        self.slot_positions[slots] = positions
        return slots, positions

    def end_forward(self, count: int) -> None:
        """Record a finished forward, free what no future query sees, check the invariants."""
        self.next_position += count
        self.forwards += 1
        horizon = self.next_position - self.window + 1  # first window position still visible
        leaving = [self.window_slots.pop(p) for p in range(self.evicted_below, horizon)]
        self.evicted_below = max(self.evicted_below, horizon)
        if leaving:
            self.slot_positions[torch.tensor(leaving, dtype=torch.long)] = -1
            self.live_slots -= len(leaving)
        self.check_invariants()

    def _claim_slots(self, count: int) -> list[int]:
        if count > self.max_chunk:
            raise ValueError(f"forward of {count} tokens exceeds the chunk bound {self.max_chunk}")
        start = self.next_position
        claimed = [self.slot_of(p) for p in range(start, start + count)]
        self._ensure_capacity(min(start + count, self.max_capacity))
        self.used_slots = max(self.used_slots, min(start + count, self.max_capacity))
        taken = [s for s in claimed if int(self.slot_positions[s]) >= 0]
        if taken:  # unreachable with ring >= W - 1 + chunk: a live key would be overwritten
            raise InvariantViolation("inv1", f"slot {taken[0]} still holds a live position")
        self.live_slots += count
        return claimed

    def _ensure_capacity(self, needed: int) -> None:
        if needed <= self.capacity:
            return
        capacity = self.capacity
        while capacity < needed:
            capacity = min(capacity * 2, self.max_capacity)
        self.capacity = capacity
        for layer in self.slot_layers:
            layer.grow(capacity)

    def mask_for(self, query: torch.Tensor) -> torch.Tensor:
        """Which slots each query position sees: `[1, 1, n, slots]` booleans, on the CPU."""
        keys = self.slot_positions[: self.used_slots]
        q = query[:, None]  # [n, 1]
        k = keys[None, :]  # [1, used]
        visible = (k >= 0) & (k <= q) & ((k < self.sink) | (k > q - self.window))
        return visible[None, None]  # [1, 1, n, used]

    # -- invariants -----------------------------------------------------------
    def check_invariants(self) -> None:
        """Raise InvariantViolation when INV-1 or INV-2 does not hold."""
        self._check_inv1()
        self._check_inv2()

    def _live_positions(self) -> torch.Tensor:
        used = self.slot_positions[: self.used_slots]
        return used[used >= 0]

    def _check_inv1(self) -> None:
        live = int(self._live_positions().numel())
        n = self.next_position
        expected = min(self.sink, n) + max(0, n - max(self.sink, n - self.window + 1))
        if live != expected or live != self.cached_tokens:
            raise InvariantViolation("inv1", f"{live} live slots, expected {expected}")
        for index, layer in enumerate(self.slot_layers):
            if layer.writes != self.forwards:
                raise InvariantViolation(
                    "inv1", f"layer {index} saw {layer.writes} of {self.forwards} forwards"
                )
            keys, values = layer.buffers()
            lengths = {keys.shape[2], values.shape[2], self.capacity}
            if len(lengths) != 1:
                raise InvariantViolation("inv1", f"layer {index} K/V lengths {sorted(lengths)}")

    def _check_inv2(self) -> None:
        live = self._live_positions()
        if live.numel() == 0:
            return
        if torch.unique(live).numel() != live.numel():
            raise InvariantViolation("inv2", "a position is cached twice")
        newest = int(live.max())
        if newest != self.next_position - 1:
            raise InvariantViolation(
                "inv2", f"newest cached position {newest} != {self.next_position - 1}"
            )
