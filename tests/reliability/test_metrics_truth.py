"""Point 8: /metrics tells the truth. Each test drives a condition on the real servers and
reads the exported text: generations waiting in the queue, errors by surface and code, and
how generations ended (MAX_TOKENS, CANCELLED, SHUTDOWN, FAILED are told apart).
"""

from __future__ import annotations

import threading

import grpc
import httpx
import pytest
from reliability_support import sample, scrape, wait_until

import kakeya
from kakeya.v1 import runtime_pb2 as pb
from kakeya.v1 import runtime_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration

PROMPT = list(range(10, 40))
LONG = 4000


def running_generation(client: kakeya.Client, max_tokens: int = LONG):
    session = client.create_session()
    session.append(PROMPT)
    generation = session.generate(max_tokens)
    tokens = iter(generation)
    next(tokens)
    return session, generation, tokens


def test_queued_and_running_gauges_follow_the_scheduler(serve_runtime) -> None:
    server = serve_runtime(max_concurrent=1, max_queue=8)
    waiting = 3
    with kakeya.Client(server.grpc_address, timeout=120) as client:
        _, holder, _ = running_generation(client)
        sessions = [client.create_session() for _ in range(waiting)]
        for session in sessions:
            session.append(PROMPT)
        threads = [
            threading.Thread(target=lambda s=s: list(s.generate(2)), daemon=True) for s in sessions
        ]
        for thread in threads:
            thread.start()
        assert wait_until(
            lambda: sample(scrape(server.http_url), "scheduler_queued") == waiting, 30
        )
        assert sample(scrape(server.http_url), "scheduler_running") == 1
        holder.cancel()
        for thread in threads:
            thread.join(60)
        metrics = scrape(server.http_url)
        assert (sample(metrics, "scheduler_queued"), sample(metrics, "scheduler_running")) == (0, 0)


def test_request_errors_are_counted_by_surface_and_code(serve_runtime) -> None:
    server = serve_runtime(max_concurrent=1, max_queue=0, token="metrics-token")
    auth = (("authorization", "Bearer metrics-token"),)
    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = pb_grpc.RuntimeServiceStub(channel)
        sid = stub.CreateSession(pb.CreateSessionRequest(), metadata=auth).session.session_id
        stub.AppendTokens(pb.AppendTokensRequest(session_id=sid, token_ids=PROMPT), metadata=auth)
        refusals = {
            "INVALID_ARGUMENT": lambda: stub.AppendTokens(
                pb.AppendTokensRequest(session_id=sid, token_ids=[-1]), metadata=auth
            ),
            "NOT_FOUND": lambda: stub.GetSessionInfo(
                pb.GetSessionInfoRequest(session_id="sess_gone"), metadata=auth
            ),
            "UNAUTHENTICATED": lambda: stub.CreateSession(pb.CreateSessionRequest()),
        }
        for call in refusals.values():
            with pytest.raises(grpc.RpcError):
                call()
    with kakeya.Client(server.grpc_address, token="metrics-token", timeout=60) as client:
        session, generation, _ = running_generation(client)  # holds the only slot
        with pytest.raises(kakeya.FailedPreconditionError):  # a second reader of the session
            list(client.session(session.session_id).generate(2))
        other = client.create_session()
        other.append(PROMPT)
        with pytest.raises(kakeya.ResourceExhaustedError):
            list(other.generate(2))  # no slot, no queue
        generation.cancel()
    headers = {"Authorization": "Bearer metrics-token"}
    with httpx.Client(base_url=server.http_url, headers=headers, timeout=60) as http:
        assert http.post("/v1/chat/completions", json={"model": 5}).status_code == 422
        assert http.get("/v1/models", headers={"Authorization": "Bearer no"}).status_code == 401
    metrics = scrape(server.http_url, token="metrics-token")
    grpc_counts = {
        code: sample(metrics, "request_errors_total", surface="grpc", code=code)
        for code in (*refusals, "FAILED_PRECONDITION", "RESOURCE_EXHAUSTED", "INTERNAL")
    }
    assert grpc_counts == {
        "INVALID_ARGUMENT": 1,
        "NOT_FOUND": 1,
        "UNAUTHENTICATED": 1,
        "FAILED_PRECONDITION": 1,
        "RESOURCE_EXHAUSTED": 1,
        "INTERNAL": 0,
    }
    assert sample(metrics, "request_errors_total", surface="http", code="INVALID_ARGUMENT") == 1
    assert sample(metrics, "request_errors_total", surface="http", code="UNAUTHENTICATED") == 1


def test_generation_outcomes_are_told_apart(serve_runtime) -> None:
    server = serve_runtime()
    engine = server.engine
    with kakeya.Client(server.grpc_address, timeout=60) as client:
        finished = client.create_session()
        finished.append(PROMPT)
        assert len(list(finished.generate(3))) == 3  # MAX_TOKENS
        _, cancelled, _ = running_generation(client)
        cancelled.cancel()  # CANCELLED
        broken = client.create_session()
        broken.append(PROMPT)
        list(broken.generate(2))
        state = engine.coordinator.store.get(broken.session_id).state
        state.cache.layers[0].writes += 1  # a cache bug: INV-1 fails the next forward
        with pytest.raises(kakeya.FailedPreconditionError, match="inv1"):
            list(broken.generate(2))  # FAILED
        assert wait_until(lambda: engine.coordinator.scheduler.running == 0)
        _, stopping, tokens = running_generation(client)
        engine.shutdown()  # what `serve` does first on SIGTERM: SHUTDOWN
        for _ in tokens:
            pass
        assert stopping.stop_reason is kakeya.StopReason.SHUTDOWN
    assert wait_until(lambda: engine.coordinator.scheduler.running == 0)
    metrics = scrape(server.http_url)
    outcomes = {
        reason: sample(metrics, "generate_total", stop_reason=reason)
        for reason in ("MAX_TOKENS", "EOS", "CANCELLED", "SHUTDOWN", "FAILED")
    }
    assert outcomes == {"MAX_TOKENS": 2, "EOS": 0, "CANCELLED": 1, "SHUTDOWN": 1, "FAILED": 1}
    assert sample(metrics, "cache_invariant_violations_total", kind="inv1") == 1
