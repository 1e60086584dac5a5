"""Point 3: hostile values on every surface get a typed answer and change nothing.

gRPC: values sampling cannot compute (a temperature too small to divide by), extreme
integers and oversized strings are INVALID_ARGUMENT before any state changes: the session's
pending tokens stay unprefilled, its history unchanged, and it later generates exactly what
a session that never saw them generates. HTTP: mistyped parts, malformed tool calls, JSON
nested 10,000 deep, odd numbers and huge strings are 4xx in the OpenAI envelope, no session
is ever created for them, nothing is logged at ERROR and nothing is answered 500.
"""

from __future__ import annotations

import json
import logging

import grpc
import httpx
import pytest
from reliability_support import metric

import kakeya
from kakeya.v1 import runtime_pb2 as pb
from kakeya.v1 import runtime_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration

PROMPT = list(range(10, 40))
URL = "/v1/chat/completions"
INT64_MAX, INT64_MIN = 2**63 - 1, -(2**63)
SHORT_DETAILS = 200  # no refusal repeats a client's string at length


def hostile_grpc_calls(sid: str) -> dict[str, tuple[str, object]]:
    """name: (method, request); every one must be INVALID_ARGUMENT."""
    generate = lambda **kw: ("Generate", pb.GenerateRequest(session_id=sid, **kw))  # noqa: E731
    append = lambda **kw: ("AppendTokens", pb.AppendTokensRequest(**kw))  # noqa: E731
    create = lambda **kw: ("CreateSession", pb.CreateSessionRequest(**kw))  # noqa: E731
    return {
        "temperature 1e-40": generate(max_tokens=4, temperature=1e-40),
        "temperature smallest subnormal": generate(max_tokens=4, temperature=5e-324),
        "temperature 1e-6": generate(max_tokens=4, temperature=1e-6),
        "temperature -0.5": generate(max_tokens=4, temperature=-0.5),
        "temperature nan": generate(max_tokens=4, temperature=float("nan")),
        "top_p nan": generate(max_tokens=4, temperature=0.7, top_p=float("nan")),
        "top_p -0.0": generate(max_tokens=4, temperature=0.7, top_p=-0.0),
        "top_k int64 min": generate(max_tokens=4, top_k=INT64_MIN),
        "max_tokens int64 max": generate(max_tokens=INT64_MAX),
        "seed int64 min": generate(max_tokens=4, temperature=0.7, seed=INT64_MIN),
        "generate on a 1 MB id": ("Generate", pb.GenerateRequest(session_id="s" * 2**20)),
        "append int64 max": append(session_id=sid, token_ids=[INT64_MAX]),
        "append int64 min": append(session_id=sid, token_ids=[INT64_MIN]),
        "append to a 100 KB id": append(session_id="s" * 10**5, token_ids=[5]),
        "label of 100 KB": create(label="L" * 10**5),
        "eos int64 max": create(eos_token_ids=[INT64_MAX]),
        "100 distinct eos ids": create(eos_token_ids=range(100)),
        "info on a 1 MB id": ("GetSessionInfo", pb.GetSessionInfoRequest(session_id="i" * 2**20)),
        "close a 1 MB id": ("CloseSession", pb.CloseSessionRequest(session_id="c" * 2**20)),
    }


def call(stub: pb_grpc.RuntimeServiceStub, method: str, request: object) -> object:
    rpc = getattr(stub, method)
    return list(rpc(request)) if method == "Generate" else rpc(request)


def test_hostile_grpc_values_are_invalid_argument_before_any_state_changes(runtime) -> None:
    engine = runtime.engine
    with grpc.insecure_channel(runtime.grpc_address) as channel:
        stub = pb_grpc.RuntimeServiceStub(channel)
        sid = stub.CreateSession(pb.CreateSessionRequest()).session.session_id
        stub.AppendTokens(pb.AppendTokensRequest(session_id=sid, token_ids=PROMPT))
        before = stub.GetSessionInfo(pb.GetSessionInfoRequest(session_id=sid))
        assert (before.history_tokens, before.cached_tokens) == (len(PROMPT), 0)  # pending
        failures = []
        for name, (method, request) in hostile_grpc_calls(sid).items():
            try:
                call(stub, method, request)
                failures.append(f"{name}: accepted")
                continue
            except grpc.RpcError as error:
                code, details = error.code(), error.details() or ""
            after = stub.GetSessionInfo(pb.GetSessionInfoRequest(session_id=sid))
            if code != grpc.StatusCode.INVALID_ARGUMENT or not 0 < len(details) < SHORT_DETAILS:
                failures.append(f"{name}: {code} {details[:100]!r}")
            if (after.history_tokens, after.cached_tokens, after.generating) != (
                len(PROMPT),
                0,
                False,
            ):
                failures.append(f"{name}: the session changed: {after}")
        assert failures == []
        assert metric(engine, "session_active") == 1  # nothing was created by a refusal
        events = list(stub.Generate(pb.GenerateRequest(session_id=sid, max_tokens=6)))
        after = [e.token.token_id for e in events if e.WhichOneof("event") == "token"]
    with kakeya.Client(runtime.grpc_address, timeout=60) as client, client.create_session() as ref:
        ref.append(PROMPT)
        assert after == list(ref.generate(6))


# -- HTTP ----------------------------------------------------------------------------------


def hostile_bodies(model: str) -> dict[str, tuple[bytes | dict | list, int]]:
    """name: (body, expected status); bytes are sent as they are."""
    user = {"role": "user", "content": "Tell me about caches."}
    good = {"model": model, "messages": [user], "max_tokens": 4}

    def with_message(**message) -> dict:
        return {**good, "messages": [user, {"role": "assistant", **message}]}

    def raw(fields: bytes) -> bytes:
        """A body as bytes, for values JSON libraries will not write (NaN, 1e400, \\ud800)."""
        return b'{"model": "%s", "messages": [{"role": "user"}], %s}' % (model.encode(), fields)

    def user_content(content: object) -> dict:
        return {**good, "messages": [{"role": "user", "content": content}]}

    def tool_calls(calls: object) -> dict:
        return with_message(tool_calls=calls)

    def nested(depth: int) -> bytes:
        inner = b"[" * depth + b"]" * depth
        return b'{"model": "%s", "messages": [], "chat_template_kwargs": {"x": %s}}' % (
            model.encode(),
            inner,
        )

    return {
        "non-string text part": (user_content([{"type": "text", "text": 5}]), 422),
        "text part without text": (user_content([{"type": "text"}]), 422),
        "content an object": (user_content({"text": "x"}), 422),
        "content a number": (user_content(12), 422),
        "tool_calls a string": (tool_calls("call it"), 422),
        "tool_calls of strings": (tool_calls(["a", "b"]), 422),
        "tool call without function": (tool_calls([{"id": "1", "type": "function"}]), 422),
        "tool call name a number": (
            tool_calls([{"function": {"name": 1, "arguments": "{}"}}]),
            422,
        ),
        "tool call arguments an array": (
            tool_calls([{"function": {"name": "f", "arguments": [1]}}]),
            422,
        ),
        "tool call of another type": (
            tool_calls([{"type": "web", "function": {"name": "f"}}]),
            422,
        ),
        "unknown role": ({**good, "messages": [{"role": "root", "content": "x"}]}, 422),
        "JSON nested 10,000 deep": (b"[" * 10_000 + b"]" * 10_000, 400),
        "an option nested 10,000 deep": (nested(10_000), 400),
        "lone surrogate": (raw(b'"stop": null, "x": "\\ud800"'), 400),
        "not an object": ([1, 2, 3], 422),
        "null": (b"null", 422),
        "empty body": (b"", 400),
        "max_tokens true": ({**good, "max_tokens": True}, 422),
        "max_tokens 1e400": (raw(b'"max_tokens": 1e400'), 422),
        "max_tokens 2.5": ({**good, "max_tokens": 2.5}, 422),
        "max_tokens 10**30": ({**good, "max_tokens": 10**30}, 400),
        "max_tokens with 5,000 digits": (raw(b'"max_tokens": 1' + b"0" * 5000), 400),
        "stream yes": ({**good, "stream": "yes"}, 422),
        "stream 1": ({**good, "stream": 1}, 422),
        "temperature 1e-40": ({**good, "temperature": 1e-40}, 400),
        "temperature 1e400": (raw(b'"temperature": 1e400'), 400),
        "temperature NaN": (raw(b'"temperature": NaN'), 400),
        "top_p -0": ({**good, "top_p": -0.0}, 400),
        "seed 2**64": ({**good, "seed": 2**64}, 400),
        "seed a string": ({**good, "seed": "42"}, 422),
        "enable_thinking a string": (
            {**good, "chat_template_kwargs": {"enable_thinking": "no"}},
            400,
        ),
        "2,000 messages": ({**good, "messages": [user] * 2000}, 422),
        "model name of 900 KB": ({**good, "model": "m" * 900_000}, 404),
        "role of 500 KB": ({**good, "messages": [{"role": "r" * 500_000}]}, 422),
        "content of 900 KB": (user_content("c" * 900_000), 400),
        "body over 1 MiB": (user_content("c" * 1_100_000), 413),
    }


def test_hostile_http_bodies_are_typed_refusals_that_create_nothing(runtime, caplog) -> None:
    caplog.set_level(logging.WARNING)
    engine = runtime.engine
    failures = []
    with httpx.Client(base_url=runtime.http_url, timeout=60) as http:
        for name, (body, status) in hostile_bodies(engine.model_id).items():
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            response = http.post(URL, content=content, headers={"content-type": "application/json"})
            try:
                error = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                failures.append(f"{name}: {response.status_code} not an envelope")
                continue
            if response.status_code != status:
                failures.append(f"{name}: {response.status_code} {error['message'][:80]!r}")
            if set(error) != {"message", "type", "param", "code"} or len(error["message"]) > 300:
                failures.append(f"{name}: envelope {str(error)[:120]}")
        assert http.get("/healthz").status_code == 200
    assert failures == []
    assert metric(engine, "session_total", outcome="created") == 0  # refused before a session
    assert [r.getMessage()[:120] for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_an_engine_fault_after_admission_still_answers_in_the_envelope(runtime) -> None:
    """A store full of sessions (reject policy) refuses the shim's one-shot session: 429."""
    engine = runtime.engine
    with kakeya.Client(runtime.grpc_address, timeout=60) as client:
        held = [client.create_session() for _ in range(engine.config.store.max_sessions)]
        body = {"model": engine.model_id, "messages": [{"role": "user", "content": "hi"}]}
        for stream in (False, True):
            response = httpx.post(f"{runtime.http_url}{URL}", json={**body, "stream": stream})
            assert response.status_code == 429, response.text[:200]
            assert response.json()["error"]["code"] == "RESOURCE_EXHAUSTED"
        for session in held:
            session.close()
