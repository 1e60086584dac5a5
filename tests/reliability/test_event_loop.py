"""Point 2: nothing CPU-heavy on the event loop both surfaces share.

Eight concurrent 1 MiB chat requests are refused on their size before any templating or
tokenizing, while a gRPC GetSessionInfo probe keeps answering; a prompt within bounds is
templated and tokenized on a worker thread, never on the loop. The probe's latencies are
written to test-artifacts/probe.json. The bound asserted is the issue's 100 ms for the 95th
percentile (a single probe descheduled on a busy machine may exceed it) and 1 s for the
worst; before this change the worst probe waited about 12 s.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from raw_wire import connect, read_until_closed
from reliability_support import metric

import kakeya

pytestmark = pytest.mark.integration

URL = "/v1/chat/completions"
LOOP_THREAD = "kakeya-server"  # BackgroundServer's event loop
REQUESTS = 8
BODY_CHARS = 1_000_000  # with the JSON around it, just under the 1 MiB body limit


class TemplateSpy:
    """Records which thread renders each chat template (the real template still runs)."""

    def __init__(self, tokenizer, monkeypatch) -> None:
        self.threads: list[str] = []
        real = tokenizer.apply_chat_template

        def render(*args, **kwargs):
            self.threads.append(threading.current_thread().name)
            return real(*args, **kwargs)

        monkeypatch.setattr(tokenizer, "apply_chat_template", render)


def probe_while(stop: threading.Event, session: kakeya.Session) -> list[float]:
    latencies = []
    while not stop.is_set():
        began = time.perf_counter()
        session.info()
        latencies.append(time.perf_counter() - began)
        stop.wait(0.005)
    return latencies


def huge_request(model: str) -> bytes:
    """Built once, before the probe runs: the clients must not be what the probe measures."""
    body = {"model": model, "messages": [{"role": "user", "content": "x" * BODY_CHARS}]}
    payload = json.dumps(body).encode()
    head = (
        f"POST {URL} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + payload


def send(http_url: str, request: bytes) -> bytes:
    """Sends a prepared request on a bare socket; returns the whole answer."""
    with connect(http_url) as sock:
        sock.sendall(request)
        return read_until_closed(sock)


def test_huge_prompts_are_refused_before_any_work_and_probes_stay_fast(
    serve_runtime, monkeypatch, artifacts_dir
) -> None:
    server = serve_runtime()
    engine = server.engine
    spy = TemplateSpy(engine.tokenizer, monkeypatch)
    with (
        kakeya.Client(server.grpc_address, timeout=60) as client,
        client.create_session() as probed,
    ):
        probed.append([5, 6, 7])
        stop = threading.Event()
        request = huge_request(engine.model_id)
        with ThreadPoolExecutor(REQUESTS + 1) as pool:
            probe = pool.submit(probe_while, stop, probed)
            time.sleep(0.2)  # a baseline before the load
            answers = list(pool.map(lambda _: send(server.http_url, request), range(REQUESTS)))
            time.sleep(0.2)
            stop.set()
            latencies = probe.result()
    assert [a.split(b" ")[1] for a in answers] == [b"400"] * REQUESTS
    assert all(
        json.loads(a.partition(b"\r\n\r\n")[2])["error"]["param"] == "messages" for a in answers
    )
    assert spy.threads == []  # refused on size: never templated, never tokenized
    assert metric(engine, "session_total", outcome="created") == 1  # only the probe's session
    figures = {
        "requests": REQUESTS,
        "body_chars": BODY_CHARS,
        "probes": len(latencies),
        "probe_median_ms": round(statistics.median(latencies) * 1000, 2),
        "probe_p95_ms": round(sorted(latencies)[int(len(latencies) * 0.95)] * 1000, 2),
        "probe_max_ms": round(max(latencies) * 1000, 2),
    }
    (artifacts_dir / "probe.json").write_text(json.dumps(figures, indent=1))
    print(f"\nprobe during {REQUESTS} x 1 MiB refusals: {figures}")
    assert figures["probe_p95_ms"] < 100  # the bound; one descheduled probe may miss it
    assert figures["probe_max_ms"] < 1000  # before: 12 s, eight prompts tokenized on the loop


def test_prompts_are_templated_and_tokenized_off_the_event_loop(serve_runtime, monkeypatch):
    server = serve_runtime()
    engine = server.engine
    spy = TemplateSpy(engine.tokenizer, monkeypatch)
    body = {
        "model": engine.model_id,
        "messages": [{"role": "user", "content": "Say something about caches."}],
        "max_tokens": 3,
    }
    with httpx.Client(base_url=server.http_url, timeout=60) as http:
        for stream in (False, True):
            assert http.post(URL, json={**body, "stream": stream}).status_code == 200
    assert len(spy.threads) == 2
    assert LOOP_THREAD not in spy.threads, spy.threads
