"""The HTTP shim over a scripted engine: shapes, SSE framing, headers, error envelopes."""

from __future__ import annotations

import email.utils
import json
import logging

import pytest
from fastapi.testclient import TestClient

from inference_engine import errors as core
from inference_engine.server.config import ServerConfig
from inference_engine.server.http_shim.app import create_app
from inference_engine.session.events import StopReason

URL = "/v1/chat/completions"
JSON = {"content-type": "application/json"}


def request_body(**extra) -> dict:
    body = {"model": "kakeya/scripted", "messages": [{"role": "user", "content": "hi"}]}
    return {**body, **extra}


@pytest.fixture
def client(scripted_engine):
    with TestClient(create_app(scripted_engine, ServerConfig())) as test_client:
        yield test_client


def assert_deprecated(response) -> None:
    assert response.headers["deprecation"].startswith("@")
    assert email.utils.parsedate_to_datetime(response.headers["sunset"]).year >= 2026
    assert 'rel="deprecation"' in response.headers["link"]
    assert "/docs/protocol.md" in response.headers["link"]


def test_non_stream_completion(client, scripted_engine) -> None:
    response = client.post(URL, json=request_body(max_tokens=100))
    assert response.status_code == 200
    body = response.json()
    choice = body["choices"][0]
    assert choice["message"]["content"] == "héllo wörld 😀 ok"
    assert choice["finish_reason"] == "length"
    n_gen = len(scripted_engine.tokens)
    assert body["usage"]["completion_tokens"] == n_gen
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + n_gen
    assert scripted_engine.sessions == {}  # the one-shot session was freed
    assert_deprecated(response)


def test_eos_finish_reason_is_stop(client, scripted_engine) -> None:
    scripted_engine.stop = StopReason.EOS
    response = client.post(URL, json=request_body())
    assert response.json()["choices"][0]["finish_reason"] == "stop"


def sse_frames(raw: bytes) -> list[bytes]:
    assert raw.endswith(b"\n\n")
    frames = raw.split(b"\n\n")[:-1]
    assert all(f.startswith(b"data: ") and b"\n" not in f for f in frames)
    return frames


def test_stream_framing_at_byte_level(client, scripted_engine) -> None:
    with client.stream("POST", URL, json=request_body(stream=True, max_tokens=100)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert_deprecated(response)
        raw = b"".join(response.iter_bytes())
    frames = sse_frames(raw)
    assert frames[-1] == b"data: [DONE]"
    chunks = [json.loads(f[len(b"data: ") :]) for f in frames[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[1:])
    assert content == "héllo wörld 😀 ok" and "\ufffd" not in content
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "length"
    assert last["usage"]["completion_tokens"] == len(scripted_engine.tokens)
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert len({c["id"] for c in chunks}) == 1
    assert scripted_engine.sessions == {}


@pytest.mark.parametrize("stop", [StopReason.CANCELLED, StopReason.SHUTDOWN])
def test_stream_cut_short_ends_with_error_then_done(client, scripted_engine, stop) -> None:
    scripted_engine.stop = stop
    with client.stream("POST", URL, json=request_body(stream=True)) as response:
        frames = sse_frames(b"".join(response.iter_bytes()))
    assert frames[-1] == b"data: [DONE]"
    assert json.loads(frames[-2][6:])["error"]["code"] == "UNAVAILABLE"


@pytest.mark.parametrize("stop", [StopReason.CANCELLED, StopReason.SHUTDOWN])
def test_non_stream_cut_short_is_503(client, scripted_engine, stop) -> None:
    scripted_engine.stop = stop
    response = client.post(URL, json=request_body())
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "UNAVAILABLE"


def test_defaults_are_greedy_and_bounded(client, scripted_engine) -> None:
    client.post(URL, json=request_body())
    params = scripted_engine.params[-1]
    assert params.temperature == 0.0 and params.top_p == 1.0
    assert params.max_tokens == ServerConfig().http_default_max_tokens
    client.post(URL, json=request_body(max_completion_tokens=3, max_tokens=9, seed=5))
    assert (scripted_engine.params[-1].max_tokens, scripted_engine.params[-1].seed) == (3, 5)


FAULTS = [
    (core.InvalidArgument("max_tokens", "must be >= 1"), 400),
    (core.SessionNotFound("gone"), 404),
    (core.ResourceExhausted("queue full"), 429),
    (core.FailedPrecondition("busy"), 409),
    (core.DeadlineExceeded("late"), 504),
    (core.Unavailable("shutting down"), 503),
]


@pytest.mark.parametrize(("fault", "status"), FAULTS, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize("stream", [False, True])
def test_engine_faults_use_the_envelope(client, scripted_engine, fault, status, stream) -> None:
    scripted_engine.fault = fault
    response = client.post(URL, json=request_body(stream=stream))
    assert response.status_code == status
    error = response.json()["error"]
    assert error["message"] == fault.message and error["code"] == fault.code.value
    assert set(error) == {"message", "type", "param", "code"}
    assert scripted_engine.sessions == {}
    assert_deprecated(response)


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
        ({"content": b"{}", "headers": {"content-type": "text/plain"}}, 415),
        ({"json": {"model": "kakeya/scripted"}}, 422),
        ({"json": {"model": "kakeya/scripted", "messages": []}}, 422),
        ({"json": request_body(temperature="hot")}, 422),
        ({"json": request_body(n=2)}, 400),
        ({"json": request_body(stop=["x"])}, 400),
        ({"json": request_body(model="other/model")}, 404),
        ({"json": request_body(max_tokens=True)}, 422),
        ({"json": request_body(max_tokens=2.0)}, 422),
        ({"json": request_body(stream="yes")}, 422),
        ({"json": request_body(stream=1)}, 422),
        ({"json": request_body(seed="7")}, 422),
        ({"json": request_body(messages=[{"role": "user", "content": 5}])}, 422),
        ({"json": request_body(messages=[{"role": "user", "content": [{"type": "text"}]}])}, 422),
        ({"json": request_body(messages=[{"role": "wizard", "content": "hi"}])}, 422),
        ({"json": request_body(messages=[{"role": "assistant", "tool_calls": "x"}])}, 422),
        ({"json": request_body(messages=[{"role": "assistant", "tool_calls": [{}]}])}, 422),
        ({"json": request_body(temperature=1e-40)}, 400),
        ({"json": request_body(chat_template_kwargs={"enable_thinking": "no"})}, 400),
        ({"content": b"[" * 10_000 + b"]" * 10_000, "headers": JSON}, 400),
        ({"content": b'{"model": "\\ud800"}', "headers": JSON}, 400),
    ],
)
def test_bad_requests(client, scripted_engine, kwargs, status) -> None:
    response = client.post(URL, **kwargs)
    assert response.status_code == status
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert scripted_engine.params == [] and scripted_engine.sessions == {}
    assert_deprecated(response)


def test_strings_from_the_client_are_quoted_short(client, scripted_engine) -> None:
    response = client.post(URL, json=request_body(model="m" * 100_000))
    assert response.status_code == 404 and len(response.json()["error"]["message"]) < 120


def test_prompts_over_the_character_bound_are_refused_before_the_template(scripted_engine):
    calls = []
    real = scripted_engine.tokenizer.apply_chat_template
    scripted_engine.tokenizer.apply_chat_template = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        app = create_app(scripted_engine, ServerConfig(max_prompt_chars=100))
        with TestClient(app) as client:
            long = request_body(messages=[{"role": "user", "content": "x" * 101}])
            response = client.post(URL, json=long)
            assert response.status_code == 400 and response.json()["error"]["param"] == "messages"
            assert calls == []
            assert client.post(URL, json=request_body()).status_code == 200
            assert calls == [1]
    finally:
        del scripted_engine.tokenizer.apply_chat_template
    assert scripted_engine.sessions == {} and scripted_engine.params == [scripted_engine.params[0]]


def test_every_error_is_counted_by_code(client, scripted_engine) -> None:
    client.post(URL, json=request_body(max_tokens=True))
    client.post(URL, json=request_body(model="other"))
    client.get("/nope")

    def counted(code: str) -> float:
        labels = {"surface": "http", "code": code}
        return scripted_engine.metrics.registry.get_sample_value("request_errors_total", labels)

    assert (counted("INVALID_ARGUMENT"), counted("NOT_FOUND")) == (1, 2)


@pytest.mark.parametrize("stream", [False, True])
def test_a_bug_is_500_in_the_envelope_and_logged_once(client, scripted_engine, caplog, stream):
    caplog.set_level(logging.DEBUG)
    secret = "client text that must stay out of logs"
    scripted_engine.bug = KeyError(secret)
    response = client.post(URL, json=request_body(stream=stream))
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "INTERNAL"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and secret not in caplog.text
    assert scripted_engine.sessions == {}


def test_a_bug_mid_stream_ends_with_an_error_event_logged_once(client, scripted_engine, caplog):
    caplog.set_level(logging.DEBUG)
    scripted_engine.bug, scripted_engine.bug_at_token = RuntimeError("secret"), 2
    response = client.post(URL, json=request_body(stream=True))
    frames = sse_frames(response.content)
    assert response.status_code == 200 and frames[-1] == b"data: [DONE]"
    assert json.loads(frames[-2][6:])["error"]["code"] == "INTERNAL"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "secret" not in caplog.text
    assert scripted_engine.sessions == {}


def test_head_is_answered_wherever_get_is(client) -> None:
    for path in ("/healthz", "/v1/models", "/metrics", "/docs/protocol.md"):
        response = client.head(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == client.get(path).headers["content-type"]
        assert_deprecated(response)


def test_oversized_body_is_413(scripted_engine) -> None:
    app = create_app(scripted_engine, ServerConfig(max_http_body_bytes=256))
    with TestClient(app) as client:
        big = request_body(messages=[{"role": "user", "content": "x" * 1000}])
        response = client.post(URL, json=big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_models_health_metrics(client) -> None:
    models = client.get("/v1/models")
    assert [m["id"] for m in models.json()["data"]] == ["kakeya/scripted"]
    assert client.get("/healthz").json()["status"] == "ok"
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    for response in (models, metrics, client.get("/nope")):
        assert_deprecated(response)


def test_auth_on(scripted_engine) -> None:
    app = create_app(scripted_engine, ServerConfig(token="tok-123"))
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "tok-123"}):
            response = client.get("/v1/models", headers=headers)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "UNAUTHENTICATED"
            assert "tok-123" not in response.text
            assert_deprecated(response)
        ok = client.post(URL, json=request_body(), headers={"Authorization": "Bearer tok-123"})
        assert ok.status_code == 200
        metrics = client.get("/metrics", headers={"Authorization": "Bearer tok-123"})
        assert metrics.status_code == 200 and "tok-123" not in metrics.text
