"""The deprecated OpenAI-style HTTP+SSE shim (FastAPI): single-shot chat completions.

Frozen: new work goes to gRPC (docs/protocol.md). Every request is one session -
create, prefill, generate, close - freed after the response, also when the client goes
away mid-stream. Every response carries `Deprecation`, `Sunset` and a `Link` to the
protocol doc; errors use the OpenAI envelope with the status from `server.errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inference_engine.errors import RuntimeFault, SessionNotFound
from inference_engine.server import streaming
from inference_engine.server.auth import authorized
from inference_engine.server.config import ServerConfig
from inference_engine.server.errors import error_envelope, http_status, openai_error
from inference_engine.server.tokenizer import IncrementalDecoder, message_text
from inference_engine.session.events import DoneEvent, Event, GenerationParams, TokenEvent
from kakeya.tokenization import encode_chat, resolve_eos_ids

DEPRECATION = "@1780272000"  # RFC 9745 date: 2026-06-01T00:00:00Z
SUNSET = "Mon, 01 Mar 2027 00:00:00 GMT"  # RFC 8594 HTTP-date
PROTOCOL_DOC_PATH = "/docs/protocol.md"
LINK = f'<{PROTOCOL_DOC_PATH}>; rel="deprecation"; type="text/markdown"'
DEPRECATION_HEADERS = {"Deprecation": DEPRECATION, "Sunset": SUNSET, "Link": LINK}
AUTH_EXEMPT_PATHS = frozenset({"/healthz"})
PROTOCOL_DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


class HttpError(Exception):
    """A request problem found by the shim itself (before the engine)."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(BaseModel):
    """The subset of OpenAI's request this shim serves; unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stream: bool = False
    n: int | None = None
    stop: str | list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    chat_template_kwargs: dict[str, Any] | None = None


# --- responses ----------------------------------------------------------------------------


def error_response(status: int, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def fault_response(fault: RuntimeFault) -> JSONResponse:
    return error_response(http_status(fault), openai_error(fault))


def http_error_response(err: HttpError) -> JSONResponse:
    kind = "invalid_request_error" if err.status < 500 else "server_error"
    return error_response(err.status, error_envelope(err.message, kind, err.code, err.param))


class DeprecationMiddleware:
    """Pure ASGI: adds the deprecation headers to every response and enforces auth."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self._token = token
        self._headers = [(k.lower().encode(), v.encode()) for k, v in DEPRECATION_HEADERS.items()]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self._headers]}
            await send(message)

        if scope["path"] not in AUTH_EXEMPT_PATHS and not authorized(
            _header(scope, b"authorization"), self._token
        ):
            body = error_envelope(
                "missing or invalid bearer token", "authentication_error", "UNAUTHENTICATED"
            )
            response = JSONResponse(body, 401, headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


# --- request parsing ----------------------------------------------------------------------


async def read_json(request: Request, limit_bytes: int) -> Any:
    """The request body as JSON, bounded in size.

    Raises:
        HttpError: wrong content type (415), body over the limit (413), malformed JSON (400).
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise HttpError(415, "content-type must be application/json", "unsupported_media_type")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit_bytes:
        raise HttpError(413, f"body over {limit_bytes} bytes", "request_too_large")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit_bytes:
            raise HttpError(413, f"body over {limit_bytes} bytes", "request_too_large")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise HttpError(400, f"malformed JSON: {exc}", "invalid_json") from exc


def parse_chat(body: Any) -> ChatCompletionRequest:
    """Validates the body against the request schema.

    Raises:
        HttpError: 422 naming the first offending field; 400 for unsupported options.
    """
    try:
        chat = ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise HttpError(422, f"{param}: {first['msg']}", "invalid_request", param) from exc
    unsupported = {"n": chat.n not in (None, 1), "stop": bool(chat.stop), "tools": bool(chat.tools)}
    for name, bad in unsupported.items():
        if bad:
            raise HttpError(
                400, f"{name}: not supported by this shim; use gRPC", "unsupported", name
            )
    return chat


def prompt_ids(tokenizer: Any, chat: ChatCompletionRequest) -> list[int]:
    """Renders the messages with the model's chat template into token ids."""
    messages = [{**m.model_dump(), "content": message_text(m.content)} for m in chat.messages]
    kwargs = chat.chat_template_kwargs or {}
    thinking = kwargs.get("enable_thinking")
    return encode_chat(
        tokenizer, messages, enable_thinking=None if thinking is None else bool(thinking)
    )


def generation_params(chat: ChatCompletionRequest, default_max_tokens: int) -> GenerationParams:
    """Request options to core parameters; bounds are the engine's to check."""
    max_tokens = chat.max_completion_tokens
    if max_tokens is None:
        max_tokens = chat.max_tokens if chat.max_tokens is not None else default_max_tokens
    return GenerationParams(
        max_tokens=max_tokens,
        temperature=0.0 if chat.temperature is None else chat.temperature,
        top_p=1.0 if chat.top_p is None else chat.top_p,
        seed=chat.seed,
    )


# --- one-shot sessions --------------------------------------------------------------------


class OneShot:
    """One request's session: opened with the prompt, always released (shielded)."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.session_id: str | None = None
        self.events: AsyncIterator[Event] | None = None

    async def open(self, ids: list[int], params: GenerationParams, eos: tuple[int, ...]) -> Event:
        """Creates, prefills and starts generating; returns the first event.

        Raises:
            RuntimeFault: any engine fault (the session is released first).
        """
        try:
            info = await asyncio.to_thread(self._engine.create_session, eos, "http")
            self.session_id = info.session_id
            await asyncio.to_thread(self._engine.append, self.session_id, ids)
            self.events = self._engine.agenerate(self.session_id, params)
            return await anext(self.events)
        except BaseException:
            await self.release()
            raise

    async def release(self) -> None:
        """Stops generation and frees the session; safe to call twice, immune to cancel."""
        with anyio.CancelScope(shield=True):
            events, self.events = self.events, None
            if events is not None:
                await events.aclose()  # type: ignore[attr-defined]
            session_id, self.session_id = self.session_id, None
            if session_id is not None:
                # Evicted or closed by shutdown means already free.
                with contextlib.suppress(SessionNotFound):
                    await asyncio.to_thread(self._engine.close, session_id)


class OneShotStream(StreamingResponse):
    """An SSE response that releases its session however the stream ends."""

    def __init__(self, content: AsyncIterator[bytes], oneshot: OneShot) -> None:
        super().__init__(
            content, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )
        self._oneshot = oneshot

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.body_iterator.aclose()  # type: ignore[attr-defined]
            await self._oneshot.release()


async def chain(first: Event, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
    yield first
    async for event in events:
        yield event


# --- the app ------------------------------------------------------------------------------


def create_app(engine: Any, config: ServerConfig) -> FastAPI:
    """The shim over `engine`; `config` supplies auth, body limit and default max_tokens."""
    app = FastAPI(
        title="Kakeya HTTP shim (deprecated)",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    eos_ids = resolve_eos_ids(engine.tokenizer)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        try:
            chat = parse_chat(await read_json(request, config.max_http_body_bytes))
            if chat.model != engine.model_id:
                raise HttpError(
                    404, f"model {chat.model!r} is not served", "model_not_found", "model"
                )
            ids = prompt_ids(engine.tokenizer, chat)
            params = generation_params(chat, config.http_default_max_tokens)
            oneshot = OneShot(engine)
            first = await oneshot.open(ids, params, eos_ids)
        except HttpError as err:
            return http_error_response(err)
        except RuntimeFault as fault:
            return fault_response(fault)
        meta = (f"chatcmpl-{secrets.token_hex(12)}", int(time.time()), engine.model_id)
        events = chain(first, oneshot.events)  # type: ignore[arg-type]
        if chat.stream:
            body = sse_body(events, engine.tokenizer, eos_ids, len(ids), meta)
            return OneShotStream(body, oneshot)
        try:
            return await complete(events, engine.tokenizer, eos_ids, len(ids), meta)
        finally:
            await oneshot.release()

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = {"id": engine.model_id, "object": "model", "created": 0, "owned_by": "kakeya"}
        return {"object": "list", "data": [card]}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "model": engine.model_id}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(engine.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(PROTOCOL_DOC_PATH)
    async def protocol_doc() -> Response:
        if not PROTOCOL_DOC.is_file():
            return error_response(
                404, error_envelope("doc not installed", "not_found_error", "NOT_FOUND")
            )
        return PlainTextResponse(
            PROTOCOL_DOC.read_text(encoding="utf-8"), media_type="text/markdown"
        )

    return DeprecationMiddleware(app, config.token)  # type: ignore[return-value]


async def complete(
    events: AsyncIterator[Event], tokenizer: Any, eos: tuple[int, ...], n_prompt: int, meta: tuple
) -> Response:
    """Collects a whole generation into one `chat.completion` response."""
    decoder = IncrementalDecoder(tokenizer, skip_ids=eos)
    done: DoneEvent | None = None
    async for event in events:
        if isinstance(event, TokenEvent):
            decoder.push(event.token_id)
        elif isinstance(event, DoneEvent):
            done = event
    if done is None or streaming.FINISH_REASON[done.stop_reason] is None:
        body = error_envelope(
            "generation cancelled: server shutting down", "server_error", "UNAVAILABLE"
        )
        return error_response(503, body)
    counts = streaming.usage(n_prompt, done.generated_tokens)
    finish = streaming.FINISH_REASON[done.stop_reason]
    return JSONResponse(streaming.completion(*meta, decoder.text(), finish, counts))


async def sse_body(
    events: AsyncIterator[Event], tokenizer: Any, eos: tuple[int, ...], n_prompt: int, meta: tuple
) -> AsyncIterator[bytes]:
    """Role chunk, content chunks, a final chunk with finish_reason and usage, `[DONE]`."""
    decoder = IncrementalDecoder(tokenizer, skip_ids=eos)
    yield streaming.sse_event(streaming.chunk(*meta, {"role": "assistant", "content": ""}))
    async for event in events:
        if isinstance(event, TokenEvent):
            text = decoder.push(event.token_id)
            if text:
                yield streaming.sse_event(streaming.chunk(*meta, {"content": text}))
        elif isinstance(event, DoneEvent):
            tail = decoder.flush()
            if tail:
                yield streaming.sse_event(streaming.chunk(*meta, {"content": tail}))
            finish = streaming.FINISH_REASON[event.stop_reason]
            if finish is None:
                message = "generation cancelled: server shutting down"
                yield streaming.sse_event(error_envelope(message, "server_error", "UNAVAILABLE"))
            else:
                counts = streaming.usage(n_prompt, event.generated_tokens)
                yield streaming.sse_event(streaming.chunk(*meta, {}, finish, counts))
    yield streaming.SSE_DONE
