"""SDK session and generation objects without a server: local errors, event bookkeeping."""

from __future__ import annotations

import pytest

from kakeya import RuntimeUnavailableError, SessionClosedError, SessionNotFoundError, StopReason
from kakeya.session import CallOptions, Generation, Session
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
