"""RuntimeService over a scripted engine on a real loopback server: statuses, events, auth."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from inference_engine import errors as core
from inference_engine.proto_gen.kakeya.v1 import runtime_pb2 as pb
from inference_engine.proto_gen.kakeya.v1 import runtime_pb2_grpc as pb_grpc
from inference_engine.server.config import ServerConfig
from inference_engine.server.serve import BackgroundServer


@pytest.fixture
def serve(scripted_engine):
    servers: list[BackgroundServer] = []

    def start(**config) -> tuple[pb_grpc.RuntimeServiceStub, grpc.Channel]:
        server = BackgroundServer(
            scripted_engine, ServerConfig(grpc_port=0, http_port=-1, **config)
        )
        servers.append(server.start())
        channel = grpc.insecure_channel(server.grpc_address)
        return pb_grpc.RuntimeServiceStub(channel), channel

    yield start
    for server in servers:
        server.stop()


def test_session_round_trip(serve, scripted_engine) -> None:
    stub, channel = serve()
    with channel:
        created = stub.CreateSession(pb.CreateSessionRequest(eos_token_ids=[3], label="t"))
        sid = created.session.session_id
        assert created.session.label == "t" and list(created.session.eos_token_ids) == [3]
        append = stub.AppendTokens(pb.AppendTokensRequest(session_id=sid, token_ids=[1, 2, 3]))
        assert append.history_tokens == 3
        events = list(stub.Generate(pb.GenerateRequest(session_id=sid, max_tokens=4)))
        kinds = [e.WhichOneof("event") for e in events]
        assert kinds == ["token"] * 4 + ["done"]
        assert [e.token.token_id for e in events[:4]] == scripted_engine.tokens[:4]
        assert events[-1].done.generated_tokens == 4
        assert stub.GetSessionInfo(pb.GetSessionInfoRequest(session_id=sid)).history_tokens == 3
        stub.CloseSession(pb.CloseSessionRequest(session_id=sid))
        with pytest.raises(grpc.RpcError) as info:
            stub.CloseSession(pb.CloseSessionRequest(session_id=sid))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


FAULTS = [
    (core.InvalidArgument("max_tokens", "must be >= 1"), grpc.StatusCode.INVALID_ARGUMENT),
    (core.SessionNotFound("gone"), grpc.StatusCode.NOT_FOUND),
    (core.ResourceExhausted("queue full"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (core.FailedPrecondition("busy"), grpc.StatusCode.FAILED_PRECONDITION),
    (core.Unauthenticated("no"), grpc.StatusCode.UNAUTHENTICATED),
    (core.DeadlineExceeded("late"), grpc.StatusCode.DEADLINE_EXCEEDED),
    (core.Unavailable("shutting down"), grpc.StatusCode.UNAVAILABLE),
]


def test_faults_map_to_statuses_on_the_stream(serve, scripted_engine) -> None:
    stub, channel = serve()
    with channel:
        sid = stub.CreateSession(pb.CreateSessionRequest()).session.session_id
        for fault, code in FAULTS:
            scripted_engine.fault = fault
            with pytest.raises(grpc.RpcError) as info:
                list(stub.Generate(pb.GenerateRequest(session_id=sid, max_tokens=1)))
            assert (info.value.code(), info.value.details()) == (code, fault.message)


def test_unknown_session_on_unary_calls_is_not_found(serve) -> None:
    stub, channel = serve()
    with channel:
        calls = [
            lambda: stub.AppendTokens(pb.AppendTokensRequest(session_id="nope", token_ids=[1])),
            lambda: stub.GetSessionInfo(pb.GetSessionInfoRequest(session_id="nope")),
            lambda: stub.CloseSession(pb.CloseSessionRequest(session_id="nope")),
        ]
        for call in calls:
            with pytest.raises(grpc.RpcError) as info:
                call()
            assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_auth_interceptor(serve) -> None:
    stub, channel = serve(token="tok-abc")
    with channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING  # exempt
        for metadata in ((), (("authorization", "Bearer nope"),), (("authorization", "tok-abc"),)):
            with pytest.raises(grpc.RpcError) as info:
                stub.CreateSession(pb.CreateSessionRequest(), metadata=metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "tok-abc" not in (info.value.details() or "")
            with pytest.raises(grpc.RpcError) as info:
                list(stub.Generate(pb.GenerateRequest(session_id="x"), metadata=metadata))
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        good = (("authorization", "Bearer tok-abc"),)
        assert stub.CreateSession(pb.CreateSessionRequest(), metadata=good).session.session_id


def test_request_size_limit(serve) -> None:
    stub, channel = serve(max_request_bytes=1024)
    with channel:
        with pytest.raises(grpc.RpcError) as info:
            stub.AppendTokens(pb.AppendTokensRequest(session_id="x", token_ids=[7] * 2000))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert stub.CreateSession(pb.CreateSessionRequest()).session.session_id  # still serving
