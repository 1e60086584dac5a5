"""SDK session and generation objects without a server: local errors, event bookkeeping."""

from __future__ import annotations

import pytest

from kakeya import (
    RuntimeUnavailableError,
    ServerInfo,
    SessionClosedError,
    SessionInfo,
    SessionNotFoundError,
    StopReason,
    WhenFull,
)
from kakeya.generation import Generation
from kakeya.session import CallOptions, Session
from kakeya.v1 import runtime_pb2 as pb


class NoRpcStub:
    """Fails the test on any RPC attempt."""

    def __getattr__(self, name: str):
        raise AssertionError(f"unexpected RPC {name}")


class RecordingStub:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def CloseSession(self, request, **kwargs):
        self.calls.append(request.session_id)
        return pb.CloseSessionResponse()


def test_closed_session_raises_locally_without_rpc() -> None:
    stub = RecordingStub()
    session = Session(stub, "s1", CallOptions())
    session.close()
    session.close()  # idempotent, no second RPC
    assert stub.calls == ["s1"] and session.closed
    session._stub = NoRpcStub()
    for call in (lambda: session.append([1]), lambda: session.generate(4), session.info):
        with pytest.raises(SessionClosedError):
            call()
    with pytest.raises(SessionNotFoundError):
        session.info()


class FakeCall:
    """A server stream played back from a list; iterating resumes where it stopped."""

    def __init__(self, events: list[pb.GenerateEvent]) -> None:
        self._events = iter(events)
        self.cancelled = False

    def __iter__(self):
        return self

    def __next__(self) -> pb.GenerateEvent:
        return next(self._events)

    def done(self) -> bool:
        return False

    def cancel(self) -> bool:
        self.cancelled = True
        return True


class Stop:
    """The CancelGenerate call of a session: records the call, answers like the server."""

    def __init__(self, was_running: bool = True, error: Exception | None = None) -> None:
        self.was_running, self.error, self.calls = was_running, error, 0

    def __call__(self) -> pb.CancelGenerateResponse:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return pb.CancelGenerateResponse(was_running=self.was_running)


def stream(n: int, reason: int = pb.STOP_REASON_MAX_TOKENS) -> list[pb.GenerateEvent]:
    events = [pb.GenerateEvent(truncation=pb.TruncationEvent(dropped_tokens=5, cached_tokens=8))]
    events += [pb.GenerateEvent(token=pb.TokenEvent(token_id=10 + i, index=i)) for i in range(n)]
    done = pb.DoneEvent(
        stop_reason=reason, generated_tokens=n, prefill_tokens=9, prefill_s=0.1, total_s=0.3
    )
    return [*events, pb.GenerateEvent(done=done)]


def test_generation_exposes_results_after_the_loop() -> None:
    call, stop = FakeCall(stream(3, pb.STOP_REASON_EOS)), Stop()
    generation = Generation(call, stop)
    assert list(generation) == [10, 11, 12]
    assert generation.stop_reason is StopReason.EOS
    assert (generation.generated_tokens, generation.prefill_tokens) == (3, 9)
    assert (generation.prefill_s, generation.total_s, generation.truncated_tokens) == (0.1, 0.3, 5)
    assert not call.cancelled and stop.calls == 0


def test_breaking_out_early_stops_the_server_and_reads_its_done_event() -> None:
    """The server confirms the stop; tokens generated after the break are reported, not lost."""
    call, stop = FakeCall(stream(5, pb.STOP_REASON_CANCELLED)), Stop(was_running=True)
    generation = Generation(call, stop)
    for token_id in generation:
        if token_id == 11:
            break
    assert stop.calls == 1 and not call.cancelled
    assert generation.stop_reason is StopReason.CANCELLED
    assert generation.token_ids == [10, 11, 12, 13, 14] and generation.generated_tokens == 5


def test_a_server_without_cancel_generate_gets_the_call_cancelled() -> None:
    call = FakeCall(stream(5))
    generation = Generation(call, Stop(error=RuntimeUnavailableError("unimplemented")))
    for token_id in generation:
        if token_id == 11:
            break
    assert call.cancelled
    assert generation.stop_reason is StopReason.CANCELLED
    assert generation.token_ids == [10, 11] and generation.generated_tokens == 2


def test_a_session_stops_its_open_generation_before_the_next_call() -> None:
    class Stub:
        def __init__(self) -> None:
            self.calls: list[str] = []

        def Generate(self, request, **kwargs):
            self.calls.append("Generate")
            return FakeCall(stream(4, pb.STOP_REASON_CANCELLED))

        def CancelGenerate(self, request, **kwargs):
            self.calls.append("CancelGenerate")
            return pb.CancelGenerateResponse(was_running=True)

        def AppendTokens(self, request, **kwargs):
            self.calls.append("AppendTokens")
            return pb.AppendTokensResponse(history_tokens=9)

    stub = Stub()
    session = Session(stub, "s1", CallOptions())
    generation = session.generate(10)
    assert next(iter(generation)) == 10  # the caller keeps the iterator: nothing closes it
    assert session.append([1]) == 9
    assert stub.calls == ["Generate", "CancelGenerate", "AppendTokens"]
    assert generation.done and generation.generated_tokens == 4


@pytest.mark.parametrize(
    "value", [v for v in pb.StopReason.values() if v != pb.STOP_REASON_UNSPECIFIED]
)
def test_every_wire_stop_reason_has_its_own_sdk_value(value: int) -> None:
    generation = Generation(FakeCall(stream(1, value)), Stop())
    list(generation)
    assert generation.stop_reason.name == pb.StopReason.Name(value).removeprefix("STOP_REASON_")


def batched_stream(batches: list[list[int]]) -> list[pb.GenerateEvent]:
    events, index = [], 0
    for ids in batches:
        batch = pb.TokenBatchEvent(token_ids=ids, first_index=index)
        events.append(pb.GenerateEvent(tokens=batch))
        index += len(ids)
    done = pb.DoneEvent(stop_reason=pb.STOP_REASON_CANCELLED, generated_tokens=index)
    return [*events, pb.GenerateEvent(done=done)]


def test_token_batches_are_yielded_one_id_at_a_time() -> None:
    generation = Generation(FakeCall(batched_stream([[10], [11, 12, 13], [14, 15]])), Stop())
    assert list(generation) == [10, 11, 12, 13, 14, 15]
    assert generation.token_ids == [10, 11, 12, 13, 14, 15]


def test_leaving_inside_a_batch_keeps_the_rest_of_it() -> None:
    """The batch's other tokens are in the server's history: the generation counts them."""
    call, stop = FakeCall(batched_stream([[10], [11, 12, 13], [14]])), Stop(was_running=True)
    generation = Generation(call, stop)
    for token_id in generation:
        if token_id == 11:
            break
    assert stop.calls == 1
    assert generation.token_ids == [10, 11, 12, 13, 14] and generation.generated_tokens == 5


class RequestStub:
    """Records each Generate request; the stream it returns ends at once."""

    def __init__(self) -> None:
        self.requests: list[pb.GenerateRequest] = []

    def Generate(self, request: pb.GenerateRequest, **kwargs: object) -> FakeCall:
        self.requests.append(request)
        return FakeCall(batched_stream([]))


def test_generate_asks_for_token_batches_unless_told_not_to() -> None:
    stub = RequestStub()
    session = Session(stub, "s1", CallOptions())
    list(session.generate(4))
    list(session.generate(4, batch_tokens=False))
    assert [r.batch_tokens for r in stub.requests] == [True, False]


def info_message(**fields: object) -> pb.SessionInfo:
    return pb.SessionInfo(session_id="s1", label="l", history_tokens=3, **fields)


@pytest.mark.parametrize(
    "wire, expected",
    [
        (pb.WHEN_FULL_REJECT, WhenFull.REJECT),
        (pb.WHEN_FULL_EVICT_IDLE, WhenFull.EVICT_IDLE),
        (pb.WHEN_FULL_UNSPECIFIED, None),
        (99, None),  # a policy newer than this SDK
    ],
)
def test_session_info_exposes_the_server_section(wire: int, expected: WhenFull | None) -> None:
    info = SessionInfo.from_proto(
        info_message(server=pb.ServerInfo(max_sessions=7, when_full=wire))  # type: ignore[arg-type]
    )
    assert info.server == ServerInfo(max_sessions=7, when_full=expected)
    assert (info.session_id, info.history_tokens) == ("s1", 3)


def test_session_info_from_a_server_without_the_section_has_none() -> None:
    assert SessionInfo.from_proto(info_message()).server is None
