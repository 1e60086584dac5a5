"""The deprecated OpenAI-style HTTP+SSE shim (FastAPI): single-shot chat completions.

Frozen: new work goes to gRPC (docs/protocol.md). Every request is one session - create,
prefill, generate, close - created only after the request passed every check (off the
event loop, see `requests.prepare`), and freed after the response; also when the client
goes away at any point (queued, prefilling, generating, streaming): a watcher on the
connection cancels the work, which stops the generation within one decode step. Every
response carries `Deprecation`, `Sunset` and a `Link` to the protocol doc; every error
uses the OpenAI envelope with the status from `server.errors` and is counted in
`request_errors{surface="http"}`; a bug is answered 500 in the envelope and logged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from inference_engine.errors import ErrorCode, RuntimeFault, SessionNotFound, Unavailable, quote
from inference_engine.server.auth import authorized
from inference_engine.server.config import ServerConfig
from inference_engine.server.errors import (
    InternalFault,
    error_envelope,
    http_status,
    internal_fault,
    openai_error,
)
from inference_engine.server.http_shim import sse
from inference_engine.server.http_shim.detokenizer import IncrementalDecoder
from inference_engine.server.http_shim.requests import (
    HttpError,
    PromptLimits,
    prepare,
    read_body,
)
from inference_engine.session.events import (
    DoneEvent,
    Event,
    GenerationParams,
    StopReason,
    TokenEvent,
)
from kakeya.tokenization import resolve_eos_ids

if TYPE_CHECKING:  # the adapter needs the protocol only; the engine module loads torch
    from inference_engine.engine import EngineClient

DEPRECATION = "@1780272000"  # RFC 9745 date: 2026-06-01T00:00:00Z
SUNSET = "Mon, 01 Mar 2027 00:00:00 GMT"  # RFC 8594 HTTP-date
PROTOCOL_DOC_PATH = "/docs/protocol.md"
LINK = f'<{PROTOCOL_DOC_PATH}>; rel="deprecation"; type="text/markdown"'
DEPRECATION_HEADERS = {"Deprecation": DEPRECATION, "Sunset": SUNSET, "Link": LINK}
AUTH_EXEMPT_PATHS = frozenset({"/healthz"})
PROTOCOL_DOC = Path(__file__).resolve().parents[3] / "docs" / "protocol.md"
SURFACE = "http"
CLIENT_CLOSED_REQUEST = 499  # nobody reads it: the client is gone
YIELD_EVERY_TOKENS = 64
CompletionMeta = tuple[str, int, str]  # id, created, model: the same on every chunk
T = TypeVar("T")


class ClientGone(Exception):
    """The client closed its connection before its answer was ready."""


async def until_disconnect(
    receive: Callable[[], Awaitable[MutableMapping[str, Any]]], work: Awaitable[T]
) -> T:
    """Runs `work` to its end, or cancels it as soon as the client disconnects.

    Raises:
        ClientGone: the client left first (`work` was cancelled and has wound down).
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        raise ClientGone
    return task.result()


async def _disconnected(receive: Callable[[], Awaitable[MutableMapping[str, Any]]]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


# --- one-shot sessions --------------------------------------------------------------------


class OneShot:
    """One request's session: opened with the prompt, always released (shielded)."""

    def __init__(self, engine: EngineClient) -> None:
        self._engine = engine
        self.session_id: str | None = None
        self.events: AsyncIterator[Event] | None = None

    async def open(self, ids: list[int], params: GenerationParams, eos: tuple[int, ...]) -> Event:
        """Creates, prefills and starts generating; returns the first event.

        Raises:
            RuntimeFault: any engine fault (the session is released first).
        """
        try:
            info = await self._engine.acreate_session(eos, "http")
            self.session_id = info.session_id
            await self._engine.aappend(self.session_id, ids)
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
                    await self._engine.aclose(session_id)


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


def unfinished(done: DoneEvent | None) -> RuntimeFault | None:
    """The fault to answer instead of a choice when a generation did not finish."""
    if done is not None and sse.FINISH_REASON[done.stop_reason] is not None:
        return None
    if done is not None and done.stop_reason is StopReason.SHUTDOWN:
        return Unavailable("generation stopped: the server is shutting down")
    return Unavailable("generation cancelled before it finished")


# --- the shim -----------------------------------------------------------------------------


class Shim:
    """The routes' behaviour over one engine; every error response is built (and counted)
    here."""

    def __init__(self, engine: EngineClient, config: ServerConfig) -> None:
        self.engine = engine
        self.config = config
        self.eos_ids = resolve_eos_ids(engine.tokenizer)
        self.bounds = PromptLimits(
            engine.model_id,
            config.max_prompt_chars,
            config.http_default_max_tokens,
            engine.config.limits,
        )

    # -- errors ------------------------------------------------------------------
    def error(
        self,
        status: int,
        body: dict[str, Any],
        code: ErrorCode,
        headers: Mapping[str, str] | None = None,
    ) -> JSONResponse:
        self.engine.metrics.count_error(SURFACE, code)
        return JSONResponse(body, status_code=status, headers=headers)

    def fault(self, fault: RuntimeFault) -> JSONResponse:
        return self.error(http_status(fault), openai_error(fault), fault.code)

    def http_error(self, err: HttpError) -> JSONResponse:
        kind = "invalid_request_error" if err.status < 500 else "server_error"
        body = error_envelope(err.message, kind, err.code, err.param)
        return self.error(err.status, body, err.error_code)

    async def on_http_exception(self, request: Request, exc: Exception) -> Response:
        """Starlette's own refusals (unknown path 404, wrong method 405) in the envelope."""
        assert isinstance(exc, StarletteHTTPException)
        code = ErrorCode.NOT_FOUND if exc.status_code == 404 else ErrorCode.INVALID_ARGUMENT
        body = error_envelope(str(exc.detail), "invalid_request_error", code.value)
        return self.error(exc.status_code, body, code, exc.headers)

    async def on_bug(self, request: Request, exc: Exception) -> Response:
        """A bug's answer (the middleware logs it, once, when it surfaces there)."""
        return self.fault(InternalFault())

    # -- chat completions ----------------------------------------------------------
    async def chat_completions(self, request: Request) -> Response:
        try:
            body = await read_body(request, self.config.max_http_body_bytes)
            ready = await self.engine.run_blocking(
                prepare, body, self.engine.tokenizer, self.bounds
            )
            oneshot = OneShot(self.engine)
            opening = oneshot.open(ready.prompt_ids, ready.params, self.eos_ids)
            first = await until_disconnect(request.receive, opening)
        except ClientGone:
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        except HttpError as err:
            return self.http_error(err)
        except RuntimeFault as fault:
            return self.fault(fault)
        meta = (f"chatcmpl-{secrets.token_hex(12)}", int(time.time()), self.engine.model_id)
        events = chain(first, oneshot.events)  # type: ignore[arg-type]
        n_prompt = len(ready.prompt_ids)
        if ready.chat.stream:
            return OneShotStream(self.sse_body(events, n_prompt, meta), oneshot)
        try:
            return await until_disconnect(request.receive, self.complete(events, n_prompt, meta))
        except ClientGone:
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        except RuntimeFault as fault:
            return self.fault(fault)
        finally:
            await oneshot.release()

    async def complete(
        self, events: AsyncIterator[Event], n_prompt: int, meta: CompletionMeta
    ) -> Response:
        """Collects a whole generation into one `chat.completion` response."""
        decoder = IncrementalDecoder(self.engine.tokenizer, skip_ids=self.eos_ids)
        done: DoneEvent | None = None
        async for event in events:
            if isinstance(event, TokenEvent):
                decoder.push(event.token_id)
                await _yield_now_and_then(event.index)
            elif isinstance(event, DoneEvent):
                done = event
        fault = unfinished(done)
        if fault is not None:
            return self.fault(fault)
        assert done is not None  # unfinished() answers for a missing done event
        counts = sse.usage(n_prompt, done.generated_tokens)
        finish = sse.FINISH_REASON[done.stop_reason]
        return JSONResponse(sse.completion(*meta, decoder.text(), finish, counts))

    async def sse_body(
        self, events: AsyncIterator[Event], n_prompt: int, meta: CompletionMeta
    ) -> AsyncIterator[bytes]:
        """Role chunk, content chunks, a final chunk with finish_reason and usage, `[DONE]`.

        A generation that fails or is cut short ends with an error event, then `[DONE]`.
        """
        yield sse.sse_event(sse.chunk(*meta, {"role": "assistant", "content": ""}))
        try:
            async for frame in self._sse_frames(events, n_prompt, meta):
                yield frame
        except RuntimeFault as fault:
            self.engine.metrics.count_error(SURFACE, fault.code)
            yield sse.sse_event(openai_error(fault))
        except Exception as error:
            bug = internal_fault(error, "POST /v1/chat/completions (stream)")
            self.engine.metrics.count_error(SURFACE, bug.code)
            yield sse.sse_event(openai_error(bug))
        yield sse.SSE_DONE

    async def _sse_frames(
        self, events: AsyncIterator[Event], n_prompt: int, meta: CompletionMeta
    ) -> AsyncIterator[bytes]:
        decoder = IncrementalDecoder(self.engine.tokenizer, skip_ids=self.eos_ids)
        async for event in events:
            if isinstance(event, TokenEvent):
                text = decoder.push(event.token_id)
                await _yield_now_and_then(event.index)
                if text:
                    yield sse.sse_event(sse.chunk(*meta, {"content": text}))
            elif isinstance(event, DoneEvent):
                tail = decoder.flush()
                if tail:
                    yield sse.sse_event(sse.chunk(*meta, {"content": tail}))
                fault = unfinished(event)
                if fault is not None:
                    raise fault
                counts = sse.usage(n_prompt, event.generated_tokens)
                finish = sse.FINISH_REASON[event.stop_reason]
                yield sse.sse_event(sse.chunk(*meta, {}, finish, counts))

    # -- the rest ------------------------------------------------------------------
    async def models(self, request: Request) -> Response:
        card = {"id": self.engine.model_id, "object": "model", "created": 0, "owned_by": "kakeya"}
        return JSONResponse({"object": "list", "data": [card]})

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": self.engine.model_id})

    async def metrics(self, request: Request) -> Response:
        registry = self.engine.metrics.registry
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def protocol_doc(self, request: Request) -> Response:
        if not PROTOCOL_DOC.is_file():
            body = error_envelope("doc not installed", "not_found_error", "NOT_FOUND")
            return self.error(404, body, ErrorCode.NOT_FOUND)
        text = await self.engine.run_blocking(PROTOCOL_DOC.read_text, "utf-8")
        return PlainTextResponse(text, media_type="text/markdown")


class ShimMiddleware:
    """Pure ASGI, outermost: HEAD served as GET without a body, bearer auth before anything
    else, the deprecation headers on every response, and the last catch for a bug that
    escaped a route (logged here, once; answered 500 in the envelope)."""

    def __init__(self, app: Any, shim: Shim, token: str | None) -> None:
        self.app = app
        self._shim = shim
        self._token = token
        self._headers = [(k.lower().encode(), v.encode()) for k, v in DEPRECATION_HEADERS.items()]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), *self._headers]}
            await send(message)

        if scope["method"] == "HEAD":  # the server still knows it is HEAD and drops the body
            scope = {**scope, "method": "GET"}
        if scope["path"] not in AUTH_EXEMPT_PATHS and not authorized(
            _header(scope, b"authorization"), self._token
        ):
            body = error_envelope(
                "missing or invalid bearer token", "authentication_error", "UNAUTHENTICATED"
            )
            headers = {"WWW-Authenticate": "Bearer"}
            response = self._shim.error(401, body, ErrorCode.UNAUTHENTICATED, headers)
            await response(scope, receive, send_with_headers)
            return
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as error:
            fault = internal_fault(error, f"{scope['method']} {quote(scope['path'])}")
            if not started:
                await self._shim.fault(fault)(scope, receive, send_with_headers)


async def _yield_now_and_then(index: int) -> None:
    """Let the loop's other work (gRPC shares it) run every `YIELD_EVERY_TOKENS` tokens,
    even when a burst of tokens is ready at once."""
    if index % YIELD_EVERY_TOKENS == YIELD_EVERY_TOKENS - 1:
        await asyncio.sleep(0)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def create_app(engine: EngineClient, config: ServerConfig) -> Any:
    """The shim over `engine` as an ASGI app; `config` supplies auth and the bounds."""
    shim = Shim(engine, config)
    app = FastAPI(
        title="Kakeya HTTP shim (deprecated)", docs_url=None, redoc_url=None, openapi_url=None
    )
    app.add_api_route("/v1/chat/completions", shim.chat_completions, methods=["POST"])
    app.add_api_route("/v1/models", shim.models, methods=["GET"])
    app.add_api_route("/healthz", shim.healthz, methods=["GET"])
    app.add_api_route("/metrics", shim.metrics, methods=["GET"])
    app.add_api_route(PROTOCOL_DOC_PATH, shim.protocol_doc, methods=["GET"])
    app.add_exception_handler(StarletteHTTPException, shim.on_http_exception)
    app.add_exception_handler(Exception, shim.on_bug)
    return ShimMiddleware(app, shim, config.token)
