"""Points 6 and 9 on the shim's wire, with bare sockets against the real server.

TCP_NODELAY on every accepted connection (the keep-alive latency it buys is measured by
scripts/measure_latency.py, not asserted here); HEAD answered wherever GET is; 414 and 431
for an oversized request line or head, read back whole instead of a reset; 408 for a head
that never completes; strict request types (`max_tokens: true`, `stream: "yes"`); the
official `openai` client still works unchanged.
"""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest
from raw_wire import connect, read_until_closed
from reliability_support import metric

from inference_engine.server.config import ServerConfig
from inference_engine.server.serve import BackgroundServer

pytestmark = pytest.mark.integration

HEADER_TIMEOUT_S = 0.5


@pytest.fixture
def shim(make_engine):
    engine = make_engine()
    config = ServerConfig(grpc_port=0, http_port=0, http_header_timeout_s=HEADER_TIMEOUT_S)
    with BackgroundServer(engine, config) as server:
        server.engine = engine
        yield server


def test_accepted_http_connections_have_tcp_nodelay(shim) -> None:
    async def flags() -> list[int]:
        connections = shim.servers.http.server.server_state.connections
        sockets = [c.transport.get_extra_info("socket") for c in connections]
        return [s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in sockets]

    with connect(shim.http_url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        seen = asyncio.run_coroutine_threadsafe(flags(), shim._loop).result(10)
    assert seen and all(seen), seen


def test_head_is_answered_wherever_get_is(shim) -> None:
    with httpx.Client(base_url=shim.http_url, timeout=30) as http:
        for path in ("/healthz", "/v1/models", "/metrics", "/docs/protocol.md"):
            get, head = http.get(path), http.head(path)
            assert (get.status_code, head.status_code) == (200, 200), path
            assert head.content == b"" and head.headers["deprecation"]
            assert head.headers["content-type"] == get.headers["content-type"]


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /v1/models?" + b"q" * 100_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", b"414"),
        (b"GET /v1/models HTTP/1.1\r\nHost: t\r\nCookie: " + b"c" * 100_000 + b"\r\n\r\n", b"431"),
    ],
    ids=["request line", "headers"],
)
def test_oversized_request_heads_are_answered_not_reset(shim, head, status) -> None:
    with connect(shim.http_url) as sock:
        sock.sendall(head)
        answer = read_until_closed(sock)  # ConnectionResetError here would fail the test
    assert answer.split(b" ")[1] == status, answer[:100]
    assert b'"error"' in answer
    assert httpx.get(f"{shim.http_url}/healthz").status_code == 200


def test_a_connection_that_never_finishes_its_head_is_timed_out(shim) -> None:
    began = time.monotonic()
    with connect(shim.http_url) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Le")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert time.monotonic() - began < HEADER_TIMEOUT_S + 5
    code = "DEADLINE_EXCEEDED"
    assert metric(shim.engine, "request_errors_total", surface="http", code=code) == 1


@pytest.mark.parametrize(
    "option", [{"max_tokens": True}, {"stream": "yes"}, {"temperature": "0.5"}, {"n": "1"}]
)
def test_request_fields_are_strictly_typed(shim, option) -> None:
    model = shim.engine.model_id
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **option}
    response = httpx.post(f"{shim.http_url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 422, response.text[:200]
    assert response.json()["error"]["param"] == next(iter(option))
    assert metric(shim.engine, "session_total", outcome="created") == 0


def test_the_openai_client_still_works(shim) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{shim.http_url}/v1", api_key="unused", max_retries=0)
    model = shim.engine.model_id
    messages = [{"role": "user", "content": "Say something."}]
    reply = client.chat.completions.create(model=model, messages=messages, max_tokens=4)
    assert reply.choices[0].finish_reason in ("length", "stop")
    chunks = list(
        client.chat.completions.create(model=model, messages=messages, max_tokens=4, stream=True)
    )
    assert chunks[-1].choices[0].finish_reason in ("length", "stop")
    client.close()
