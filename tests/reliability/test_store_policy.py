"""Point 7: a full session store does what the operator chose, visibly.

`reject` (the default): a create on a full store is RESOURCE_EXHAUSTED and no other
client's session is touched. `evict-idle`: the least recently used idle session makes room,
and the eviction is counted. The policy shows in every SessionInfo's server section and
in /metrics.
"""

from __future__ import annotations

import grpc
import pytest
from reliability_support import sample, scrape

import kakeya
from inference_engine.config import WhenFull
from kakeya.v1 import runtime_pb2 as pb
from kakeya.v1 import runtime_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration

PROMPT = list(range(10, 40))


def server_section(address: str, session_id: str) -> pb.ServerInfo:
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.RuntimeServiceStub(channel)
        return stub.GetSessionInfo(pb.GetSessionInfoRequest(session_id=session_id)).server


def test_a_full_store_rejects_by_default_and_no_client_loses_a_session(serve_runtime) -> None:
    server = serve_runtime(max_sessions=2)
    with (
        kakeya.Client(server.grpc_address, timeout=60) as alice,
        kakeya.Client(server.grpc_address, timeout=60) as mallory,
    ):
        first = alice.create_session()
        first.append(PROMPT)
        second = alice.create_session()
        with pytest.raises(kakeya.ResourceExhaustedError, match="--when-full reject"):
            mallory.create_session()
        assert first.info().history_tokens == len(PROMPT)  # untouched
        assert second.info().history_tokens == 0
        section = server_section(server.grpc_address, first.session_id)
        assert (section.max_sessions, section.when_full) == (2, pb.WHEN_FULL_REJECT)
        metrics = scrape(server.http_url)
        assert sample(metrics, "session_store_when_full", policy="reject") == 1
        assert sample(metrics, "session_store_when_full", policy="evict-idle") == 0
        assert sample(metrics, "session_store_capacity") == 2
        assert sample(metrics, "session_evicted_total", reason="lru") == 0
        assert (
            sample(metrics, "request_errors_total", surface="grpc", code="RESOURCE_EXHAUSTED") == 1
        )
        second.close()
        assert mallory.create_session().info().history_tokens == 0  # room again


def test_evict_idle_makes_room_and_counts_the_eviction(serve_runtime) -> None:
    server = serve_runtime(max_sessions=2, when_full=WhenFull.EVICT_IDLE)
    with kakeya.Client(server.grpc_address, timeout=60) as client:
        oldest, recent = client.create_session(), client.create_session()
        recent.append(PROMPT)
        newcomer = client.create_session()
        with pytest.raises(kakeya.SessionNotFoundError, match="evicted"):
            oldest.info()
        assert recent.info().history_tokens == len(PROMPT)
        section = server_section(server.grpc_address, newcomer.session_id)
        assert section.when_full == pb.WHEN_FULL_EVICT_IDLE
        metrics = scrape(server.http_url)
        assert sample(metrics, "session_store_when_full", policy="evict-idle") == 1
        assert sample(metrics, "session_evicted_total", reason="lru") == 1
