"""The measured variants: the runtime in-process, the SDK over gRPC, and the HF baselines.

Each `measure_*` function runs one generation of `max_tokens` greedy tokens from the same
prompt and returns a `DecodeSample` (time to first token, each token's arrival). torch,
transformers and grpc are imported inside the functions: the evidence package must stay
importable without them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from kakeya_evidence.bench.sdk_process import SdkProcess
from kakeya_evidence.bench.stats import DecodeSample, SessionTrace

__all__ = [
    "interleave_order",
    "measure_hf_generate",
    "measure_hf_loop",
    "measure_interleaved",
    "measure_runtime",
    "measure_sdk",
    "random_tokens",
    "run_long_session",
    "sdk_client",
]

S = TypeVar("S")  # what one run of a variant returns (DecodeSample, BatchSample)


def random_tokens(rng: random.Random, count: int, vocab_size: int) -> list[int]:
    """`count` token ids drawn from a seeded generator (the weights are random anyway)."""
    return [rng.randrange(vocab_size) for _ in range(count)]


def interleave_order(names: Sequence[str], repeat: int) -> list[str]:
    """Variant order for one repeat: rotated each repeat so no variant always runs first."""
    shift = repeat % len(names) if names else 0
    return list(names[shift:]) + list(names[:shift])


def measure_interleaved(
    variants: Mapping[str, Callable[[], S]],
    repeats: int,
    warmup: int,
    on_sample: Callable[[str, int, S], None] | None = None,
) -> dict[str, list[S]]:
    """Warm every variant up, then run them interleaved (ABC, BCA, ...) `repeats` times.

    Interleaving makes drift (thermal, other processes) hit every variant alike, so
    ratios within a repeat stay meaningful on a noisy machine.
    """
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    samples: dict[str, list[S]] = {name: [] for name in names}
    for repeat in range(repeats):
        for name in interleave_order(names, repeat):
            sample = variants[name]()
            samples[name].append(sample)
            if on_sample is not None:
                on_sample(name, repeat, sample)
    return samples


def _sample(start: float, stamps: list[float], ids: list[int]) -> DecodeSample:
    if not stamps:
        raise RuntimeError("the generation produced no tokens")
    return DecodeSample(ttft_s=stamps[0], stamps_s=tuple(stamps), token_ids=tuple(ids))


def _run_engine(
    engine: Any, session_id: str, max_tokens: int, start: float
) -> tuple[list[float], list[int], Any]:
    """Generate on an engine session; return (token stamps, token ids, the done event).

    Raises:
        RuntimeError: the stream ended without a done event.
    """
    from inference_engine.session.events import DoneEvent, GenerationParams, TokenEvent

    stamps: list[float] = []
    ids: list[int] = []
    done = None
    stream = engine.generate(session_id, GenerationParams(max_tokens=max_tokens))
    try:
        for event in stream:
            if isinstance(event, TokenEvent):
                stamps.append(time.perf_counter() - start)
                ids.append(event.token_id)
            elif isinstance(event, DoneEvent):
                done = event
    finally:
        stream.close()
    if done is None:
        raise RuntimeError("the generation ended without a done event")
    return stamps, ids, done


def measure_runtime(engine: Any, prompt: list[int], max_tokens: int) -> DecodeSample:
    """The runtime in-process: a fresh session, append the prompt, generate (timed from append)."""
    session_id = engine.create_session(label="bench").session_id
    try:
        start = time.perf_counter()
        engine.append(session_id, prompt)
        stamps, ids, _ = _run_engine(engine, session_id, max_tokens, start)
    finally:
        engine.close(session_id)
    return _sample(start, stamps, ids)


def measure_sdk(
    client: Any, prompt: list[int], max_tokens: int, batch_tokens: bool = True
) -> DecodeSample:
    """The same through `kakeya.Client` over gRPC; tokens timed as they reach the client.

    `batch_tokens=False` asks for one message per token (the stream of older SDKs).
    """
    session = client.create_session(label="bench")
    try:
        start = time.perf_counter()
        session.append(prompt)
        stamps: list[float] = []
        ids: list[int] = []
        for token_id in session.generate(max_tokens, batch_tokens=batch_tokens):
            stamps.append(time.perf_counter() - start)
            ids.append(token_id)
    finally:
        session.close()
    return _sample(start, stamps, ids)


def measure_hf_loop(model: Any, prompt: list[int], max_tokens: int) -> DecodeSample:
    """A plain transformers decode loop: DynamicCache, one token at a time, greedy argmax."""
    import torch
    from transformers import DynamicCache

    device = next(model.parameters()).device
    stamps: list[float] = []
    ids: list[int] = []
    with torch.inference_mode():
        start = time.perf_counter()
        cache = DynamicCache(config=model.config)
        input_ids = torch.tensor([prompt], dtype=torch.long, device=device)  # [1, P]
        for _ in range(max_tokens):
            out = model(input_ids=input_ids, cache=cache, use_cache=True, logits_to_keep=1)
            token = int(torch.argmax(out.logits[0, -1]).item())
            stamps.append(time.perf_counter() - start)
            ids.append(token)
            input_ids = torch.tensor([[token]], dtype=torch.long, device=device)  # [1, 1]
    return _sample(start, stamps, ids)


def measure_hf_generate(model: Any, prompt: list[int], max_tokens: int) -> DecodeSample:
    """`model.generate()` greedy for exactly `max_tokens`; a streamer stamps each token."""
    import torch
    from transformers.generation.streamers import BaseStreamer

    class _Stamps(BaseStreamer):
        def __init__(self, start: float) -> None:
            self.start = start
            self.stamps: list[float] = []
            self.ids: list[int] = []
            self.prompt_seen = False

        def put(self, value: Any) -> None:
            if not self.prompt_seen:  # generate puts the prompt first
                self.prompt_seen = True
                return
            self.ids.extend(int(t) for t in value.reshape(-1).tolist())
            self.stamps.append(time.perf_counter() - self.start)

        def end(self) -> None:
            pass

    device = next(model.parameters()).device
    with torch.inference_mode():
        start = time.perf_counter()
        input_ids = torch.tensor([prompt], dtype=torch.long, device=device)  # [1, P]
        streamer = _Stamps(start)
        model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_tokens,
            min_new_tokens=max_tokens,
            do_sample=False,
            streamer=streamer,
        )
    return _sample(start, streamer.stamps, streamer.ids)


@contextlib.contextmanager
def sdk_client(engine: Any) -> Iterator[SdkProcess]:
    """A gRPC server on 127.0.0.1 port 0 around `engine` (in a thread of this process), and
    the SDK in a client process of its own, connected to it (as users run it)."""
    from inference_engine.server.config import ServerConfig
    from inference_engine.server.serve import BackgroundServer

    config = ServerConfig(grpc_port=0, http_port=-1, shutdown_grace_s=1.0)
    with BackgroundServer(engine, config) as server, SdkProcess(server.grpc_address) as client:
        yield client


def _append_all(engine: Any, session_id: str, tokens: list[int], limit: int) -> None:
    for offset in range(0, len(tokens), limit):
        engine.append(session_id, tokens[offset : offset + limit])


def _full_reprefill_turn(engine: Any, history: list[int], max_tokens: int) -> tuple[float, int]:
    """What a stateless server does each turn: a new session fed the whole history."""
    session_id = engine.create_session(label="bench-full").session_id
    try:
        start = time.perf_counter()
        _append_all(engine, session_id, history, engine.config.limits.max_append_tokens)
        _, _, done = _run_engine(engine, session_id, max_tokens, start)
        elapsed = time.perf_counter() - start
    finally:
        engine.close(session_id)
    return elapsed, done.prefill_tokens


def run_long_session(
    engine: Any,
    turn_tokens: Sequence[list[int]],
    max_tokens: int,
    on_turn: Callable[[int, SessionTrace], None] | None = None,
) -> SessionTrace:
    """One session of `len(turn_tokens)` turns (append, generate), against full re-prefill.

    Per turn, the incremental turn and its full re-prefill twin run back to back, in
    alternating order, so drift hits both series alike. The history the twin prefills
    is exactly the incremental session's (its generated tokens included).
    """
    trace = SessionTrace()
    session_id = engine.create_session(label="bench-long").session_id
    history: list[int] = []
    try:
        for turn, new in enumerate(turn_tokens):
            full_first = turn % 2 == 1
            if full_first:
                _record_full(trace, engine, history + new, max_tokens)
            generated = _incremental_turn(trace, engine, session_id, new, max_tokens)
            if not full_first:
                _record_full(trace, engine, history + new, max_tokens)
            history += new + generated
            if on_turn is not None:
                on_turn(turn, trace)
        trace = dataclasses.replace(trace, kv_bound_bytes=engine.info(session_id).kv_bound_bytes)
    finally:
        engine.close(session_id)
    return trace


def _incremental_turn(
    trace: SessionTrace, engine: Any, session_id: str, new: list[int], max_tokens: int
) -> list[int]:
    start = time.perf_counter()
    engine.append(session_id, new)
    _, ids, done = _run_engine(engine, session_id, max_tokens, start)
    trace.incremental_s.append(time.perf_counter() - start)
    info = engine.info(session_id)
    trace.kv_live_bytes.append(info.kv_live_bytes)
    trace.prefill_tokens.append(done.prefill_tokens)
    trace.history_tokens.append(info.history_tokens)
    return ids


def _record_full(trace: SessionTrace, engine: Any, history: list[int], max_tokens: int) -> None:
    elapsed, prefill_tokens = _full_reprefill_turn(engine, history, max_tokens)
    trace.full_reprefill_s.append(elapsed)
    trace.full_prefill_tokens.append(prefill_tokens)
