"""gRPC server reflection, read with grpcio-reflection's own client (what grpcurl does).

The client knows no .proto: it lists the services, resolves RuntimeService's methods and
messages from the server, builds the message classes from what it got, and generates.
"""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from test_core_sessions import history

import kakeya

RUNTIME = "kakeya.v1.RuntimeService"
HEALTH = "grpc.health.v1.Health"
REFLECTION = "grpc.reflection.v1alpha.ServerReflection"


def reflected_pool(channel: grpc.Channel) -> tuple[list[str], descriptor_pool.DescriptorPool]:
    """The services the server lists, and a pool that resolves symbols from the server."""
    database = ProtoReflectionDescriptorDatabase(channel)
    return sorted(database.get_services()), descriptor_pool.DescriptorPool(database)


def method(pool: descriptor_pool.DescriptorPool, service: str, name: str):
    """A method's descriptor, fetched from the server through its service (upb's pool asks
    the reflection database for services and messages, not for bare method names)."""
    return pool.FindServiceByName(service).methods_by_name[name]


def call(channel: grpc.Channel, pool, name: str, **fields):
    """Calls `RuntimeService.<name>` with classes built from reflection alone."""
    descriptor = method(pool, RUNTIME, name)
    request = message_factory.GetMessageClass(descriptor.input_type)(**fields)
    response_type = message_factory.GetMessageClass(descriptor.output_type)
    path = f"/{RUNTIME}/{name}"
    kind = channel.unary_stream if descriptor.server_streaming else channel.unary_unary
    callable_ = kind(
        path, request_serializer=type(request).SerializeToString, response_deserializer=None
    )
    reply = callable_(request)
    if descriptor.server_streaming:
        return [response_type.FromString(raw) for raw in reply]
    return response_type.FromString(reply)


def test_reflection_lists_the_services_and_resolves_the_methods(runtime) -> None:
    with grpc.insecure_channel(runtime.grpc_address) as channel:
        services, pool = reflected_pool(channel)
        generate = method(pool, RUNTIME, "Generate")
        check = method(pool, HEALTH, "Check")
    assert services == sorted([RUNTIME, HEALTH, REFLECTION])
    methods = pool.FindServiceByName(RUNTIME).methods_by_name
    assert sorted(methods) == sorted(
        [
            "AppendTokens",
            "CancelGenerate",
            "CloseSession",
            "CreateSession",
            "Generate",
            "GetSessionInfo",
        ]
    )
    assert generate.server_streaming and not generate.client_streaming
    assert generate.input_type.full_name == "kakeya.v1.GenerateRequest"
    assert "batch_tokens" in generate.input_type.fields_by_name
    assert set(generate.output_type.oneofs_by_name["event"].fields) == {
        generate.output_type.fields_by_name[name]
        for name in ("token", "truncation", "done", "tokens")
    }
    assert check.output_type.full_name == "grpc.health.v1.HealthCheckResponse"


def test_a_client_with_nothing_but_reflection_generates(runtime) -> None:
    """As `grpcurl -d '...' ADDRESS kakeya.v1.RuntimeService/Generate` does."""
    prompt = history(21, 10, runtime.engine.vocab_size)
    with grpc.insecure_channel(runtime.grpc_address) as channel:
        _, pool = reflected_pool(channel)
        session = call(channel, pool, "CreateSession", label="reflected").session
        sid = session.session_id
        appended = call(channel, pool, "AppendTokens", session_id=sid, token_ids=prompt)
        events = call(channel, pool, "Generate", session_id=sid, max_tokens=5)
    with kakeya.Client(runtime.grpc_address, timeout=60) as client, client.create_session() as s:
        s.append(prompt)
        expected = list(s.generate(5))
    assert [e.WhichOneof("event") for e in events] == ["token"] * 5 + ["done"]
    assert [e.token.token_id for e in events[:5]] == expected
    assert session.label == "reflected" and appended.history_tokens == len(prompt)
    assert events[-1].done.history_tokens == len(prompt) + 5


def test_reflection_answers_without_the_token_the_runtime_still_needs_it(serve_runtime):
    server = serve_runtime(token="refl-token", http=False)
    with grpc.insecure_channel(server.grpc_address) as channel:
        services, pool = reflected_pool(channel)
        assert RUNTIME in services and method(pool, RUNTIME, "CreateSession")
        with pytest.raises(grpc.RpcError) as info:
            call(channel, pool, "CreateSession")
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_reflection_can_be_turned_off(make_engine) -> None:
    from inference_engine.server.config import ServerConfig
    from inference_engine.server.serve import BackgroundServer

    config = ServerConfig(grpc_port=0, http_port=-1, reflection=False)
    with (
        BackgroundServer(make_engine(), config) as server,
        grpc.insecure_channel(server.grpc_address) as channel,
    ):
        with pytest.raises(grpc.RpcError) as info:
            ProtoReflectionDescriptorDatabase(channel).get_services()
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        with kakeya.Client(server.grpc_address, timeout=60) as client:
            assert client.healthy()  # the rest serves as before


def test_hostile_reflection_requests_fail_alone(runtime) -> None:
    """Unknown symbols and files (a path among them) are not found; undecodable bytes fail
    that call only; the server serves on."""
    with grpc.insecure_channel(runtime.grpc_address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        for lookup, name in (
            (database.FindFileContainingSymbol, "no.such.Symbol"),
            (database.FindFileByName, "../../../etc/passwd"),
            (database.FindFileByName, "kakeya/v1/runtime.proto\x00"),
        ):
            with pytest.raises(KeyError):
                lookup(name)
        raw = channel.stream_stream(f"/{REFLECTION}/ServerReflectionInfo")
        with pytest.raises(grpc.RpcError):
            list(raw(iter([b"\xff" * 64])))
        assert database.FindFileByName("kakeya/v1/runtime.proto").package == "kakeya.v1"
    with kakeya.Client(runtime.grpc_address, timeout=60) as client:
        assert client.healthy()
