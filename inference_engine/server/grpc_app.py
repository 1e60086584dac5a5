"""The gRPC surface: `RuntimeService` as a thin adapter over the engine, plus health and
server reflection (grpcurl, Postman and Evans list and call the service without the .proto).

Every RuntimeService call passes one guard, in this order: the bearer token (read from
the call's metadata before the request bytes are touched), decoding (bytes that are not
the method's message are INVALID_ARGUMENT), then one engine call. Faults become statuses
through `server.errors`; anything else is INTERNAL, logged once. Every refusal is counted
in `request_errors{surface="grpc"}` and none is logged per call, so noise cannot flood
the log. The adapter decodes requests itself (grpc gets no deserializer): a request grpc
cannot decode would otherwise answer UNKNOWN and print a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from inference_engine.config import StoreConfig, WhenFull
from inference_engine.errors import InvalidArgument, RuntimeFault, Unauthenticated
from inference_engine.server.auth import AUTH_HEADER, Authenticator, metadata_value
from inference_engine.server.config import ServerConfig
from inference_engine.server.errors import grpc_status, grpc_trailers, internal_fault
from inference_engine.session.events import (
    DoneEvent,
    Event,
    GenerationParams,
    SessionInfo,
    StopReason,
    TokenEvent,
    TruncationEvent,
)
from inference_engine.tenancy import set_identity
from kakeya.v1 import runtime_pb2 as pb

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RuntimeService"].full_name
HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
# What reflection lists; their files are in protobuf's default pool, which it reads, once
# the generated modules above are imported.
REFLECTED_SERVICES = (SERVICE_NAME, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME)
SURFACE = "grpc"
# Requests above this size are decoded on a worker thread, off the event loop.
INLINE_DECODE_BYTES = 64 * 1024

STOP_REASON_TO_PROTO: dict[StopReason, pb.StopReason.ValueType] = {
    StopReason.MAX_TOKENS: pb.STOP_REASON_MAX_TOKENS,
    StopReason.EOS: pb.STOP_REASON_EOS,
    StopReason.CANCELLED: pb.STOP_REASON_CANCELLED,
    StopReason.SHUTDOWN: pb.STOP_REASON_SHUTDOWN,
}
WHEN_FULL_TO_PROTO: dict[WhenFull, pb.WhenFull.ValueType] = {
    WhenFull.REJECT: pb.WHEN_FULL_REJECT,
    WhenFull.EVICT_IDLE: pb.WHEN_FULL_EVICT_IDLE,
}


# --- core values to and from messages ----------------------------------------------------


def event_to_proto(event: Event) -> pb.GenerateEvent:
    """One core event as a `GenerateEvent` message."""
    if isinstance(event, TokenEvent):
        return pb.GenerateEvent(token=pb.TokenEvent(token_id=event.token_id, index=event.index))
    if isinstance(event, TruncationEvent):
        return pb.GenerateEvent(
            truncation=pb.TruncationEvent(
                dropped_tokens=event.dropped_tokens, cached_tokens=event.cached_tokens
            )
        )
    if isinstance(event, DoneEvent):
        return pb.GenerateEvent(done=done_to_proto(event))
    raise TypeError(f"unknown event type {type(event).__name__}")


def batch_to_protos(events: list[Event]) -> list[pb.GenerateEvent]:
    """Events that were ready together as messages: each run of consecutive tokens becomes
    one `TokenBatchEvent`; truncation and done events stay messages of their own."""
    messages: list[pb.GenerateEvent] = []
    run: list[TokenEvent] = []
    for event in [*events, None]:
        if isinstance(event, TokenEvent):
            run.append(event)
            continue
        if run:
            ids = [token.token_id for token in run]
            batch = pb.TokenBatchEvent(token_ids=ids, first_index=run[0].index)
            messages.append(pb.GenerateEvent(tokens=batch))
            run = []
        if event is not None:
            messages.append(event_to_proto(event))
    return messages


def done_to_proto(event: DoneEvent) -> pb.DoneEvent:
    return pb.DoneEvent(
        stop_reason=STOP_REASON_TO_PROTO[event.stop_reason],
        generated_tokens=event.generated_tokens,
        prefill_tokens=event.prefill_tokens,
        prefill_s=event.prefill_s,
        total_s=event.total_s,
        history_tokens=event.history_tokens,
    )


def server_info(store: StoreConfig) -> pb.ServerInfo:
    """The server section of every `SessionInfo`: the store's size and full policy."""
    return pb.ServerInfo(
        max_sessions=store.max_sessions, when_full=WHEN_FULL_TO_PROTO[store.when_full]
    )


def info_to_proto(info: SessionInfo, server: pb.ServerInfo | None = None) -> pb.SessionInfo:
    """A session snapshot as a `SessionInfo` message (same field names)."""
    return pb.SessionInfo(
        session_id=info.session_id,
        label=info.label,
        eos_token_ids=list(info.eos_token_ids),
        history_tokens=info.history_tokens,
        cached_tokens=info.cached_tokens,
        dropped_tokens=info.dropped_tokens,
        kv_live_bytes=info.kv_live_bytes,
        kv_bound_bytes=info.kv_bound_bytes,
        idle_s=info.idle_s,
        invariant_checks=info.invariant_checks,
        generating=info.generating,
        server=server,
    )


def params_from_proto(request: pb.GenerateRequest) -> GenerationParams:
    """Generation parameters from a request; unset optional fields take the core's defaults.

    No bounds are checked here: the engine validates every field before model work.
    """
    return GenerationParams(
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p if request.HasField("top_p") else 1.0,
        top_k=request.top_k,
        seed=request.seed if request.HasField("seed") else None,
    )


# --- the service --------------------------------------------------------------------------


class RuntimeService:
    """`kakeya.v1.RuntimeService` over an `Engine`: one engine call per RPC."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._server = server_info(engine.config.store)

    async def create_session(self, request: pb.CreateSessionRequest) -> pb.CreateSessionResponse:
        eos, label = tuple(request.eos_token_ids), request.label
        info = await asyncio.to_thread(self._engine.create_session, eos, label)
        return pb.CreateSessionResponse(session=info_to_proto(info, self._server))

    async def append_tokens(self, request: pb.AppendTokensRequest) -> pb.AppendTokensResponse:
        # The repeated field itself, not a copy: validation refuses an oversized one by length.
        history = await asyncio.to_thread(
            self._engine.append, request.session_id, request.token_ids
        )
        return pb.AppendTokensResponse(history_tokens=history)

    async def get_session_info(self, request: pb.GetSessionInfoRequest) -> pb.SessionInfo:
        info = await asyncio.to_thread(self._engine.info, request.session_id)
        return info_to_proto(info, self._server)

    async def close_session(self, request: pb.CloseSessionRequest) -> pb.CloseSessionResponse:
        await asyncio.to_thread(self._engine.close, request.session_id)
        return pb.CloseSessionResponse()

    async def cancel_generate(self, request: pb.CancelGenerateRequest) -> pb.CancelGenerateResponse:
        was_running = await asyncio.to_thread(self._engine.cancel_generate, request.session_id)
        return pb.CancelGenerateResponse(was_running=was_running)

    async def generate(self, request: pb.GenerateRequest) -> AsyncGenerator[pb.GenerateEvent]:
        """Streams the engine's events: one message per event, or (`batch_tokens`) the
        tokens that are ready together in one message. A client cancel cancels this task,
        and closing the engine's stream (aclosing) stops the model work and frees the slot."""
        params = params_from_proto(request)
        if not request.batch_tokens:
            events = self._engine.agenerate(request.session_id, params)
            async with contextlib.aclosing(events):
                async for event in events:
                    yield event_to_proto(event)
            return
        batches = self._engine.agenerate_batches(request.session_id, params)
        async with contextlib.aclosing(batches):
            async for batch in batches:
                for message in batch_to_protos(batch):
                    yield message


# --- the guard every call passes ----------------------------------------------------------

Unary = Callable[[Any], Awaitable[Message]]
Streaming = Callable[[Any], AsyncGenerator[Message]]


class Guard:
    """Auth, decoding and error mapping around each RuntimeService method."""

    def __init__(self, auth: Authenticator, metrics: Any) -> None:
        self._auth = auth
        self._metrics = metrics

    def unary(self, name: str, request_type: type[Message], call: Unary) -> grpc.RpcMethodHandler:
        async def handle(raw: bytes, context: grpc.aio.ServicerContext) -> Message:
            request = await self._admit(raw, request_type, context)
            try:
                return await call(request)
            except RuntimeFault as fault:
                failure = fault
            except Exception as error:
                failure = internal_fault(error, f"{SERVICE_NAME}/{name}")
            await self._refuse(context, failure)

        return grpc.unary_unary_rpc_method_handler(handle, response_serializer=_serialize)

    def stream(
        self, name: str, request_type: type[Message], call: Streaming
    ) -> grpc.RpcMethodHandler:
        async def handle(raw: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[Message]:
            request = await self._admit(raw, request_type, context)
            try:
                async with contextlib.aclosing(call(request)) as messages:
                    async for message in messages:
                        yield message
                return
            except RuntimeFault as fault:
                failure = fault
            except Exception as error:
                failure = internal_fault(error, f"{SERVICE_NAME}/{name}")
            await self._refuse(context, failure)

        return grpc.unary_stream_rpc_method_handler(handle, response_serializer=_serialize)

    async def _admit(
        self, raw: bytes, request_type: type[Message], context: grpc.aio.ServicerContext
    ) -> Any:
        """The decoded request of an authorized caller, whose identity is set for the rest
        of the call (`tenancy`); aborts the call otherwise."""
        header = metadata_value(context.invocation_metadata(), AUTH_HEADER)
        identity = self._auth.identify(header, context.peer())
        if identity is None:
            await self._refuse(context, Unauthenticated("missing or invalid bearer token"))
        set_identity(identity)
        try:
            if len(raw) <= INLINE_DECODE_BYTES:
                return request_type.FromString(raw)
            return await asyncio.to_thread(request_type.FromString, raw)
        except DecodeError:
            name = request_type.DESCRIPTOR.name
            await self._refuse(context, InvalidArgument("request", f"is not a valid {name}"))

    async def _refuse(self, context: grpc.aio.ServicerContext, fault: RuntimeFault) -> NoReturn:
        self._metrics.count_error(SURFACE, fault.code)
        await context.abort(grpc_status(fault), fault.message, grpc_trailers(fault))


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def runtime_handler(engine: Any, auth: Authenticator) -> grpc.GenericRpcHandler:
    """RuntimeService's methods behind the guard, as one generic handler."""
    service = RuntimeService(engine)
    guard = Guard(auth, engine.metrics)
    return grpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            "CreateSession": guard.unary(
                "CreateSession", pb.CreateSessionRequest, service.create_session
            ),
            "AppendTokens": guard.unary(
                "AppendTokens", pb.AppendTokensRequest, service.append_tokens
            ),
            "Generate": guard.stream("Generate", pb.GenerateRequest, service.generate),
            "CancelGenerate": guard.unary(
                "CancelGenerate", pb.CancelGenerateRequest, service.cancel_generate
            ),
            "CloseSession": guard.unary(
                "CloseSession", pb.CloseSessionRequest, service.close_session
            ),
            "GetSessionInfo": guard.unary(
                "GetSessionInfo", pb.GetSessionInfoRequest, service.get_session_info
            ),
        },
    )


def build_grpc_server(engine: Any, config: ServerConfig) -> tuple[grpc.aio.Server, int]:
    """A grpc.aio server with RuntimeService, health and (unless `config.reflection` is off)
    server reflection, bound per `config` (not started). Health and reflection answer
    without the bearer token: they carry no session data.

    Returns:
        The server and the bound port (the real one when `config.grpc_port` is 0).

    Raises:
        RuntimeError: the address could not be bound.
    """
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", config.max_request_bytes),
            ("grpc.max_send_message_length", config.max_request_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    auth = Authenticator.of(config.token, config.tokens)
    server.add_generic_rpc_handlers((runtime_handler(engine, auth),))
    # grpc-stubs' health stub predates grpc_health.v1.health.aio (the asyncio servicer)
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if config.reflection:
        reflection.enable_server_reflection(REFLECTED_SERVICES, server)
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
