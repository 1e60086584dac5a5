"""The gRPC surface: `RuntimeService` as a thin adapter over the engine, plus health.

Every handler translates one request into one engine call and the engine's events or
faults back into messages or statuses (through `server.errors`); nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from inference_engine.errors import RuntimeFault
from inference_engine.proto_gen.kakeya.v1 import runtime_pb2 as pb
from inference_engine.proto_gen.kakeya.v1 import runtime_pb2_grpc as pb_grpc
from inference_engine.server.auth import BearerAuthInterceptor
from inference_engine.server.config import ServerConfig
from inference_engine.server.errors import grpc_status
from inference_engine.server.streaming import event_to_proto, info_to_proto, params_from_proto

log = logging.getLogger(__name__)
SERVICE_NAME = "kakeya.v1.RuntimeService"
T = TypeVar("T")


async def _call(context: grpc.aio.ServicerContext, fn: Callable[..., T], *args: Any) -> T:
    """Runs one blocking engine call off the loop; a fault aborts with its mapped status."""
    try:
        return await asyncio.to_thread(fn, *args)
    except RuntimeFault as fault:
        await context.abort(grpc_status(fault), fault.message)
        raise  # unreachable: abort raises


class RuntimeServicer(pb_grpc.RuntimeServiceServicer):
    """`kakeya.v1.RuntimeService` over an `Engine`."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    async def CreateSession(
        self, request: pb.CreateSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateSessionResponse:
        info = await _call(context, self._create, tuple(request.eos_token_ids), request.label)
        return pb.CreateSessionResponse(session=info_to_proto(info))

    def _create(self, eos_token_ids: tuple[int, ...], label: str) -> Any:
        return self._engine.create_session(eos_token_ids=eos_token_ids, label=label)

    async def AppendTokens(
        self, request: pb.AppendTokensRequest, context: grpc.aio.ServicerContext
    ) -> pb.AppendTokensResponse:
        history = await _call(
            context, self._engine.append, request.session_id, list(request.token_ids)
        )
        return pb.AppendTokensResponse(history_tokens=history)

    async def GetSessionInfo(
        self, request: pb.GetSessionInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.SessionInfo:
        info = await _call(context, self._engine.info, request.session_id)
        return info_to_proto(info)

    async def CloseSession(
        self, request: pb.CloseSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.CloseSessionResponse:
        await _call(context, self._engine.close, request.session_id)
        return pb.CloseSessionResponse()

    async def Generate(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GenerateEvent]:
        """Streams the engine's events. A client cancel cancels this task, and closing the
        engine's stream (aclosing) stops the model work and frees the slot."""
        events = self._engine.agenerate(request.session_id, params_from_proto(request))
        async with contextlib.aclosing(events):
            try:
                async for event in events:
                    yield event_to_proto(event)
            except RuntimeFault as fault:
                await context.abort(grpc_status(fault), fault.message)


def build_grpc_server(engine: Any, config: ServerConfig) -> tuple[grpc.aio.Server, int]:
    """A grpc.aio server with RuntimeService and health, bound per `config` (not started).

    Returns:
        The server and the bound port (the real one when `config.grpc_port` is 0).

    Raises:
        RuntimeError: the address could not be bound.
    """
    interceptors = [BearerAuthInterceptor(config.token)] if config.token else []
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", config.max_request_bytes),
            ("grpc.max_send_message_length", config.max_request_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    pb_grpc.add_RuntimeServiceServicer_to_server(RuntimeServicer(engine), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(f"{config.host}:{config.grpc_port}")
    if port == 0:
        raise RuntimeError(f"could not bind gRPC to {config.host}:{config.grpc_port}")
    server.health_servicer = health_servicer  # type: ignore[attr-defined]
    return server, port


async def set_serving(server: grpc.aio.Server, serving: bool) -> None:
    """Marks the overall and RuntimeService health status."""
    servicer = server.health_servicer  # type: ignore[attr-defined]
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for name in ("", SERVICE_NAME):
        await servicer.set(name, status)
