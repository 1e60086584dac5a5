"""The runtime core on the real embedded model: prefill, invariants, eviction, stop reasons."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest
import torch

from inference_engine.config import WhenFull
from inference_engine.errors import (
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
    SessionNotFound,
)
from inference_engine.session.events import (
    DoneEvent,
    GenerationParams,
    StopReason,
    TokenEvent,
    TruncationEvent,
)


def generate(engine, session_id: str, max_tokens: int = 8, **params) -> tuple[list[int], DoneEvent]:
    tokens: list[int] = []
    done = None
    for event in engine.generate(session_id, GenerationParams(max_tokens=max_tokens, **params)):
        if isinstance(event, TokenEvent):
            tokens.append(event.token_id)
        elif isinstance(event, DoneEvent):
            done = event
    assert done is not None
    return tokens, done


def history(seed: int, length: int, vocab: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(vocab) for _ in range(length)]


def chunk(tokens: list[int], sizes: list[int]) -> list[list[int]]:
    out, offset = [], 0
    for size in sizes:
        out.append(tokens[offset : offset + size])
        offset += size
    assert offset == len(tokens)
    return out


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# -- incremental prefill -------------------------------------------------------------------------


def test_generate_prefills_only_what_was_appended_since_the_last_forward(engine):
    sid = engine.create_session().session_id
    engine.append(sid, history(1, 20, engine.vocab_size))
    _, first = generate(engine, sid, max_tokens=5)
    assert first.prefill_tokens == 20
    engine.append(sid, history(2, 7, engine.vocab_size))
    _, second = generate(engine, sid, max_tokens=5)
    # the last generated token was sampled but never forwarded: it is prefilled with the 7 new ones
    assert second.prefill_tokens == 7 + 1
    assert second.history_tokens == 20 + 5 + 7 + 5
    _, third = generate(engine, sid, max_tokens=3)
    assert third.prefill_tokens == 1


# -- INV-3: chunking independence, also across S + W ----------------------------------------

HISTORIES = [(11, 30), (12, 75), (13, 150)]  # S + W = 64 in the default test engine


@pytest.mark.parametrize("seed,length", HISTORIES, ids=[f"len{n}" for _, n in HISTORIES])
def test_greedy_output_is_identical_for_every_chunking(make_engine, seed, length):
    """In the served dtype (bfloat16 here): one append, N appends of one, uneven appends."""
    engine = make_engine()
    tokens = history(seed, length, engine.vocab_size)
    rng = random.Random(seed)
    uneven, left = [], length
    while left:
        uneven.append(min(left, rng.randint(1, 23)))
        left -= uneven[-1]
    outputs, logits = {}, {}
    for name, sizes in {"1xN": [length], "Nx1": [1] * length, "uneven": uneven}.items():
        sid = engine.create_session().session_id
        for piece in chunk(tokens, sizes):
            engine.append(sid, piece)
        outputs[name], _ = generate(engine, sid, max_tokens=12)
        logits[name] = engine.coordinator.store.get(sid).state.last_logits
        engine.close(sid)
    assert outputs["1xN"] == outputs["Nx1"] == outputs["uneven"]
    if engine.coordinator.step.chunk_invariant:  # the served dtype here: to the bit
        assert torch.equal(logits["1xN"], logits["Nx1"])
        assert torch.equal(logits["1xN"], logits["uneven"])


def test_prefill_chunk_size_does_not_change_greedy_output_across_the_bound(make_engine):
    """One big prefill, token-by-token prefill, odd chunks: the mask shows every query the
    same keys, so only float rounding differs - checked in float32, where it cannot flip."""
    tokens = None
    outputs = []
    for prefill_chunk in (1, 7, 64):
        engine = make_engine(prefill_chunk=prefill_chunk, float32=True)
        tokens = tokens or history(21, 140, engine.vocab_size)
        sid = engine.create_session().session_id
        engine.append(sid, tokens)
        outputs.append(generate(engine, sid, max_tokens=12)[0])
    assert outputs[0] == outputs[1] == outputs[2]


@pytest.mark.parametrize("float32", [False, True], ids=["served-dtype", "float32"])
def test_history_grown_by_turns_equals_the_same_history_appended_at_once(make_engine, float32):
    """Turn boundaries change which forwards run, not what each query sees: in the dtype the
    server picks (bfloat16 on this CPU) the same greedy tokens and the same logits bits as
    one append of the whole history (a 152-token history in 4 turns, past S + W = 64)."""
    engine = make_engine(float32=float32)
    turns = [history(60 + i, 33, engine.vocab_size) for i in range(4)]
    grown = engine.create_session().session_id
    for turn in turns:
        engine.append(grown, turn)
        generate(engine, grown, max_tokens=5)
    whole = engine.create_session().session_id
    engine.append(whole, engine.coordinator.store.get(grown).history)
    assert engine.info(whole).history_tokens == 4 * (33 + 5) == 152
    assert generate(engine, grown, max_tokens=12)[0] == generate(engine, whole, max_tokens=12)[0]
    if engine.coordinator.step.chunk_invariant:
        logits = [engine.coordinator.store.get(s).state.last_logits for s in (grown, whole)]
        assert torch.equal(*logits)


def test_the_served_dtype_promises_chunking_invariance_here(engine):
    """The default dtype on this machine is one whose forwards the probe found chunking-
    and batch-invariant to the bit (float32 here is only to rounding, and says so)."""
    step = engine.coordinator.step
    assert step.batch_invariant and step.chunk_invariant, step.describe()


# -- bounded memory --------------------------------------------------------------------------------


def test_kv_bytes_stay_flat_past_sink_plus_window(engine):
    sid = engine.create_session().session_id
    engine.append(sid, history(3, 10, engine.vocab_size))
    live, dropped = [], []
    for turn in range(12):
        engine.append(sid, history(100 + turn, 9, engine.vocab_size))
        events = list(engine.generate(sid, GenerationParams(max_tokens=4)))
        info = engine.info(sid)
        live.append(info.kv_live_bytes)
        dropped.append(info.dropped_tokens)
        truncations = [e for e in events if isinstance(e, TruncationEvent)]
        assert len(truncations) == (1 if info.dropped_tokens else 0)
    bound = engine.info(sid).kv_bound_bytes
    assert max(live) == bound
    past = [b for b, d in zip(live, dropped, strict=True) if d > 0]
    assert len(past) >= 5 and set(past) == {bound}
    assert dropped == sorted(dropped) and dropped[-1] > 0
    assert engine.info(sid).history_tokens == 10 + 12 * (9 + 4)


# -- isolation -------------------------------------------------------------------------------------


def test_interleaved_sessions_equal_isolated_runs(make_engine):
    engine = make_engine()
    turns = [
        (history(40 + i, 13, engine.vocab_size), history(50 + i, 9, engine.vocab_size))
        for i in range(3)
    ]

    def isolated(which: int) -> list[list[int]]:
        sid = engine.create_session().session_id
        outs = []
        for turn in turns:
            engine.append(sid, turn[which])
            outs.append(generate(engine, sid, max_tokens=6)[0])
        engine.close(sid)
        return outs

    alone_a, alone_b = isolated(0), isolated(1)
    a = engine.create_session().session_id
    b = engine.create_session().session_id
    mixed_a, mixed_b = [], []
    for turn in turns:
        engine.append(a, turn[0])
        engine.append(b, turn[1])
        mixed_b.append(generate(engine, b, max_tokens=6)[0])
        mixed_a.append(generate(engine, a, max_tokens=6)[0])
    assert mixed_a == alone_a
    assert mixed_b == alone_b


# -- stop reasons and sampling ---------------------------------------------------------------------


def test_max_tokens_stop_reason_and_count(engine):
    sid = engine.create_session().session_id
    engine.append(sid, history(5, 12, engine.vocab_size))
    tokens, done = generate(engine, sid, max_tokens=9)
    assert len(tokens) == 9 == done.generated_tokens
    assert done.stop_reason is StopReason.MAX_TOKENS
    assert done.prefill_s > 0 and done.total_s >= done.prefill_s


def test_eos_token_is_emitted_counted_and_stops(engine):
    probe = engine.create_session().session_id
    prompt = history(6, 12, engine.vocab_size)
    engine.append(probe, prompt)
    greedy, _ = generate(engine, probe, max_tokens=6)
    eos = greedy[3]
    first_eos = greedy.index(eos)
    sid = engine.create_session(eos_token_ids=[eos]).session_id
    engine.append(sid, prompt)
    tokens, done = generate(engine, sid, max_tokens=6)
    assert done.stop_reason is StopReason.EOS
    assert tokens == greedy[: first_eos + 1] and tokens[-1] == eos
    assert done.generated_tokens == len(tokens)


def test_seeded_sampling_is_reproducible_and_seed_sensitive(engine):
    prompt = history(7, 16, engine.vocab_size)

    def sampled(seed: int) -> list[int]:
        sid = engine.create_session().session_id
        engine.append(sid, prompt)
        return generate(
            engine, sid, max_tokens=16, temperature=1.5, top_p=0.95, top_k=50, seed=seed
        )[0]

    assert sampled(1234) == sampled(1234)
    assert sampled(1234) != sampled(4321)


# -- validation: typed error, history unchanged ----------------------------------------------------

BAD_APPENDS = {
    "negative id": [-1],
    "id == vocab": None,  # filled in with the engine's vocab size
    "empty": [],
    "over the limit": "over",
    "not an int": [1.5],
}


@pytest.mark.parametrize("case", list(BAD_APPENDS))
def test_bad_append_is_invalid_argument_and_changes_nothing(engine, case):
    sid = engine.create_session().session_id
    engine.append(sid, [1, 2, 3])
    bad = BAD_APPENDS[case]
    if bad is None:
        bad = [4, engine.vocab_size]
    elif bad == "over":
        bad = [1] * (engine.config.limits.max_append_tokens + 1)
    with pytest.raises(InvalidArgument) as raised:
        engine.append(sid, bad)
    assert raised.value.field == "token_ids"
    assert engine.info(sid).history_tokens == 3


BAD_PARAMS = {
    "max_tokens 0": dict(max_tokens=0),
    "max_tokens over": dict(max_tokens=10**6),
    "temperature nan": dict(max_tokens=4, temperature=float("nan")),
    "temperature negative": dict(max_tokens=4, temperature=-0.5),
    "top_p 0": dict(max_tokens=4, top_p=0.0),
    "top_p above 1": dict(max_tokens=4, top_p=1.5),
    "top_k negative": dict(max_tokens=4, top_k=-1),
}


@pytest.mark.parametrize("case", list(BAD_PARAMS))
def test_bad_generation_params_are_refused_before_any_model_work(engine, case):
    sid = engine.create_session().session_id
    engine.append(sid, [5, 6, 7])
    with pytest.raises(InvalidArgument):
        engine.generate(sid, GenerationParams(**BAD_PARAMS[case]))
    info = engine.info(sid)
    assert info.history_tokens == 3 and info.cached_tokens == 0 and not info.generating


def test_bad_eos_ids_and_label_are_refused(engine):
    with pytest.raises(InvalidArgument):
        engine.create_session(eos_token_ids=[engine.vocab_size])
    with pytest.raises(InvalidArgument):
        engine.create_session(label="x" * 1000)
    assert engine.metrics.session_active._value.get() == 0


def test_generate_on_an_empty_session_is_failed_precondition(engine):
    sid = engine.create_session().session_id
    with pytest.raises(FailedPrecondition):
        engine.generate(sid, GenerationParams(max_tokens=2))


def test_unknown_and_closed_sessions_are_not_found(engine):
    with pytest.raises(SessionNotFound):
        engine.append("sess_nope", [1])
    sid = engine.create_session().session_id
    engine.close(sid)
    with pytest.raises(SessionNotFound, match="closed"):
        engine.generate(sid, GenerationParams(max_tokens=2))
    with pytest.raises(SessionNotFound):
        engine.close(sid)


# -- eviction --------------------------------------------------------------------------------------


def test_lru_eviction_at_capacity_is_counted_and_never_recreates(make_engine):
    engine = make_engine(max_sessions=2, when_full=WhenFull.EVICT_IDLE)
    a = engine.create_session().session_id
    b = engine.create_session().session_id
    engine.append(a, [1])  # a is now more recent than b
    c = engine.create_session().session_id
    with pytest.raises(SessionNotFound, match="lru"):
        engine.info(b)
    assert engine.info(a).history_tokens == 1
    assert engine.info(c).history_tokens == 0
    assert engine.metrics.session_evicted_total.labels(reason="lru")._value.get() == 1
    with pytest.raises(SessionNotFound):
        engine.append(b, [1])


def test_idle_ttl_eviction_runs_in_the_background(make_engine):
    engine = make_engine(ttl_s=0.2, sweep_s=0.02)
    sid = engine.create_session().session_id
    evicted = engine.metrics.session_evicted_total.labels(reason="ttl")
    assert wait_until(lambda: evicted._value.get() == 1)
    assert engine.metrics.session_active._value.get() == 0
    with pytest.raises(SessionNotFound, match="ttl"):
        engine.info(sid)


def test_store_full_of_busy_sessions_is_resource_exhausted(make_engine):
    engine = make_engine(max_sessions=1, when_full=WhenFull.EVICT_IDLE)
    sid = engine.create_session().session_id
    engine.append(sid, [1, 2])
    stream = engine.generate(sid, GenerationParams(max_tokens=50))
    next(stream)  # running: this session cannot be evicted
    with pytest.raises(ResourceExhausted):
        engine.create_session()
    stream.close()
    engine.create_session()  # the running one finished, so it may be evicted now


# -- invariant violation ---------------------------------------------------------------------------


def test_invariant_violation_fails_the_request_and_closes_the_session(engine):
    sid = engine.create_session().session_id
    engine.append(sid, [1, 2, 3])
    generate(engine, sid, max_tokens=2)
    session = engine.coordinator.store.get(sid)
    session.state.cache.layers[0].writes += 1  # corrupt: INV-1 must catch it on the next forward
    with pytest.raises(FailedPrecondition, match="inv1"):
        generate(engine, sid, max_tokens=2)
    assert engine.metrics.cache_invariant_violations_total.labels(kind="inv1")._value.get() == 1
    with pytest.raises(SessionNotFound, match="failed"):
        engine.info(sid)
