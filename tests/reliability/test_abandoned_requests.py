"""Point 1: every abandoned request frees its slot within a decode step, on both surfaces.

Clients on bare sockets start long generations (4,000 tokens, many seconds on this model),
then vanish with a FIN or a reset, while running or while waiting for a slot. The slot
must come free at once: the generation ends CANCELLED (never MAX_TOKENS), nothing queued
for a gone client ever runs, and a well-behaved client gets the slot next.
"""

from __future__ import annotations

import pytest
from raw_wire import GrpcCall, hang_up, http_request
from reliability_support import metric, wait_until

import kakeya
from kakeya.v1 import runtime_pb2 as pb

pytestmark = pytest.mark.integration

PROMPT = list(range(10, 40))
LONG = 4000
URL = "/v1/chat/completions"
FREED_WITHIN_S = 10.0  # a 4,000-token run takes far longer; CANCELLED proves it was cut


def outcomes(engine) -> dict[str, float]:
    names = ("MAX_TOKENS", "EOS", "CANCELLED", "SHUTDOWN", "FAILED")
    return {n: metric(engine, "generate_total", stop_reason=n) for n in names}


def chat(engine, stream: bool) -> dict:
    messages = [{"role": "user", "content": "Tell me everything about caches."}]
    return {"model": engine.model_id, "messages": messages, "max_tokens": LONG, "stream": stream}


def assert_next_client_runs(server) -> None:
    with (
        kakeya.Client(server.grpc_address, timeout=60) as client,
        client.create_session() as session,
    ):
        session.append(PROMPT)
        assert len(list(session.generate(2))) == 2


@pytest.mark.parametrize("how", ["close", "reset"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_an_http_client_that_vanishes_mid_generation_frees_its_slot(
    serve_runtime, stream, how
) -> None:
    server = serve_runtime(max_concurrent=1)
    engine = server.engine
    sock = http_request(server.http_url, "POST", URL, chat(engine, stream))
    assert wait_until(lambda: engine.coordinator.scheduler.running == 1, 30)
    if stream:
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")  # streaming has begun
    hang_up(sock, how)
    assert wait_until(lambda: engine.coordinator.scheduler.running == 0, FREED_WITHIN_S)
    assert outcomes(engine)["CANCELLED"] == 1 and outcomes(engine)["MAX_TOKENS"] == 0
    assert wait_until(lambda: metric(engine, "session_active") == 0)
    assert_next_client_runs(server)


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_grpc_client_that_vanishes_mid_generation_frees_its_slot(serve_runtime, how) -> None:
    server = serve_runtime(max_concurrent=1, http=False)
    engine = server.engine
    with kakeya.Client(server.grpc_address, timeout=60) as client:
        session = client.create_session()
        session.append(PROMPT)
        request = pb.GenerateRequest(session_id=session.session_id, max_tokens=LONG)
        call = GrpcCall(
            server.grpc_address,
            "/kakeya.v1.RuntimeService/Generate",
            request.SerializeToString(),
        )
        event = pb.GenerateEvent.FromString(call.first_message())
        assert event.WhichOneof("event") == "token"
        hang_up(call.sock, how)
        assert wait_until(lambda: engine.coordinator.scheduler.running == 0, FREED_WITHIN_S)
        assert wait_until(lambda: not session.info().generating)
        assert outcomes(engine)["CANCELLED"] == 1 and outcomes(engine)["MAX_TOKENS"] == 0
        assert session.info().history_tokens < len(PROMPT) + LONG
        session.close()
    assert_next_client_runs(server)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_an_http_client_that_vanishes_while_queued_never_runs(serve_runtime, stream) -> None:
    server = serve_runtime(max_concurrent=1, max_queue=4)
    engine = server.engine
    scheduler = engine.coordinator.scheduler
    with kakeya.Client(server.grpc_address, timeout=60) as client:
        holder = client.create_session()
        holder.append(PROMPT)
        generation = holder.generate(LONG)
        tokens = iter(generation)
        next(tokens)  # holds the only slot
        sock = http_request(server.http_url, "POST", URL, chat(engine, stream))
        assert wait_until(lambda: scheduler.queued == 1, 30)
        hang_up(sock, "close")
        assert wait_until(lambda: scheduler.queued == 0, FREED_WITHIN_S)
        assert scheduler.running == 1  # the holder still runs: the queue emptied on its own
        generation.cancel()
        assert wait_until(lambda: scheduler.running == 0)
        holder.close()
    assert wait_until(lambda: metric(engine, "session_active") == 0)  # the one-shot's too
    assert sum(outcomes(engine).values()) == 1  # only the holder's generation ever ran


def test_a_grpc_client_that_vanishes_while_queued_never_runs(serve_runtime) -> None:
    server = serve_runtime(max_concurrent=1, max_queue=4, http=False)
    engine = server.engine
    scheduler = engine.coordinator.scheduler
    with kakeya.Client(server.grpc_address, timeout=60) as client:
        holder, waiter = client.create_session(), client.create_session()
        for session in (holder, waiter):
            session.append(PROMPT)
        generation = holder.generate(LONG)
        tokens = iter(generation)
        next(tokens)
        request = pb.GenerateRequest(session_id=waiter.session_id, max_tokens=LONG)
        method = "/kakeya.v1.RuntimeService/Generate"
        call = GrpcCall(server.grpc_address, method, request.SerializeToString())
        assert wait_until(lambda: scheduler.queued == 1, 30)
        hang_up(call.sock, "reset")
        assert wait_until(lambda: scheduler.queued == 0, FREED_WITHIN_S)
        assert wait_until(lambda: not waiter.info().generating)
        assert waiter.info().history_tokens == len(PROMPT)
        generation.cancel()
        assert wait_until(lambda: scheduler.running == 0)
    assert sum(outcomes(engine).values()) == 1
