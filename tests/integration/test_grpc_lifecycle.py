"""gRPC stream lifecycle on the real server: vanishing clients, shutdown with streams in flight."""

from __future__ import annotations

import threading

import grpc

import kakeya
from kakeya.v1 import runtime_pb2 as pb
from kakeya.v1 import runtime_pb2_grpc as pb_grpc

PROMPT = list(range(10, 40))


def active(server) -> float:
    return server.engine.metrics.registry.get_sample_value("session_active") or 0.0


def test_vanishing_client_frees_the_slot(serve_runtime) -> None:
    server = serve_runtime(max_concurrent=1, queue_timeout_s=20.0, http=False)
    channel = grpc.insecure_channel(server.grpc_address)
    stub = pb_grpc.RuntimeServiceStub(channel)
    sid = stub.CreateSession(pb.CreateSessionRequest()).session.session_id
    stub.AppendTokens(pb.AppendTokensRequest(session_id=sid, token_ids=PROMPT))
    stream = stub.Generate(pb.GenerateRequest(session_id=sid, max_tokens=4000))
    assert next(stream).WhichOneof("event") == "token"
    channel.close()  # the client vanishes without cancelling
    with kakeya.Client(server.grpc_address, timeout=60) as client:
        with client.create_session() as other:  # waits in the queue for the freed slot
            other.append(PROMPT)
            assert len(list(other.generate(3))) == 3
        assert not client.session(sid).info().generating


def test_server_stop_ends_streams_in_flight_with_a_clear_status(serve_runtime) -> None:
    server = serve_runtime(http=False)
    server._shutdown_engine = True  # as `serve` does on SIGTERM
    client = kakeya.Client(server.grpc_address, timeout=60)
    sessions = [client.create_session() for _ in range(2)]
    generations = []
    for session in sessions:
        session.append(PROMPT)
        generation = session.generate(4000)
        generations.append((generation, iter(generation)))
    for _, it in generations:
        next(it)  # both streams are running
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    outcomes = []
    for generation, it in generations:
        try:
            for _ in it:
                pass
            outcomes.append(generation.stop_reason)
        except kakeya.KakeyaError as error:
            outcomes.append(type(error))
    stopper.join(30)
    client.close()
    assert not stopper.is_alive()
    assert all(o in (kakeya.StopReason.SHUTDOWN, kakeya.RuntimeUnavailableError) for o in outcomes)
    assert all(g.generated_tokens < 4000 for g, _ in generations)
