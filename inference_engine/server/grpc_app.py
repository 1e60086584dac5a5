"""The gRPC surface: `RuntimeService` as a thin adapter over the engine, plus health and
server reflection (grpcurl, Postman and Evans list and call the service without the .proto).

Every RuntimeService call passes one guard, in this order: the caps on calls in flight (in
all, and per peer connection: RESOURCE_EXHAUSTED at once, so that grpc-core's backlog never
decides and no call the client did not cancel ends CANCELLED), the bearer token (read from
the call's metadata before the request bytes are touched), decoding (bytes that are not
the method's message are INVALID_ARGUMENT), then one engine call. Engine calls are
coroutines of `EngineClient` that never block the event loop on a session. Faults become statuses
through `server.errors`; anything else is INTERNAL, logged once. Every refusal is counted
in `request_errors{surface="grpc"}` and none is logged per call, so noise cannot flood
the log. The adapter decodes requests itself (grpc gets no deserializer): a request grpc
cannot decode would otherwise answer UNKNOWN and print a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from inference_engine.config import StoreConfig, WhenFull
from inference_engine.errors import (
    InvalidArgument,
    ReaderStalled,
    ResourceExhausted,
    RuntimeFault,
    Unauthenticated,
)
from inference_engine.server.auth import AUTH_HEADER, authorized, metadata_value
from inference_engine.server.config import ServerConfig
from inference_engine.server.errors import grpc_status, internal_fault
from inference_engine.session.events import (
    DoneEvent,
    Event,
    GenerationParams,
    SessionInfo,
    StopReason,
    TokenEvent,
    TruncationEvent,
)
from kakeya.v1 import runtime_pb2 as pb

if TYPE_CHECKING:  # the adapter needs the protocol only; the engine module loads torch
    from inference_engine.engine import EngineClient
    from inference_engine.metrics import RuntimeMetrics

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RuntimeService"].full_name
HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
# What reflection lists; their files are in protobuf's default pool, which it reads, once
# the generated modules above are imported.
REFLECTED_SERVICES = (SERVICE_NAME, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME)
SURFACE = "grpc"
# Calls grpc-core may hold before the handler takes them, per call allowed in flight.
PENDING_PER_CAP = 16
# Requests above this size are decoded in the engine's work pool, off the event loop.
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
    return info.to_proto(server)


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

    def __init__(self, engine: EngineClient) -> None:
        self._engine = engine
        self._server = server_info(engine.config.store)

    async def create_session(self, request: pb.CreateSessionRequest) -> pb.CreateSessionResponse:
        eos, label = tuple(request.eos_token_ids), request.label
        info = await self._engine.acreate_session(eos, label)
        return pb.CreateSessionResponse(session=info_to_proto(info, self._server))

    async def append_tokens(self, request: pb.AppendTokensRequest) -> pb.AppendTokensResponse:
        # The repeated field itself, not a copy: validation refuses an oversized one by length.
        history = await self._engine.aappend(request.session_id, request.token_ids)
        return pb.AppendTokensResponse(history_tokens=history)

    async def get_session_info(self, request: pb.GetSessionInfoRequest) -> pb.SessionInfo:
        info = await self._engine.ainfo(request.session_id)
        return info_to_proto(info, self._server)

    async def close_session(self, request: pb.CloseSessionRequest) -> pb.CloseSessionResponse:
        await self._engine.aclose(request.session_id)
        return pb.CloseSessionResponse()

    async def cancel_generate(self, request: pb.CancelGenerateRequest) -> pb.CancelGenerateResponse:
        was_running = await self._engine.acancel_generate(request.session_id)
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


class CallCaps:
    """RuntimeService calls in flight, in all and per peer connection; over a cap a call is
    refused at once (RESOURCE_EXHAUSTED) instead of queueing in grpc-core."""

    def __init__(self, max_calls: int, max_per_peer: int) -> None:
        self._max_calls = max_calls
        self._max_per_peer = max_per_peer
        self._calls = 0
        self._per_peer: Counter[str] = Counter()

    @contextlib.contextmanager
    def hold(self, peer: str) -> Iterator[None]:
        """One call's place for as long as it runs.

        Raises:
            ResourceExhausted: a cap is reached (the message names it).
        """
        if self._calls >= self._max_calls:
            raise ResourceExhausted(
                f"server busy: {self._max_calls} calls in flight (max_concurrent_rpcs)"
            )
        if self._per_peer[peer] >= self._max_per_peer:
            raise ResourceExhausted(
                f"{self._max_per_peer} calls in flight on this connection "
                "(max_concurrent_rpcs_per_peer)"
            )
        self._calls += 1
        self._per_peer[peer] += 1
        try:
            yield
        finally:
            self._calls -= 1
            self._per_peer[peer] -= 1
            if not self._per_peer[peer]:
                del self._per_peer[peer]


class Guard:
    """Caps, auth, decoding and error mapping around each RuntimeService method."""

    def __init__(self, engine: EngineClient, config: ServerConfig) -> None:
        self._engine = engine
        self._token = config.token
        self._metrics: RuntimeMetrics = engine.metrics
        self._caps = CallCaps(config.max_concurrent_rpcs, config.max_concurrent_rpcs_per_peer)
        self._stall_s = engine.config.scheduler.max_unread_s

    def unary(self, name: str, request_type: type[Message], call: Unary) -> grpc.RpcMethodHandler:
        async def handle(raw: bytes, context: grpc.aio.ServicerContext) -> Message:
            try:
                with self._caps.hold(context.peer()):
                    request = await self._admit(raw, request_type, context)
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
        async def handle(raw: bytes, context: grpc.aio.ServicerContext) -> None:
            try:
                with self._caps.hold(context.peer()):
                    request = await self._admit(raw, request_type, context)
                    async with contextlib.aclosing(call(request)) as messages:
                        async for message in messages:
                            await self._write(context, message)
                return
            except RuntimeFault as fault:
                failure = fault
            except Exception as error:
                failure = internal_fault(error, f"{SERVICE_NAME}/{name}")
            await self._refuse(context, failure)

        return grpc.unary_stream_rpc_method_handler(handle, response_serializer=_serialize)

    async def _write(self, context: grpc.aio.ServicerContext, message: Message) -> None:
        """One stream message; a reader that takes none for `max_unread_s` ends the call
        (the generation is cancelled as the stream closes)."""
        try:
            await asyncio.wait_for(context.write(message), self._stall_s)
        except TimeoutError:
            raise ReaderStalled(self._stall_s) from None

    async def _admit(
        self, raw: bytes, request_type: type[Message], context: grpc.aio.ServicerContext
    ) -> Any:
        """The decoded request of an authorized caller.

        Raises:
            Unauthenticated, InvalidArgument: the call is refused.
        """
        header = metadata_value(context.invocation_metadata(), AUTH_HEADER)
        if not authorized(header, self._token):
            raise Unauthenticated("missing or invalid bearer token")
        try:
            if len(raw) <= INLINE_DECODE_BYTES:
                return request_type.FromString(raw)
            return await self._engine.run_blocking(request_type.FromString, raw)
        except DecodeError:
            name = request_type.DESCRIPTOR.name
            raise InvalidArgument("request", f"is not a valid {name}") from None

    async def _refuse(self, context: grpc.aio.ServicerContext, fault: RuntimeFault) -> NoReturn:
        self._metrics.count_error(SURFACE, fault.code)
        await context.abort(grpc_status(fault), fault.message)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def runtime_handler(engine: EngineClient, config: ServerConfig) -> grpc.GenericRpcHandler:
    """RuntimeService's methods behind the guard, as one generic handler."""
    service = RuntimeService(engine)
    guard = Guard(engine, config)
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


def build_grpc_server(engine: EngineClient, config: ServerConfig) -> tuple[grpc.aio.Server, int]:
    """A grpc.aio server with RuntimeService, health and (unless `config.reflection` is off)
    server reflection, bound per `config` (not started). Health and reflection answer
    without the bearer token: they carry no session data.

    Returns:
        The server and the bound port (the real one when `config.grpc_port` is 0).

    Raises:
        RuntimeError: the address could not be bound.
    """
    backlog = PENDING_PER_CAP * config.max_concurrent_rpcs
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", config.max_request_bytes),
            ("grpc.max_send_message_length", config.max_request_bytes),
            ("grpc.so_reuseport", 0),
            # grpc-core drops calls waiting to reach the handler (CANCELLED, at random) past
            # 1,000; ours are refused by `CallCaps`, so let the wait be far longer than that.
            ("grpc.server.max_pending_requests", backlog),
            ("grpc.server.max_pending_requests_hard_limit", backlog),
        ],
    )
    server.add_generic_rpc_handlers((runtime_handler(engine, config),))
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
