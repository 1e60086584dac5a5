"""The concurrency sweep: n sessions generating together, against `model.generate()` on a batch.

For each n: the runtime in-process (n threads, each reading one engine stream), the SDK over
gRPC (n threads on one channel), and HF's `generate()` on a batch of the same n prompts.
Every variant records each session's token arrival times from one common start;
`bench.stats.concurrency_row` turns them into aggregate decode tokens/s, inter-token latency
and time to first token. Also here: how much one long prefill delays a running decode.

torch, transformers and grpc are imported inside the functions (the package must import
without them).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from kakeya_evidence.bench.stats import BatchSample

__all__ = [
    "measure_hf_generate_batch",
    "measure_prefill_interleave",
    "measure_runtime_batch",
    "measure_sdk_batch",
]

# One session's generation, run in its own thread: token arrival times after `start`.
SessionRun = Callable[[float], list[float]]


def _run_together(runs: Sequence[SessionRun]) -> BatchSample:
    """Start every session's run at the same instant; collect their token stamps."""
    go = threading.Event()
    stamps: list[list[float]] = [[] for _ in runs]
    errors: list[BaseException] = []
    start = [0.0]

    def worker(index: int) -> None:
        try:
            go.wait()
            stamps[index] = runs[index](start[0])
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(len(runs))]
    for thread in threads:
        thread.start()
    start[0] = time.perf_counter()
    go.set()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"a session failed: {errors[0]!r}") from errors[0]
    return BatchSample(tuple(tuple(s) for s in stamps))


def measure_runtime_batch(
    engine: Any, prompts: Sequence[list[int]], max_tokens: int
) -> BatchSample:
    """n engine sessions (prompts appended beforehand) generating at once, in-process."""
    from inference_engine.session.events import GenerationParams, TokenEvent

    sessions = [engine.create_session(label="bench-batch").session_id for _ in prompts]
    for session_id, prompt in zip(sessions, prompts, strict=True):
        engine.append(session_id, prompt)

    def run_for(session_id: str) -> SessionRun:
        def run(start: float) -> list[float]:
            stamps = []
            stream = engine.generate(session_id, GenerationParams(max_tokens=max_tokens))
            for event in stream:
                if isinstance(event, TokenEvent):
                    stamps.append(time.perf_counter() - start)
            return stamps

        return run

    try:
        return _run_together([run_for(s) for s in sessions])
    finally:
        for session_id in sessions:
            engine.close(session_id)


def measure_sdk_batch(
    client: Any, prompts: Sequence[list[int]], max_tokens: int, batch_tokens: bool = True
) -> BatchSample:
    """The same through `kakeya.Client` over gRPC, one thread per session, one channel."""
    sessions = [client.create_session(label="bench-batch") for _ in prompts]
    for session, prompt in zip(sessions, prompts, strict=True):
        session.append(prompt)

    def run_for(session: Any) -> SessionRun:
        def run(start: float) -> list[float]:
            stream = session.generate(max_tokens, batch_tokens=batch_tokens)
            return [time.perf_counter() - start for _ in stream]

        return run

    try:
        return _run_together([run_for(s) for s in sessions])
    finally:
        for session in sessions:
            session.close()


def measure_hf_generate_batch(
    model: Any, prompts: Sequence[list[int]], max_tokens: int
) -> BatchSample:
    """`model.generate()` greedy on a batch of the n prompts (left-padded to one length)."""
    import torch
    from transformers.generation.streamers import BaseStreamer

    class _Steps(BaseStreamer):
        """Stamps each step (every row gets its token in the same step)."""

        def __init__(self, start: float) -> None:
            self.start = start
            self.stamps: list[float] = []
            self.prompt_seen = False

        def put(self, value: Any) -> None:
            if not self.prompt_seen:  # generate puts the prompt first
                self.prompt_seen = True
                return
            self.stamps.append(time.perf_counter() - self.start)

        def end(self) -> None:
            pass

    device = next(model.parameters()).device
    width = max(len(p) for p in prompts)
    input_ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    with torch.inference_mode():
        steps = _Steps(time.perf_counter())
        model.generate(
            input_ids,  # [n, P]
            attention_mask=mask,  # [n, P]
            max_new_tokens=max_tokens,
            min_new_tokens=max_tokens,
            do_sample=False,
            pad_token_id=0,
            streamer=steps,
        )
    return BatchSample(tuple(tuple(steps.stamps) for _ in prompts))


def measure_prefill_interleave(
    engine: Any, prompt: list[int], long_prompt: list[int], decode_tokens: int
) -> dict[str, Any]:
    """How much a long prefill delays a running decode.

    A runner session decodes `decode_tokens` tokens, once alone and once while a newcomer
    prefills `long_prompt` (many chunks). The loop runs one chunk per decode step, so the
    runner's gaps during the newcomer's prefill should be its usual gap plus one chunk.
    """
    alone = _runner_gaps(engine, prompt, decode_tokens, None)
    newcomer = _Newcomer(engine, long_prompt)
    during = _runner_gaps(engine, prompt, decode_tokens, newcomer)
    newcomer.join()
    window = [gap for at, gap in during if newcomer.started <= at <= newcomer.first_token]
    chunk = engine.config.cache.prefill_chunk_tokens
    return {
        "chunks": -(-len(long_prompt) // chunk),
        "chunk_tokens": chunk,
        "runner_itl_p50_s_alone": _median([gap for _, gap in alone]),
        "runner_itl_p50_s_during_prefill": _median(window) if window else None,
        "runner_itl_max_s_during_prefill": max(window) if window else None,
        "newcomer_prefill_s": newcomer.first_token - newcomer.started,
    }


class _Newcomer(threading.Thread):
    """A session that appends a long prompt and generates one token, timed."""

    def __init__(self, engine: Any, prompt: list[int]) -> None:
        super().__init__(daemon=True)
        self.engine, self.prompt = engine, prompt
        self.started = self.first_token = 0.0

    def run(self) -> None:
        from inference_engine.session.events import GenerationParams, TokenEvent

        engine = self.engine
        session_id = engine.create_session(label="bench-newcomer").session_id
        limit = engine.config.limits.max_append_tokens
        for offset in range(0, len(self.prompt), limit):
            engine.append(session_id, self.prompt[offset : offset + limit])
        self.started = time.perf_counter()
        for event in engine.generate(session_id, GenerationParams(max_tokens=1)):
            if isinstance(event, TokenEvent):
                self.first_token = time.perf_counter()
        engine.close(session_id)


def _runner_gaps(
    engine: Any, prompt: list[int], tokens: int, newcomer: _Newcomer | None
) -> list[tuple[float, float]]:
    """(arrival, gap since the previous token) for the runner's decode tokens."""
    from inference_engine.session.events import GenerationParams, TokenEvent

    session_id = engine.create_session(label="bench-runner").session_id
    engine.append(session_id, prompt)
    stamps: list[float] = []
    stream = engine.generate(session_id, GenerationParams(max_tokens=tokens))
    try:
        for event in stream:
            if isinstance(event, TokenEvent):
                stamps.append(time.perf_counter())
                if newcomer is not None and len(stamps) == 4:
                    newcomer.start()
    finally:
        stream.close()
        engine.close(session_id)
    return [(b, b - a) for a, b in itertools.pairwise(stamps[1:])]


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]
