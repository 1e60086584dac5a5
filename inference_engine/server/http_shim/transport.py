"""The shim's HTTP transport: uvicorn (h11), plus what it lacks on a hostile network.

- TCP_NODELAY on every accepted connection. asyncio sets it only on sockets whose `proto`
  is IPPROTO_TCP, and an accepted socket inherits the listener's; a listener created with
  protocol 0 left Nagle on, and every keep-alive response waited out a delayed ACK.
- Bounded request heads, checked before h11 buffers them: a request line over the limit
  is answered 414, a head over its limit 431 (uvicorn answered 400, or the client saw a
  reset because its unread bytes were still arriving when the socket closed).
- A header read timeout: a head not complete within `http_header_timeout_s` of the
  connection opening (or of the previous response) is answered 408; a connection that
  sent nothing at all is closed quietly. uvicorn has no such timeout.
- Bytes h11 cannot parse are answered 400 in the envelope and counted, not logged.

A refusal is written whole with `Connection: close`, the write side is shut, and what the
client still sends is drained for `LINGER_S` before the socket closes, so that the client
reads the answer instead of a reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from inference_engine.errors import ErrorCode
from inference_engine.server.config import ServerConfig
from inference_engine.server.errors import error_envelope
from inference_engine.server.http_shim.app import DEPRECATION_HEADERS, SURFACE, create_app

if TYPE_CHECKING:
    from inference_engine.engine import EngineClient
    from inference_engine.metrics import RuntimeMetrics

LINGER_S = 2.0
SEND_BUFFER_BYTES = 128 * 1024
STARTUP_TIMEOUT_S = 30.0
_HEAD_END = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True)
class HeadLimits:
    """Bounds on one request head: its first line, all of it, and the time it may take."""

    max_line_bytes: int
    max_head_bytes: int
    timeout_s: float


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with bounded request heads and a header read timeout."""

    def __init__(
        self, *args: Any, limits: HeadLimits, metrics: RuntimeMetrics, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._metrics = metrics
        self._head = bytearray()  # the current request head, until it is complete
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # drained: the answer is out, the connection is closing
        if self._head_timer is not None and self.conn.their_state is h11.IDLE:  # a new head
            refusal = self._check_head(data)
            if refusal is not None:
                self._refuse(*refusal)
                return
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        """h11 could not parse the request: the envelope, counted, and no log line (uvicorn
        would log a warning per malformed request, a flood under noise)."""
        self._refuse(HTTPStatus.BAD_REQUEST, "malformed HTTP request")

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self._refused:
            self._arm_head_timer()

    def _check_head(self, data: bytes) -> tuple[HTTPStatus, str] | None:
        """414 or 431 when the head outgrows its bounds; clears the timer once it is whole."""
        limits = self._limits
        self._head += data
        line_end = self._head.find(b"\n")
        line_bytes = len(self._head) if line_end < 0 else line_end
        if line_bytes > limits.max_line_bytes:
            return (
                HTTPStatus.REQUEST_URI_TOO_LONG,
                f"request line over {limits.max_line_bytes} bytes",
            )
        end = _HEAD_END.search(self._head)
        head_bytes = len(self._head) if end is None else end.end()
        if head_bytes > limits.max_head_bytes:
            return (
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                f"request head over {limits.max_head_bytes} bytes",
            )
        if end is not None:
            self._disarm_head_timer()
        return None

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self._limits.timeout_s, self._on_head_timeout)

    def _disarm_head_timer(self) -> None:
        self._head.clear()
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _on_head_timeout(self) -> None:
        self._head_timer = None
        if self._refused or self.transport.is_closing():
            return
        waiting = self.conn.their_state is h11.IDLE and (
            self.cycle is None or self.cycle.response_complete
        )
        if not waiting:  # a request is still arriving or being answered: look again later
            self._arm_head_timer()
            return
        if not self._head:  # nothing sent: an idle connection, closed like a keep-alive
            self.transport.close()
            return
        message = f"request head not complete within {self._limits.timeout_s:g}s"
        self._refuse(HTTPStatus.REQUEST_TIMEOUT, message)

    def _refuse(self, status: HTTPStatus, message: str) -> None:
        """Answers `status` and closes gracefully (write, shut writing, drain, close)."""
        self._refused = True
        self._disarm_head_timer()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's request ends here; it sends nothing more
            cycle.message_event.set()
            if cycle.response_started:  # no second response inside the first one
                self.transport.close()
                return
        code = ErrorCode.DEADLINE_EXCEEDED if status == 408 else ErrorCode.INVALID_ARGUMENT
        self._metrics.count_error(SURFACE, code)
        body = json.dumps(error_envelope(message, "invalid_request_error", code.value)).encode()
        headers = {
            "content-type": "application/json",
            "content-length": str(len(body)),
            "connection": "close",
            **DEPRECATION_HEADERS,
        }
        lines = [f"HTTP/1.1 {status.value} {status.phrase}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.transport.resume_reading()  # keep draining, or the kernel resets on close
        self.loop.call_later(LINGER_S, self.transport.close)


# --- the server ---------------------------------------------------------------------------


class QuietUvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: `serve` owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class HttpServer:
    """A started shim: the uvicorn server, the task serving it, its bound port."""

    server: QuietUvicorn
    task: asyncio.Task[None]
    port: int

    async def stop(self) -> None:
        """Stops accepting, lets in-flight responses finish (within uvicorn's grace)."""
        self.server.should_exit = True
        await self.task


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0 picks a free one), created as IPPROTO_TCP so that
    asyncio sets TCP_NODELAY on every connection it accepts, with a bounded send buffer."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # A fixed send buffer (accepted sockets inherit it): the kernel's autotuning would grow
    # it to megabytes, so a reader that stops would block the stream only after thousands
    # of chunks, and the reader clock (`max_unread_s`) would start that much later.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def start_http(engine: EngineClient, config: ServerConfig) -> HttpServer:
    """Serves the shim over `engine` on `config.host:config.http_port`.

    Raises:
        OSError: the port cannot be bound.
        RuntimeError: uvicorn failed to start.
    """
    sock = bind_socket(config.host, config.http_port)
    limits = HeadLimits(
        config.max_http_line_bytes, config.max_http_head_bytes, config.http_header_timeout_s
    )
    uv_config = uvicorn.Config(
        create_app(engine, config),
        # uvicorn calls `http` as a protocol factory; its annotation admits classes only
        http=functools.partial(GuardedH11Protocol, limits=limits, metrics=engine.metrics),  # type: ignore[arg-type]
        h11_max_incomplete_event_size=config.max_http_head_bytes + 1,
        log_level="error",  # uvicorn's warnings are per malformed request: counted instead
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=max(1, int(config.shutdown_grace_s)),
    )
    server = QuietUvicorn(uv_config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT_S
    while not server.started:  # uvicorn exposes no startup event
        if task.done() or loop.time() > deadline:
            sock.close()
            raise RuntimeError(f"HTTP shim failed to start on {config.host}:{config.http_port}")
        await asyncio.sleep(0.01)
    return HttpServer(server, task, sock.getsockname()[1])
