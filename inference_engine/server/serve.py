"""`kakeya-runtime serve`: gRPC and the HTTP shim on one asyncio loop, clean signal shutdown.

Also `BackgroundServer`, the same servers on a private loop in a thread, for tests and
notebooks that drive the runtime from synchronous code.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from inference_engine.config import (
    CacheConfig,
    LanePadding,
    LimitsConfig,
    ModelConfig,
    RuntimeConfig,
    SchedulerConfig,
    StoreConfig,
    WhenFull,
)
from inference_engine.errors import RuntimeFault
from inference_engine.server.config import ServerConfig, resolve_token
from inference_engine.server.grpc_app import build_grpc_server, set_serving

if TYPE_CHECKING:
    from inference_engine.engine import EngineClient
    from inference_engine.server.http_shim.transport import HttpServer

log = logging.getLogger(__name__)
STARTUP_TIMEOUT_S = 30.0


@dataclass
class RunningServers:
    """Started servers and their bound ports."""

    host: str
    grpc_server: grpc.aio.Server
    grpc_port: int
    http: HttpServer | None = None  # when the shim runs

    @property
    def grpc_address(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def http_port(self) -> int | None:
        return None if self.http is None else self.http.port

    @property
    def http_url(self) -> str | None:
        return None if self.http is None else f"http://{self.host}:{self.http.port}"


async def start_servers(engine: EngineClient, config: ServerConfig) -> RunningServers:
    """Starts gRPC (always) and the deprecated HTTP shim (unless `http_port` is -1).

    Raises:
        OSError, RuntimeError: a port could not be bound or uvicorn failed to start.
    """
    grpc_server, grpc_port = build_grpc_server(engine, config)
    await grpc_server.start()
    await set_serving(grpc_server, True)
    servers = RunningServers(config.host, grpc_server, grpc_port)
    if config.http_port >= 0:
        from inference_engine.server.http_shim.transport import start_http  # goes with the shim

        servers.http = await start_http(engine, config)
    return servers


async def stop_servers(
    servers: RunningServers, engine: EngineClient, grace_s: float, shutdown_engine: bool = True
) -> None:
    """Stops accepting work; in-flight streams end with a clear status.

    With `shutdown_engine`, the engine first refuses new sessions and tokens (UNAVAILABLE)
    and ends running generations with stop reason SHUTDOWN, so each open stream sends its
    done event (gRPC) or an UNAVAILABLE error chunk and `[DONE]` (SSE).
    """
    await set_serving(servers.grpc_server, False)
    if shutdown_engine:
        await asyncio.to_thread(engine.shutdown)
    if servers.http is not None:
        await servers.http.stop()
    await servers.grpc_server.stop(grace_s)


# --- background (thread) ------------------------------------------------------------------


class BackgroundServer:
    """The servers on their own event loop in a daemon thread; always `stop()` it.

    Used as `with BackgroundServer(engine, config) as server: Client(server.grpc_address)`.
    """

    def __init__(
        self, engine: EngineClient, config: ServerConfig, shutdown_engine: bool = False
    ) -> None:
        self._engine = engine
        self._config = config
        self._shutdown_engine = shutdown_engine
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="kakeya-server", daemon=True)
        self.servers: RunningServers | None = None

    @property
    def grpc_address(self) -> str:
        assert self.servers is not None, "server not started"
        return self.servers.grpc_address

    @property
    def http_url(self) -> str:
        assert self.servers is not None and self.servers.http_url, "HTTP shim not started"
        return self.servers.http_url

    def start(self) -> BackgroundServer:
        """Starts the thread and waits until both servers accept connections.

        Raises:
            RuntimeError: the servers failed to start.
        """
        self._thread.start()
        if not self._ready.wait(STARTUP_TIMEOUT_S) or self._error is not None:
            raise RuntimeError("background server failed to start") from self._error
        return self

    def stop(self) -> None:
        """Stops the servers (grace per config) and joins the thread. Idempotent."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread.is_alive():
            self._thread.join(self._config.shutdown_grace_s + STARTUP_TIMEOUT_S)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # reported to start(); the thread must not die silently
            self._error = error
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.servers = await start_servers(self._engine, self._config)
        self._ready.set()
        await self._stop.wait()
        await stop_servers(
            self.servers, self._engine, self._config.shutdown_grace_s, self._shutdown_engine
        )

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- command line -------------------------------------------------------------------------


def runtime_config(args: argparse.Namespace) -> RuntimeConfig:
    """The core's configuration from `serve` flags."""
    return RuntimeConfig(
        model=ModelConfig(model_id=args.model, device=args.device, dtype=args.dtype),
        cache=CacheConfig(sink_tokens=args.sink, window_tokens=args.window),
        limits=LimitsConfig(max_history_tokens=args.max_history_tokens),
        store=StoreConfig(
            max_sessions=args.max_sessions,
            when_full=WhenFull(args.when_full),
            session_ttl_s=args.session_ttl_s,
        ),
        scheduler=SchedulerConfig(
            max_concurrent=args.max_concurrent,
            lane_padding=LanePadding(args.lane_padding),
            max_queue=args.max_queue,
            queue_timeout_s=args.queue_timeout_s,
            max_unread_s=args.max_unread_s,
            max_prefill_hold_s=args.max_prefill_hold_s,
        ),
    )


def server_config(args: argparse.Namespace) -> ServerConfig:
    """The surfaces' configuration from `serve` flags (token: file, flag, else KAKEYA_TOKEN).

    Raises:
        ValueError: the token file cannot be read or is empty.
    """
    return ServerConfig(
        host=args.host,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        token=resolve_token(args.token, token_file=args.token_file),
        reflection=not args.no_reflection,
        max_concurrent_rpcs=args.max_concurrent_rpcs,
        max_concurrent_rpcs_per_peer=args.max_concurrent_rpcs_per_peer,
    )


async def serve_until_signal(engine: EngineClient, config: ServerConfig) -> int:
    """Serves until SIGINT or SIGTERM, then shuts down cleanly; returns the exit code."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    servers = await start_servers(engine, config)
    print(f"grpc listening on {servers.grpc_address}", flush=True)
    if servers.http_url is not None:
        print(f"http listening on {servers.http_url}", flush=True)
    auth = "on" if config.auth_enabled else "off"
    print(f"model {engine.model_id} on {engine.device} ({engine.dtype}); auth {auth}", flush=True)
    lanes = engine.decode_lanes
    padding = f"padded to {lanes} lanes" if lanes else "unpadded (batch-invariant kernels)"
    print(f"decode batches of up to {engine.max_concurrent} sessions, {padding}", flush=True)
    await stop.wait()
    print("shutting down", flush=True)
    await stop_servers(servers, engine, config.shutdown_grace_s)
    print("stopped", flush=True)
    return 0


def run_serve(args: argparse.Namespace) -> int:
    """Entry point of `kakeya-runtime serve`: 0 after a clean shutdown, 2 when it cannot start."""
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        config = server_config(args)  # before the model loads: a bad token file fails fast
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    try:
        from inference_engine.engine import Engine, as_client

        engine = Engine.start(runtime_config(args))
    except RuntimeFault as fault:
        print(f"error: {fault.message}", file=sys.stderr, flush=True)
        return 2
    try:
        return asyncio.run(serve_until_signal(as_client(engine), config))
    except (OSError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    finally:
        engine.shutdown()
