"""Every bad input of docs/protocol.md through raw gRPC, the SDK and HTTP, on the real model.

After each one: a typed error, the session's history unchanged (same length, and in the end
the same greedy continuation as a session that never saw a bad input), the server still
serving. Then streams ended every way: cancelled, abandoned, cut by a server stop.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import grpc
import httpx
import pytest
from reliability_support import metric, wait_until

import kakeya
from kakeya.v1 import runtime_pb2 as pb
from kakeya.v1 import runtime_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration

PROMPT = list(range(10, 40))
MAX_APPEND = 8192
MAX_GENERATE = 4096
URL = "/v1/chat/completions"


def bad_appends(vocab: int) -> dict[str, list[int]]:
    return {
        "negative id": [5, -1],
        "id == vocab": [5, vocab],
        "id > vocab": [vocab + 1000],
        "empty": [],
        "over the limit": [7] * (MAX_APPEND + 1),
    }


BAD_GENERATES: dict[str, dict] = {
    "max_tokens 0": {"max_tokens": 0},
    "max_tokens negative": {"max_tokens": -3},
    "max_tokens over": {"max_tokens": MAX_GENERATE + 1},
    "temperature nan": {"max_tokens": 4, "temperature": float("nan")},
    "temperature negative": {"max_tokens": 4, "temperature": -0.5},
    "temperature inf": {"max_tokens": 4, "temperature": float("inf")},
    "top_p 0": {"max_tokens": 4, "top_p": 0.0},
    "top_k negative": {"max_tokens": 4, "top_k": -1},
}


def check_all(cases: dict[str, Callable[[], None]]) -> None:
    """Runs every case and reports all that misbehaved at once (name: what happened)."""
    failures = []
    for name, case in cases.items():
        try:
            case()
        except AssertionError as error:
            failures.append(f"{name}: {error}")
    assert failures == []


def greedy_reference(client: kakeya.Client, history: list[int], max_tokens: int = 6) -> list[int]:
    with client.create_session() as session:
        session.append(history)
        return list(session.generate(max_tokens))


# -- gRPC, no SDK in between -----------------------------------------------------------------


def test_raw_grpc_bad_inputs_are_invalid_argument_and_change_nothing(runtime) -> None:
    vocab = runtime.engine.vocab_size
    with grpc.insecure_channel(runtime.grpc_address) as channel:
        stub = pb_grpc.RuntimeServiceStub(channel)
        sid = stub.CreateSession(pb.CreateSessionRequest()).session.session_id
        stub.AppendTokens(pb.AppendTokensRequest(session_id=sid, token_ids=PROMPT))

        def unchanged() -> None:
            info = stub.GetSessionInfo(pb.GetSessionInfoRequest(session_id=sid))
            assert info.history_tokens == len(PROMPT) and not info.generating, info
            assert stub.CreateSession(pb.CreateSessionRequest()).session.session_id  # serving

        def refused(call: Callable[[], object], code=grpc.StatusCode.INVALID_ARGUMENT) -> None:
            with pytest.raises(grpc.RpcError) as raised:
                call()
            assert raised.value.code() == code, (raised.value.code(), raised.value.details())
            assert raised.value.details(), "a refusal says why"
            unchanged()

        cases: dict[str, Callable[[], None]] = {}
        for name, ids in bad_appends(vocab).items():
            request = pb.AppendTokensRequest(session_id=sid, token_ids=ids)
            cases[f"append {name}"] = lambda r=request: refused(lambda: stub.AppendTokens(r))
        for name, kwargs in BAD_GENERATES.items():
            request = pb.GenerateRequest(session_id=sid, **kwargs)
            cases[f"generate {name}"] = lambda r=request: refused(lambda: list(stub.Generate(r)))
        eos = pb.CreateSessionRequest(eos_token_ids=[vocab])
        cases["eos id == vocab"] = lambda: refused(lambda: stub.CreateSession(eos))
        oversized = pb.AppendTokensRequest(session_id=sid, token_ids=[4000] * 2_200_000)
        cases["message over the request size limit"] = lambda: refused(
            lambda: stub.AppendTokens(oversized), grpc.StatusCode.RESOURCE_EXHAUSTED
        )
        check_all(cases)
        events = list(stub.Generate(pb.GenerateRequest(session_id=sid, max_tokens=6)))
        after = [e.token.token_id for e in events if e.WhichOneof("event") == "token"]
        stub.CloseSession(pb.CloseSessionRequest(session_id=sid))
    with kakeya.Client(runtime.grpc_address, timeout=60) as client:
        assert after == greedy_reference(client, PROMPT)


# -- SDK --------------------------------------------------------------------------------------


def test_sdk_bad_inputs_raise_typed_errors_and_keep_the_exact_history(runtime) -> None:
    vocab = runtime.engine.vocab_size
    with kakeya.Client(runtime.grpc_address, timeout=60) as client:
        session = client.create_session()
        session.append(PROMPT)

        def refused(call: Callable[[], object]) -> None:
            with pytest.raises(kakeya.InvalidArgumentError):
                call()
            info = session.info()
            assert info.history_tokens == len(PROMPT) and not info.generating, info
            assert client.healthy()

        cases: dict[str, Callable[[], None]] = {}
        for name, ids in bad_appends(vocab).items():
            cases[f"append {name}"] = lambda ids=ids: refused(lambda: session.append(ids))
        for name, kwargs in BAD_GENERATES.items():
            cases[f"generate {name}"] = lambda kw=kwargs: refused(
                lambda: list(session.generate(**kw))
            )
        cases["eos id == vocab"] = lambda: refused(
            lambda: client.create_session(eos_token_ids=[vocab])
        )
        check_all(cases)
        after = list(session.generate(6))
        session.close()
        assert after == greedy_reference(client, PROMPT)
    assert metric(runtime.engine, "session_active") == 0


# -- HTTP shim --------------------------------------------------------------------------------


def long_prompt(tokenizer) -> str:
    """Text that tokenizes to more than the append limit while staying under 1 MiB."""
    words = [f"w{i % 9973}q{i % 7}" for i in range(1500)]
    text = " ".join(words)
    assert len(tokenizer.encode(text, add_special_tokens=False)) > MAX_APPEND
    assert len(text.encode()) < 512 * 1024
    return text


def test_http_bad_inputs_are_typed_refusals_and_leave_no_session(runtime) -> None:
    engine = runtime.engine
    messages = [{"role": "user", "content": "Tell me about caches."}]
    good = {"model": engine.model_id, "messages": messages, "max_tokens": 4}
    as_json = {"content-type": "application/json"}
    nan_body = json.dumps(good).replace('"max_tokens": 4', '"max_tokens": 4, "temperature": NaN')
    big_prompt = {**good, "messages": [{"role": "user", "content": long_prompt(engine.tokenizer)}]}
    requests: dict[str, tuple[dict, int]] = {
        "malformed JSON": ({"content": b'{"model": "x", ', "headers": as_json}, 400),
        "truncated JSON": ({"content": json.dumps(good)[:-7].encode(), "headers": as_json}, 400),
        "wrong content type": (
            {"content": json.dumps(good), "headers": {"content-type": "text/plain"}},
            415,
        ),
        "no content type": ({"content": json.dumps(good).encode()}, 415),
        "oversized body": ({"content": b"[" + b"1," * 600_000 + b"1]", "headers": as_json}, 413),
        "max_tokens 0": ({"json": {**good, "max_tokens": 0}}, 400),
        "max_tokens over": ({"json": {**good, "max_tokens": MAX_GENERATE + 1}}, 400),
        "temperature negative": ({"json": {**good, "temperature": -1.0}}, 400),
        "temperature NaN": ({"content": nan_body, "headers": as_json}, 400),
        "stream max_tokens 0": ({"json": {**good, "stream": True, "max_tokens": 0}}, 400),
        "prompt over the append limit": ({"json": big_prompt}, 400),
        "messages missing": ({"json": {"model": engine.model_id}}, 422),
        "JSON not an object": ({"json": [1, 2, 3]}, 422),
    }
    with httpx.Client(base_url=runtime.http_url, timeout=60) as http:

        def refused(kwargs: dict, status: int) -> None:
            response = http.post(URL, **kwargs)
            assert response.status_code == status, (response.status_code, response.text[:300])
            error = response.json()["error"]
            assert set(error) == {"message", "type", "param", "code"} and error["message"]
            assert metric(engine, "session_active") == 0
            assert http.get("/healthz").status_code == 200

        check_all({name: lambda a=a: refused(*a) for name, a in requests.items()})
        ok = http.post(URL, json=good)
        assert ok.status_code == 200 and ok.json()["usage"]["completion_tokens"] >= 1
    # Refusals after the one-shot session was created (bad parameters, an over-long prompt)
    # closed it again: nothing is left behind.
    assert metric(engine, "session_active") == 0


# -- streams ended every way ------------------------------------------------------------------


def test_server_stop_ends_grpc_and_http_streams_and_leaks_no_session(serve_runtime) -> None:
    server = serve_runtime(max_concurrent=4)
    server._shutdown_engine = True  # as `serve` does on SIGTERM
    engine = server.engine
    client = kakeya.Client(server.grpc_address, timeout=60)
    generations = []
    for _ in range(2):
        session = client.create_session()
        session.append(PROMPT)
        generation = session.generate(4000)
        tokens = iter(generation)
        next(tokens)
        generations.append((generation, tokens))
    http = httpx.Client(base_url=server.http_url, timeout=60)
    body = {
        "model": engine.model_id,
        "messages": [{"role": "user", "content": "go on"}],
        "max_tokens": 4000,
        "stream": True,
    }
    sse = http.stream("POST", URL, json=body)
    response = sse.__enter__()
    lines = response.iter_lines()
    assert next(lines).startswith("data: ")  # running
    assert wait_until(lambda: engine.coordinator.scheduler.running == 3)
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    outcomes = []
    for generation, tokens in generations:
        try:
            for _ in tokens:
                pass
            outcomes.append(generation.stop_reason)
        except kakeya.KakeyaError as error:
            outcomes.append(type(error))
    try:
        tail = [line for line in lines if line]
    except httpx.HTTPError as error:  # the connection closing is a clear end too
        tail = [type(error).__name__]
    sse.__exit__(None, None, None)
    stopper.join(60)
    http.close()
    client.close()
    assert not stopper.is_alive()
    assert all(o in (kakeya.StopReason.SHUTDOWN, kakeya.RuntimeUnavailableError) for o in outcomes)
    assert all(g.generated_tokens < 4000 for g, _ in generations)
    assert tail[-1] == "data: [DONE]", tail[-3:]
    assert json.loads(tail[-2][6:])["error"]["code"] == "UNAVAILABLE"
    assert wait_until(lambda: engine.coordinator.scheduler.running == 0)
    assert not [t for t in threading.enumerate() if t.name == "kakeya-generate"]
    # The HTTP one-shot session was released; only the two client-owned sessions remain.
    assert metric(engine, "session_active") == 2


def test_cancel_and_vanish_mid_stream_free_slots_and_sessions(serve_runtime) -> None:
    server = serve_runtime(max_concurrent=1, max_queue=4, queue_timeout_s=30.0)
    engine = server.engine
    with kakeya.Client(server.grpc_address, timeout=60) as client:
        session = client.create_session()
        session.append(PROMPT)
        generation = session.generate(4000)
        for index, _ in enumerate(generation):
            if index == 3:
                generation.cancel()
                break
        assert generation.stop_reason in (kakeya.StopReason.CANCELLED, None)
        assert wait_until(lambda: not session.info().generating)
        assert len(greedy_reference(client, PROMPT, 2)) == 2  # the only slot is free again
        channel = grpc.insecure_channel(server.grpc_address)
        stub = pb_grpc.RuntimeServiceStub(channel)
        stream = stub.Generate(pb.GenerateRequest(session_id=session.session_id, max_tokens=4000))
        assert next(stream).WhichOneof("event") == "token"
        channel.close()  # vanishes without cancelling
        assert wait_until(lambda: not session.info().generating, 30)
        assert len(greedy_reference(client, PROMPT, 2)) == 2
        history = session.info().history_tokens
        assert len(PROMPT) < history < len(PROMPT) + 8000
        session.close()
    assert wait_until(lambda: metric(engine, "session_active") == 0)
    assert engine.coordinator.scheduler.running == 0
