"""Continuous batching on the real embedded model: one decode loop steps every generation.

Batch invariance (a session's tokens do not depend on who shares the step), prefill
interleaved with decode, stop-then-resend with no sleep (engine, sync SDK, async SDK, raw
gRPC), and the counters the loop reports.
"""

from __future__ import annotations

import asyncio
import itertools
import threading

import grpc
import pytest
from test_core_sessions import history, wait_until

import kakeya
from inference_engine.config import LanePadding
from inference_engine.session.events import GenerationParams, StopReason, TokenEvent
from kakeya.v1 import runtime_pb2 as pb
from kakeya.v1 import runtime_pb2_grpc as pb_grpc

LANES = 8


class Reader(threading.Thread):
    """Consumes one engine stream in its own thread (as a server's handler would)."""

    def __init__(self, stream, stop_after: int | None = None) -> None:
        super().__init__(daemon=True)
        self.stream, self.stop_after = stream, stop_after
        self.tokens: list[int] = []

    def run(self) -> None:
        for event in self.stream:
            if isinstance(event, TokenEvent):
                self.tokens.append(event.token_id)
                if self.stop_after is not None and len(self.tokens) >= self.stop_after:
                    self.stream.close()
                    return


def start(engine, prompt: list[int], max_tokens: int):
    sid = engine.create_session().session_id
    engine.append(sid, prompt)
    return engine.generate(sid, GenerationParams(max_tokens=max_tokens))


def record_turns(engine) -> list[tuple[str, int]]:
    turns: list[tuple[str, int]] = []
    engine.coordinator.loop.observe(lambda kind, sessions: turns.append((kind, sessions)))
    return turns


# -- batch invariance ------------------------------------------------------------------------


@pytest.mark.parametrize("padding", list(LanePadding))
@pytest.mark.parametrize("float32", [False, True], ids=["auto-dtype", "float32"])
def test_tokens_alone_amid_seven_others_and_joining_late_are_identical(
    make_engine, float32, padding
):
    """float32 is the strict case: a row rounds differently with another row count and at
    another place on this CPU, so the engine runs each decode linear one row at a time
    there ("auto" finds that out by running the real step; "always" also pads to the
    lanes); the tiny model's bfloat16 products are batch-invariant and "auto" runs
    unpadded. Either way the session's logits, and so its tokens, do not change."""
    engine = make_engine(max_concurrent=LANES, float32=float32, window=40, lane_padding=padding)
    prompts = [history(70 + i, 17 + 5 * i, engine.vocab_size) for i in range(LANES)]
    turns = record_turns(engine)

    alone = Reader(start(engine, prompts[0], 24))
    alone.run()

    crowd = [Reader(start(engine, p, 24)) for p in prompts]
    for reader in crowd:
        reader.start()
    for reader in crowd:
        reader.join(60)
    assert max(n for kind, n in turns if kind == "decode") == LANES  # all eight in one step

    others = [Reader(start(engine, p, 60)) for p in prompts[1:]]
    for reader in others:
        reader.start()
    assert wait_until(lambda: all(len(r.tokens) >= 3 for r in others))
    late = Reader(start(engine, prompts[0], 24))
    late.run()
    for reader in others:
        reader.join(60)

    assert len(alone.tokens) == 24
    assert crowd[0].tokens == alone.tokens
    assert late.tokens == alone.tokens


def test_sessions_generating_together_share_decode_steps(make_engine):
    engine = make_engine(max_concurrent=4)
    turns = record_turns(engine)
    readers = [Reader(start(engine, history(90 + i, 12, engine.vocab_size), 20)) for i in range(4)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(60)
    decode = [n for kind, n in turns if kind == "decode"]
    assert all(len(r.tokens) == 20 for r in readers)
    # 4 x 19 decode forwards if each session stepped alone; together far fewer steps
    assert sum(decode) == 4 * 19 and len(decode) < 2 * 19
    assert engine.metrics.decode_batch_sessions._sum.get() == 4 * 19


# -- prefill interleaved with decode --------------------------------------------------------


def test_a_long_prefill_delays_running_decodes_by_at_most_one_chunk_per_step(make_engine):
    engine = make_engine(prefill_chunk=16, window=400, max_concurrent=4)
    turns = record_turns(engine)
    runner = Reader(start(engine, history(31, 10, engine.vocab_size), 400), stop_after=300)
    runner.start()
    assert wait_until(lambda: len(runner.tokens) >= 3)
    long_prompt = history(32, 16 * 12, engine.vocab_size)  # twelve chunks
    newcomer = Reader(start(engine, long_prompt, 2))
    newcomer.run()
    runner.stream.close()
    runner.join(60)
    kinds = [kind for kind, _ in turns]
    first = kinds.index("prefill", 1)  # the newcomer's first chunk (index 0: the runner's)
    window = kinds[first : first + 2 * 12]
    assert window.count("prefill") == 12
    assert all(a != "prefill" or b != "prefill" for a, b in itertools.pairwise(window))
    assert len(newcomer.tokens) == 2


# -- stop, then resend -----------------------------------------------------------------------

PROMPT = list(range(10, 40))


def test_engine_stop_then_append_and_generate_at_once(engine):
    sid = engine.create_session().session_id
    engine.append(sid, PROMPT)
    expected = len(PROMPT)
    for _ in range(50):
        stream = engine.generate(sid, GenerationParams(max_tokens=500))
        events = iter(stream)
        next(events)
        stream.close()  # the caller's "stop" button
        assert engine.append(sid, [5, 6]) > expected
        expected = engine.info(sid).history_tokens
    assert not engine.info(sid).generating


def test_sync_sdk_stop_then_resend_with_no_sleep(runtime):
    """The history holds exactly the tokens the done event reported, every time."""
    with (
        kakeya.Client(runtime.grpc_address, timeout=60) as client,
        client.create_session() as session,
    ):
        length = session.append(PROMPT)
        for turn in range(50):
            generation = session.generate(500)
            for index, _ in enumerate(generation):
                if index == 2:
                    break
            assert generation.stop_reason is kakeya.StopReason.CANCELLED
            assert generation.generated_tokens == len(generation.token_ids) >= 3
            length = session.append([7, 8, turn % 50 + 9]) - 3
            assert length == generation.history_tokens
        assert not session.info().generating


def test_async_sdk_stop_then_resend_with_no_sleep(runtime):
    async def main() -> None:
        async with kakeya.AsyncClient(runtime.grpc_address, timeout=60) as client:
            session = await client.create_session()
            await session.append(PROMPT)
            for turn in range(50):
                generation = session.generate(500)
                count = 0
                async for _ in generation:  # a plain break: the generator is not closed
                    count += 1
                    if count == 3:
                        break
                length = await session.append([7, 8, turn + 9])
                assert generation.stop_reason is kakeya.StopReason.CANCELLED
                assert length - 3 == generation.history_tokens
                assert generation.generated_tokens == len(generation.token_ids) >= 3
            again = session.generate(4)
            assert len([t async for t in again]) == 4
            await session.close()

    asyncio.run(main())


def test_raw_grpc_client_that_cancels_and_appends_at_once_is_served(runtime):
    """No SDK: the server itself waits (bounded) for the abandoned generate to wind down."""
    with grpc.insecure_channel(runtime.grpc_address) as channel:
        stub = pb_grpc.RuntimeServiceStub(channel)
        sid = stub.CreateSession(pb.CreateSessionRequest()).session.session_id
        stub.AppendTokens(pb.AppendTokensRequest(session_id=sid, token_ids=PROMPT))
        for _ in range(50):
            call = stub.Generate(pb.GenerateRequest(session_id=sid, max_tokens=500))
            next(call)
            call.cancel()
            stub.AppendTokens(pb.AppendTokensRequest(session_id=sid, token_ids=[5]), timeout=30)
        stopped = stub.CancelGenerate(pb.CancelGenerateRequest(session_id=sid))
        assert stopped.was_running is False


def test_a_second_reader_on_a_busy_session_is_still_refused(engine):
    sid = engine.create_session().session_id
    engine.append(sid, PROMPT)
    stream = engine.generate(sid, GenerationParams(max_tokens=500))
    next(iter(stream))
    with pytest.raises(Exception, match="in flight") as raised:
        engine.generate(sid, GenerationParams(max_tokens=2))
    assert type(raised.value).__name__ == "FailedPrecondition"
    assert engine.cancel_generate(sid) is True
    done = list(stream)[-1]
    assert done.stop_reason is StopReason.CANCELLED
    assert engine.info(sid).history_tokens == len(PROMPT) + done.generated_tokens


# -- counters --------------------------------------------------------------------------------


def test_invariant_checks_count_the_forwards_that_ran(make_engine):
    engine = make_engine(prefill_chunk=16)
    sid = engine.create_session().session_id
    engine.append(sid, history(41, 5, engine.vocab_size))
    list(engine.generate(sid, GenerationParams(max_tokens=3)))  # 1 prefill + 2 decode steps
    engine.append(sid, history(42, 30, engine.vocab_size))
    # 31 pending tokens from position 7: chunks 7-15, 16-31, 32-37, then 1 decode step
    list(engine.generate(sid, GenerationParams(max_tokens=2)))
    assert engine.info(sid).invariant_checks == 3 + 3 + 1
