"""RuntimeService over a scripted engine on a real loopback server: conversion, statuses,
the guard (auth first, then decoding), bugs as INTERNAL, errors counted."""

from __future__ import annotations

import logging
import math

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from inference_engine import errors as core
from inference_engine.config import StoreConfig, WhenFull
from inference_engine.server import grpc_app
from inference_engine.server.config import ServerConfig
from inference_engine.server.errors import INTERNAL_MESSAGE
from inference_engine.server.serve import BackgroundServer
from inference_engine.session.events import (
    DoneEvent,
    GenerationParams,
    StopReason,
    TokenEvent,
    TruncationEvent,
)
from kakeya.v1 import runtime_pb2 as pb
from kakeya.v1 import runtime_pb2_grpc as pb_grpc

SERVICE = "/kakeya.v1.RuntimeService/"


def errors_counted(engine, code: str) -> float:
    value = engine.metrics.registry.get_sample_value(
        "request_errors_total", {"surface": "grpc", "code": code}
    )
    return value or 0.0


# -- conversion ----------------------------------------------------------------------------


def test_events_become_proto_messages() -> None:
    token = grpc_app.event_to_proto(TokenEvent(42, 3))
    assert token.WhichOneof("event") == "token" and token.token.token_id == 42
    assert token.token.index == 3
    trunc = grpc_app.event_to_proto(TruncationEvent(10, 64))
    assert (trunc.truncation.dropped_tokens, trunc.truncation.cached_tokens) == (10, 64)
    done = grpc_app.event_to_proto(DoneEvent(StopReason.EOS, 5, 7, 0.25, 0.5, 12)).done
    assert done.stop_reason == pb.STOP_REASON_EOS
    assert (done.generated_tokens, done.prefill_tokens, done.history_tokens) == (5, 7, 12)
    assert (done.prefill_s, done.total_s) == (0.25, 0.5)


def test_tokens_ready_together_become_one_batch_message() -> None:
    events = [
        TruncationEvent(10, 64),
        TokenEvent(5, 7),
        TokenEvent(6, 8),
        TokenEvent(9, 9),
        DoneEvent(StopReason.EOS, 10, 0, 0.0, 0.1, 80),
    ]
    messages = grpc_app.batch_to_protos(events)
    assert [m.WhichOneof("event") for m in messages] == ["truncation", "tokens", "done"]
    assert list(messages[1].tokens.token_ids) == [5, 6, 9]
    assert messages[1].tokens.first_index == 7
    only_tokens = grpc_app.batch_to_protos([TokenEvent(1, 0)])
    assert [m.WhichOneof("event") for m in only_tokens] == ["tokens"]
    assert list(only_tokens[0].tokens.token_ids) == [1]
    assert grpc_app.batch_to_protos([]) == []


@pytest.mark.parametrize("reason", list(StopReason))
def test_every_stop_reason_has_a_wire_value(reason: StopReason) -> None:
    assert grpc_app.STOP_REASON_TO_PROTO[reason] != pb.STOP_REASON_UNSPECIFIED


def test_params_defaults_for_unset_optionals() -> None:
    params = grpc_app.params_from_proto(pb.GenerateRequest(session_id="s", max_tokens=4))
    assert params == GenerationParams(max_tokens=4, temperature=0.0, top_p=1.0, top_k=0, seed=None)
    request = pb.GenerateRequest(session_id="s", max_tokens=4, top_p=0.5, seed=0, temperature=0.7)
    params = grpc_app.params_from_proto(request)
    assert (params.top_p, params.seed, params.temperature) == (0.5, 0, 0.7)


def test_params_pass_bad_values_through_for_the_engine_to_reject() -> None:
    request = pb.GenerateRequest(session_id="s", max_tokens=-1, temperature=math.nan)
    params = grpc_app.params_from_proto(request)
    assert params.max_tokens == -1 and math.isnan(params.temperature)


@pytest.mark.parametrize("policy", list(WhenFull))
def test_the_server_section_carries_the_store_policy(policy: WhenFull) -> None:
    server = grpc_app.server_info(StoreConfig(max_sessions=7, when_full=policy))
    assert server.max_sessions == 7
    assert server.when_full == grpc_app.WHEN_FULL_TO_PROTO[policy] != pb.WHEN_FULL_UNSPECIFIED


# -- on a real server --------------------------------------------------------------------


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
        assert created.session.server.when_full == pb.WHEN_FULL_REJECT
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


def test_batch_tokens_is_opt_in(serve, scripted_engine) -> None:
    """A request with batch_tokens gets token batches; one without it (what clients before
    the field send) gets one TokenEvent per token, never a message kind it does not know."""
    stub, channel = serve()
    tokens = scripted_engine.tokens
    with channel:
        sid = stub.CreateSession(pb.CreateSessionRequest()).session.session_id
        request = pb.GenerateRequest(session_id=sid, max_tokens=len(tokens), batch_tokens=True)
        batched = list(stub.Generate(request))
        plain = list(stub.Generate(pb.GenerateRequest(session_id=sid, max_tokens=len(tokens))))
    kinds = [m.WhichOneof("event") for m in batched]
    assert kinds == ["tokens"] * -(-len(tokens) // 3) + ["done"]
    assert [t for m in batched[:-1] for t in m.tokens.token_ids] == tokens
    assert [m.tokens.first_index for m in batched[:-1]] == list(range(0, len(tokens), 3))
    assert [m.WhichOneof("event") for m in plain] == ["token"] * len(tokens) + ["done"]
    assert [m.token.token_id for m in plain[:-1]] == tokens
    assert batched[-1].done == plain[-1].done


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
            for batch_tokens in (False, True):
                request = pb.GenerateRequest(
                    session_id=sid, max_tokens=1, batch_tokens=batch_tokens
                )
                with pytest.raises(grpc.RpcError) as info:
                    list(stub.Generate(request))
                assert (info.value.code(), info.value.details()) == (code, fault.message)
            assert errors_counted(scripted_engine, fault.code.value) == 2


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


def test_auth_is_checked_before_the_request_is_decoded(serve, scripted_engine, caplog) -> None:
    caplog.set_level(logging.DEBUG)
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
        garbage = channel.unary_unary(SERVICE + "AppendTokens")
        with pytest.raises(grpc.RpcError) as info:
            garbage(b"\xff" * 64)  # undecodable, but the missing token decides first
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        good = (("authorization", "Bearer tok-abc"),)
        assert stub.CreateSession(pb.CreateSessionRequest(), metadata=good).session.session_id
    assert errors_counted(scripted_engine, "UNAUTHENTICATED") == 7
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO] == []


@pytest.mark.parametrize("method", ["CreateSession", "AppendTokens", "GetSessionInfo"])
def test_undecodable_requests_are_invalid_argument(serve, scripted_engine, method, capfd) -> None:
    stub, channel = serve()
    with channel:
        call = channel.unary_unary(SERVICE + method)
        with pytest.raises(grpc.RpcError) as info:
            call(b"\xff" * 64)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        stream = channel.unary_stream(SERVICE + "Generate")
        with pytest.raises(grpc.RpcError) as info:
            list(stream(b"\x0a\xff\xff\xff\x0f"))  # a string field longer than the message
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert stub.CreateSession(pb.CreateSessionRequest()).session.session_id  # still serving
    assert errors_counted(scripted_engine, "INVALID_ARGUMENT") == 2
    assert "Traceback" not in capfd.readouterr().err


def test_a_bug_is_internal_with_a_short_message_logged_once(serve, scripted_engine, caplog):
    caplog.set_level(logging.DEBUG)
    stub, channel = serve()
    secret = "client text that must stay out of logs"
    scripted_engine.bug = KeyError(secret)
    with channel:
        sid = stub.CreateSession(pb.CreateSessionRequest()).session.session_id
        with pytest.raises(grpc.RpcError) as info:
            stub.GetSessionInfo(pb.GetSessionInfoRequest(session_id=sid))
        assert (info.value.code(), info.value.details()) == (
            grpc.StatusCode.INTERNAL,
            INTERNAL_MESSAGE,
        )
        with pytest.raises(grpc.RpcError) as info:
            list(stub.Generate(pb.GenerateRequest(session_id=sid, max_tokens=1)))
        assert info.value.code() == grpc.StatusCode.INTERNAL
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged) == 2 and all("KeyError" in r.getMessage() for r in logged)
    assert secret not in caplog.text
    assert errors_counted(scripted_engine, "INTERNAL") == 2


def test_request_size_limit(serve) -> None:
    stub, channel = serve(max_request_bytes=1024)
    with channel:
        with pytest.raises(grpc.RpcError) as info:
            stub.AppendTokens(pb.AppendTokensRequest(session_id="x", token_ids=[7] * 2000))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert stub.CreateSession(pb.CreateSessionRequest()).session.session_id  # still serving


def test_call_caps_refuse_at_once_in_all_and_per_peer() -> None:
    """Past either cap a call is RESOURCE_EXHAUSTED naming it; a finished call frees its place."""
    from inference_engine.errors import ResourceExhausted

    caps = grpc_app.CallCaps(max_calls=3, max_per_peer=2)
    per_peer = pytest.raises(ResourceExhausted, match="max_concurrent_rpcs_per_peer")
    in_all = pytest.raises(ResourceExhausted, match=r"3 calls in flight \(max_concurrent_rpcs\)")
    with caps.hold("ipv4:1"), caps.hold("ipv4:1"):
        with per_peer, caps.hold("ipv4:1"):
            pass
        with caps.hold("ipv4:2"), in_all, caps.hold("ipv4:3"):
            pass
    with caps.hold("ipv4:1"), caps.hold("ipv4:1"), caps.hold("ipv4:2"):
        pass  # every place was given back


def test_session_info_is_one_value_from_core_to_wire_to_sdk() -> None:
    """The core's snapshot is the SDK's value: to the wire and back, plus the server section."""
    from dataclasses import replace

    import kakeya
    from inference_engine.session.events import SessionInfo

    info = SessionInfo("sess_x", "lbl", (1, 2), 9, 8, 1, 4096, 8192, 1.5, 3, True)
    server = grpc_app.server_info(StoreConfig(max_sessions=7, when_full=WhenFull.EVICT_IDLE))
    back = kakeya.SessionInfo.from_proto(grpc_app.info_to_proto(info, server))
    assert SessionInfo is kakeya.SessionInfo
    assert back == replace(info, server=kakeya.ServerInfo(7, kakeya.WhenFull.EVICT_IDLE))
