"""The shim's transport on a real loopback uvicorn (scripted engine): TCP_NODELAY, bounded
request heads (414, 431) answered instead of reset, the header read timeout (408)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest

from inference_engine.server.config import ServerConfig
from inference_engine.server.http_shim.transport import bind_socket
from inference_engine.server.serve import BackgroundServer


@pytest.fixture
def shim(scripted_engine):
    config = ServerConfig(
        grpc_port=0,
        http_port=0,
        max_http_line_bytes=1024,
        max_http_head_bytes=4096,
        http_header_timeout_s=0.5,
    )
    with BackgroundServer(scripted_engine, config) as server:
        yield server


def connect(server: BackgroundServer) -> socket.socket:
    host, port = server.http_url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes; a reset here fails the test."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def read_response(sock: socket.socket, head_only: bool = False) -> bytes:
    """One HTTP/1.1 response on a keep-alive connection: the head, then content-length bytes."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0 if head_only else int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(4096)
    return head + b"\r\n\r\n" + body


def test_the_listener_is_tcp_so_accepted_connections_get_nodelay() -> None:
    sock = bind_socket("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


def test_accepted_connections_have_tcp_nodelay(shim) -> None:
    async def nodelay_flags() -> list[int]:
        connections = shim.servers.http.server.server_state.connections
        return [
            c.transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            for c in connections
        ]

    with connect(shim) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200")
        flags = asyncio.run_coroutine_threadsafe(nodelay_flags(), shim._loop).result(10)
    assert flags and all(flags)


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n", b"431"),
        (b"GET /healthz HTTP/1.1\r\n" + b"X-Many: c\r\n" * 1000 + b"\r\n", b"431"),
    ],
    ids=["request line", "one header", "many headers"],
)
def test_oversized_heads_are_answered_not_reset(shim, request_head, status) -> None:
    with connect(shim) as sock:
        sock.sendall(request_head)
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:80]
    assert b'"error"' in answer and b"deprecation:" in answer.lower()


def test_a_head_that_never_completes_times_out_with_408(shim) -> None:
    with connect(shim) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        began = time.monotonic()
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert 0.4 < time.monotonic() - began < 5


def test_a_dribbling_client_is_timed_out_too(shim) -> None:
    with connect(shim) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        for _ in range(8):  # keeps sending, never finishes: 0.8 s > the 0.5 s bound
            time.sleep(0.1)
            try:
                sock.sendall(b"X: y\r\n")
            except OSError:
                break
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]


def test_keep_alive_requests_after_a_response_still_work(shim) -> None:
    with connect(shim) as sock:
        for _ in range(3):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock).startswith(b"HTTP/1.1 200")
            time.sleep(0.3)  # idle between requests, under the timeout each time
        sock.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head = read_response(sock, head_only=True)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # HEAD sent no body
        assert read_response(sock).startswith(b"HTTP/1.1 200")
    assert head.startswith(b"HTTP/1.1 200")


def test_counts_the_refusals(shim, scripted_engine) -> None:
    with connect(shim) as sock:
        sock.sendall(b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\n\r\n")
        read_all(sock)
    labels = {"surface": "http", "code": "INVALID_ARGUMENT"}
    assert scripted_engine.metrics.registry.get_sample_value("request_errors_total", labels) == 1


@pytest.mark.parametrize(
    "noise",
    [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64), b"NOT HTTP AT ALL\r\n\r\n"],
)
def test_unparseable_requests_are_400_counted_and_not_logged(
    shim, scripted_engine, noise, caplog
) -> None:
    caplog.set_level(logging.DEBUG, logger="uvicorn")
    with connect(shim) as sock:
        sock.sendall(noise)
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:80]
    assert b'"error"' in answer
    labels = {"surface": "http", "code": "INVALID_ARGUMENT"}
    assert scripted_engine.metrics.registry.get_sample_value("request_errors_total", labels) == 1
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
