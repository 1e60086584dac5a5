"""SDK session and generation objects without a server: local errors, event bookkeeping."""

from __future__ import annotations

import pytest

from inference_engine.proto_gen.kakeya.v1 import runtime_pb2 as pb
from kakeya import SessionClosedError, SessionNotFoundError, StopReason
from kakeya.session import CallOptions, Generation, Session


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
    """A finished server stream: the events, then nothing."""

    def __init__(self, events: list[pb.GenerateEvent]) -> None:
        self.events = events
        self.cancelled = False

    def __iter__(self):
        return iter(self.events)

    def cancel(self) -> bool:
        self.cancelled = True
        return True


def stream(n: int, reason: int = pb.STOP_REASON_MAX_TOKENS) -> list[pb.GenerateEvent]:
    events = [pb.GenerateEvent(truncation=pb.TruncationEvent(dropped_tokens=5, cached_tokens=8))]
    events += [pb.GenerateEvent(token=pb.TokenEvent(token_id=10 + i, index=i)) for i in range(n)]
    done = pb.DoneEvent(
        stop_reason=reason, generated_tokens=n, prefill_tokens=9, prefill_s=0.1, total_s=0.3
    )
    return [*events, pb.GenerateEvent(done=done)]


def test_generation_exposes_results_after_the_loop() -> None:
    call = FakeCall(stream(3, pb.STOP_REASON_EOS))
    generation = Generation(call)
    assert list(generation) == [10, 11, 12]
    assert generation.stop_reason is StopReason.EOS
    assert (generation.generated_tokens, generation.prefill_tokens) == (3, 9)
    assert (generation.prefill_s, generation.total_s, generation.truncated_tokens) == (0.1, 0.3, 5)
    assert not call.cancelled


def test_breaking_out_early_cancels_the_call() -> None:
    call = FakeCall(stream(5))
    generation = Generation(call)
    for token_id in generation:
        if token_id == 11:
            break
    assert call.cancelled
    assert generation.stop_reason is StopReason.CANCELLED
    assert generation.token_ids == [10, 11]


@pytest.mark.parametrize(
    "value", [v for v in pb.StopReason.values() if v != pb.STOP_REASON_UNSPECIFIED]
)
def test_every_wire_stop_reason_has_its_own_sdk_value(value: int) -> None:
    generation = Generation(FakeCall(stream(1, value)))
    list(generation)
    assert generation.stop_reason.name == pb.StopReason.Name(value).removeprefix("STOP_REASON_")
