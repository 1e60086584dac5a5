"""The deprecated HTTP+SSE shim on a real socket over the embedded model (no doubles)."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from kakeya.tokenization import encode_chat

URL = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Tell me about caches."}]


def body(runtime, **extra) -> dict:
    return {"model": runtime.engine.model_id, "messages": MESSAGES, "max_tokens": 6, **extra}


def metric(runtime, name: str, **labels) -> float:
    value = runtime.engine.metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


def eventually(predicate, timeout_s: float = 10.0) -> bool:
    """Waits on a condition the server reaches asynchronously (bounded)."""
    done = threading.Event()
    for _ in range(int(timeout_s / 0.02)):
        if predicate():
            return True
        done.wait(0.02)
    return predicate()


@pytest.fixture
def http(runtime):
    with httpx.Client(base_url=runtime.http_url, timeout=60) as client:
        yield client


def assert_deprecated(response: httpx.Response) -> None:
    assert response.headers["deprecation"].startswith("@")
    assert response.headers["sunset"].endswith("GMT")
    assert '</docs/protocol.md>; rel="deprecation"' in response.headers["link"]


def test_non_stream_completion_and_usage(http, runtime) -> None:
    response = http.post(URL, json=body(runtime))
    assert response.status_code == 200
    assert_deprecated(response)
    data = response.json()
    prompt_ids = encode_chat(runtime.engine.tokenizer, MESSAGES)
    assert data["usage"]["prompt_tokens"] == len(prompt_ids)
    assert data["usage"]["completion_tokens"] <= 6
    assert data["choices"][0]["finish_reason"] in ("length", "stop")
    assert metric(runtime, "session_active") == 0


def test_sse_stream_bytes_and_equality_with_non_stream(http, runtime) -> None:
    full = http.post(URL, json=body(runtime)).json()
    with http.stream("POST", URL, json=body(runtime, stream=True)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert_deprecated(response)
        raw = response.read()
    assert raw.endswith(b"\n\ndata: [DONE]\n\n")
    frames = raw.split(b"\n\n")[:-1]
    assert all(f.startswith(b"data: ") and b"\n" not in f for f in frames)
    chunks = [json.loads(f[6:]) for f in frames[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == full["choices"][0]["message"]["content"]  # greedy: same tokens
    assert chunks[-1]["choices"][0]["finish_reason"] == full["choices"][0]["finish_reason"]
    assert chunks[-1]["usage"] == full["usage"]


def test_models_healthz_and_moving_metrics(http, runtime) -> None:
    assert [m["id"] for m in http.get("/v1/models").json()["data"]] == [runtime.engine.model_id]
    health = http.get("/healthz")
    assert health.json()["status"] == "ok"
    assert_deprecated(health)

    def scrape() -> str:
        return http.get("/metrics").text

    def sample(text: str, prefix: str) -> float:
        lines = [ln for ln in text.splitlines() if ln.startswith(prefix)]
        return float(lines[0].split()[-1]) if lines else 0.0

    before = scrape()
    http.post(URL, json=body(runtime))
    after = scrape()
    assert sample(after, 'session_total{outcome="created"}') == (
        sample(before, 'session_total{outcome="created"}') + 1
    )
    assert sample(after, "generate_prefill_tokens_count") > sample(
        before, "generate_prefill_tokens_count"
    )
    assert sample(after, "session_active") == 0


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"content": b'{"model": ', "headers": {"content-type": "application/json"}}, 400),
        ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415),
        (
            {"content": b"x" * (2 * 1024 * 1024), "headers": {"content-type": "application/json"}},
            413,
        ),
        ({"json": {"messages": MESSAGES}}, 422),
    ],
    ids=["malformed-json", "content-type", "oversized", "schema"],
)
def test_malformed_requests(http, runtime, kwargs, status) -> None:
    response = http.post(URL, **kwargs)
    assert response.status_code == status
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert_deprecated(response)
    assert http.post(URL, json=body(runtime)).status_code == 200  # still serving


@pytest.mark.parametrize(
    "extra",
    [{"max_tokens": 0}, {"max_tokens": 4097}, {"temperature": -1.0}, {"top_p": 0.0}],
    ids=lambda e: next(iter(e.items())).__repr__(),
)
@pytest.mark.parametrize("stream", [False, True])
def test_bad_parameters_are_400_before_streaming(http, runtime, extra, stream) -> None:
    response = http.post(URL, json=body(runtime, stream=stream, **extra))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] in extra
    assert metric(runtime, "session_active") == 0


def test_nan_temperature_is_rejected(http, runtime) -> None:
    raw = json.dumps(body(runtime)).replace(
        '"max_tokens": 6', '"max_tokens": 6, "temperature": NaN'
    )
    response = http.post(URL, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "temperature"


def test_client_vanishing_mid_stream_frees_the_session(serve_runtime) -> None:
    server = serve_runtime(max_concurrent=1, queue_timeout_s=20.0)
    with httpx.Client(base_url=server.http_url, timeout=60) as client:
        with client.stream("POST", URL, json=body(server, max_tokens=4000, stream=True)) as r:
            lines = r.iter_lines()
            assert next(lines).startswith("data: ")  # role chunk; then hang up
        # The single slot is free again: this request waits in the queue until it is.
        assert client.post(URL, json=body(server)).status_code == 200
    assert eventually(lambda: metric(server, "session_active") == 0)


def test_auth_on_the_http_surface(serve_runtime) -> None:
    server = serve_runtime(token="http-s3cret")
    with httpx.Client(base_url=server.http_url, timeout=60) as client:
        assert client.get("/healthz").status_code == 200
        denied = client.post(URL, json=body(server))
        assert (
            denied.status_code == 401 and denied.json()["error"]["type"] == "authentication_error"
        )
        assert_deprecated(denied)
        headers = {"Authorization": "Bearer http-s3cret"}
        assert client.post(URL, json=body(server), headers=headers).status_code == 200
        metrics = client.get("/metrics", headers=headers)
        assert metrics.status_code == 200 and "http-s3cret" not in metrics.text
