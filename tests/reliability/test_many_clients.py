"""Many clients, one runtime (issue 25): identities, fair shares, and what each client sees.

Each test runs real servers on loopback with several named bearer tokens (each its own
identity) and checks what the clients saw against the per-identity metrics.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from reliability_support import sample, scrape

import kakeya
from inference_engine.config import WhenFull
from inference_engine.tenancy import TenancyConfig

pytestmark = pytest.mark.integration

PROMPT = list(range(10, 40))
TOKENS = (("alice", "tok-alice"), ("bob", "tok-bob"), ("carol", "tok-carol"))
SECRET = dict(TOKENS)
URL = "/v1/chat/completions"


def client(server, name: str) -> kakeya.Client:
    return kakeya.Client(server.grpc_address, token=SECRET[name], timeout=60)


def chat(server, name: str, **extra) -> httpx.Response:
    body = {
        "model": server.engine.model_id,
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 4,
        **extra,
    }
    headers = {"Authorization": f"Bearer {SECRET[name]}"}
    return httpx.post(server.http_url + URL, json=body, headers=headers, timeout=60)


def test_a_burst_by_one_identity_neither_refuses_nor_evicts_anothers_sessions(
    serve_runtime,
) -> None:
    server = serve_runtime(max_sessions=6, when_full=WhenFull.EVICT_IDLE, tokens=TOKENS)
    with client(server, "alice") as alice, client(server, "bob") as bob:
        kept = [bob.create_session() for _ in range(2)]
        for session in kept:
            session.append(PROMPT)
        burst = [alice.create_session() for _ in range(20)]  # 0.x s: far past the store
        for session in kept:
            assert session.info().history_tokens == len(PROMPT)  # untouched
        assert bob.create_session().info().history_tokens == 0  # and bob may still create
        evicted = []
        for session in burst:
            try:
                session.info()
            except kakeya.SessionNotFoundError as gone:
                evicted.append(gone)
        assert all("evicted" in error.message for error in evicted)
        metrics = scrape(server.http_url, SECRET["alice"])

    def evictions(identity: str) -> float:
        return sum(
            sample(metrics, "tenant_sessions_evicted_total", identity=identity, reason=reason)
            for reason in ("lru", "over_share", "ttl")
        )

    assert evictions("token:alice") == len(evicted) > 0  # every eviction counted, to its owner
    assert evictions("token:bob") == 0
    assert sample(metrics, "tenant_sessions", identity="token:bob") == 3
    assert sample(metrics, "tenant_sessions", identity="token:alice") == 20 - len(evicted)


def test_a_full_store_evicts_only_from_identities_over_their_share(serve_runtime) -> None:
    server = serve_runtime(max_sessions=4, when_full=WhenFull.EVICT_IDLE, tokens=TOKENS)
    alice, bob, carol = (client(server, name) for name in ("alice", "bob", "carol"))
    with alice, bob, carol:
        bobs = bob.create_session()
        hog = [alice.create_session() for _ in range(3)]
        carol.create_session()  # store full: alice holds 3 > 4/3 rounded up
        with pytest.raises(kakeya.SessionNotFoundError, match="more than its share"):
            hog[0].info()
        assert bobs.info().history_tokens == 0
        metrics = scrape(server.http_url, SECRET["bob"])
    label = {"identity": "token:alice", "reason": "over_share"}
    assert sample(metrics, "tenant_sessions_evicted_total", **label) == 1
    assert sample(metrics, "session_evicted_total", reason="over_share") == 1


def test_a_quota_hit_is_resource_exhausted_with_a_retry_after_for_that_identity_only(
    serve_runtime,
) -> None:
    quota = TenancyConfig(max_sessions_per_identity=2)
    server = serve_runtime(max_sessions=8, tenancy=quota, tokens=TOKENS)
    with client(server, "alice") as alice, client(server, "bob") as bob:
        alice.create_session()
        alice.create_session()
        with pytest.raises(kakeya.ResourceExhaustedError, match="quota") as refused:
            alice.create_session()
        assert refused.value.retry_after_s is not None and refused.value.retry_after_s > 0
        assert bob.create_session()
        metrics = scrape(server.http_url, SECRET["bob"])
    assert sample(metrics, "tenant_refusals_total", identity="token:alice", reason="quota") == 1
    assert sample(metrics, "tenant_refusals_total", identity="token:bob", reason="quota") == 0


def test_a_burst_under_reject_stops_at_the_identitys_share(serve_runtime) -> None:
    server = serve_runtime(max_sessions=6, tokens=TOKENS)  # 3 named tokens: 2 sessions each
    alice, bob, carol = (client(server, name) for name in ("alice", "bob", "carol"))
    with alice, bob, carol:
        made, refused = [], []
        for _ in range(10):
            try:
                made.append(alice.create_session())
            except kakeya.ResourceExhaustedError as error:
                refused.append(error)
        assert len(made) == 2 and len(refused) == 8
        assert all("its share" in error.message and error.retry_after_s for error in refused)
        others = [who.create_session() for who in (bob, carol) for _ in range(2)]
        assert all(session.info().history_tokens == 0 for session in [*made, *others])
        metrics = scrape(server.http_url, SECRET["bob"])
    assert sample(metrics, "tenant_refusals_total", identity="token:alice", reason="quota") == 8
    assert sample(metrics, "tenant_refusals_total", identity="token:bob", reason="quota") == 0


def test_the_shim_answers_429_with_retry_after_when_the_store_is_full(serve_runtime) -> None:
    server = serve_runtime(max_sessions=2, tokens=TOKENS, tenancy=TenancyConfig())
    with client(server, "alice") as alice:
        held = [alice.create_session() for _ in range(2)]
        refused = chat(server, "bob")
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["error"]["code"] == "RESOURCE_EXHAUSTED"
        held[0].close()
        assert chat(server, "bob").status_code == 200


def test_the_shim_never_answers_404_for_a_full_store_under_evict_idle(serve_runtime) -> None:
    """Before: a shim request's own fresh session was evicted (idle between create and
    generate) by the next request, and the request answered 404."""
    server = serve_runtime(max_sessions=2, when_full=WhenFull.EVICT_IDLE, tokens=TOKENS)
    names = ["alice", "bob", "carol"] * 8
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda name: chat(server, name).status_code, names))
    assert 404 not in statuses, statuses
    assert set(statuses) <= {200, 429}, statuses


class Reader:
    """Reads one generation on a thread of its own, keeping every token."""

    def __init__(self, session: kakeya.Session, max_tokens: int) -> None:
        self.tokens: list[int] = []
        self.first = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self._session, self._max_tokens = session, max_tokens
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for token in self._session.generate(self._max_tokens):
                self.tokens.append(token)
                self.first.set()
                if self.stop.is_set():
                    break
        except BaseException as error:  # reported by the test
            self.error = error
            self.first.set()

    def end(self) -> list[int]:
        self.stop.set()
        self.thread.join(60)
        assert self.error is None, self.error
        return self.tokens


def solo_tokens(server, name: str, count: int) -> list[int]:
    with client(server, name) as solo:
        session = solo.create_session()
        session.append(PROMPT)
        return list(session.generate(count))


def test_a_victim_starts_within_a_step_bound_of_a_hogs_four_long_generations(
    serve_runtime,
) -> None:
    fair = TenancyConfig(preempt_after_tokens=8)
    server = serve_runtime(
        max_concurrent=4, max_queue=16, queue_timeout_s=5.0, tenancy=fair, tokens=TOKENS
    )
    with client(server, "alice") as alice, client(server, "bob") as bob:
        hogs = []
        for _ in range(4):
            session = alice.create_session()
            session.append(PROMPT)
            hogs.append(Reader(session, 4000))
        for hog in hogs:
            assert hog.first.wait(30)
        while min(len(hog.tokens) for hog in hogs) < 16:  # every lane held past the bound
            time.sleep(0.01)
        victim = bob.create_session()
        victim.append(PROMPT)
        started = time.perf_counter()
        reader = Reader(victim, 40)
        assert reader.first.wait(30) and reader.error is None, reader.error
        ttft_s = time.perf_counter() - started
        reader.thread.join(60)
        views = []
        while len(views) < 20:  # while the hog's four and the victim share the lanes
            views.append(scrape(server.http_url, SECRET["bob"]))
            if reader.thread.is_alive() is False and len(views) > 3:
                break
        victim_tokens = reader.end()
        hog_tokens = [hog.end() for hog in hogs]
        metrics = scrape(server.http_url, SECRET["bob"])
    assert ttft_s < 2.5, ttft_s  # without preemption: the queue timeout (5 s), refused
    assert sample(metrics, "tenant_preemptions_total", identity="token:alice") >= 1
    for view in views:  # each generation counted once, running or waiting, never both
        running = sample(view, "scheduler_running")
        alice_now = [
            sample(view, f"tenant_generations_{kind}", identity="token:alice")
            for kind in ("running", "queued")
        ]
        assert running <= 4 and sum(alice_now) in (0, 4), alice_now
    # Batch invariance across preemption: every stream equals the same prompt run alone.
    assert victim_tokens == solo_tokens(server, "bob", len(victim_tokens))
    longest = max(hog_tokens, key=len)
    reference = solo_tokens(server, "carol", len(longest))
    for tokens in hog_tokens:
        assert tokens == reference[: len(tokens)]


def test_per_identity_token_counters_match_what_each_client_saw(serve_runtime) -> None:
    server = serve_runtime(tokens=TOKENS)
    seen: dict[str, list[int]] = {"alice": [0, 0], "bob": [0, 0]}
    for name, turns in (("alice", 3), ("bob", 1)):
        with client(server, name) as sdk, sdk.create_session() as session:
            for turn in range(turns):
                session.append(PROMPT[: 10 + turn])
                generation = session.generate(5 + turn)
                list(generation)
                seen[name][0] += generation.prefill_tokens
                seen[name][1] += generation.generated_tokens
    metrics = scrape(server.http_url, SECRET["bob"])
    for name, (prefill, decode) in seen.items():
        identity = f"token:{name}"
        assert sample(metrics, "tenant_tokens_total", identity=identity, kind="prefill") == prefill
        assert sample(metrics, "tenant_tokens_total", identity=identity, kind="decode") == decode
    assert seen["alice"][1] == 5 + 6 + 7


def test_tokens_per_minute_refuse_one_identity_with_a_retry_after(serve_runtime) -> None:
    budget = TenancyConfig(tokens_per_minute_per_identity=60)
    server = serve_runtime(tenancy=budget, tokens=TOKENS)
    with client(server, "alice") as alice, client(server, "bob") as bob:
        session = alice.create_session()
        session.append(PROMPT)
        list(session.generate(40))  # 30 prefilled + 40 decoded: past the minute's 60
        session.append(PROMPT[:2])
        with pytest.raises(kakeya.ResourceExhaustedError, match="tokens per minute") as refused:
            list(session.generate(4))
        assert refused.value.retry_after_s is not None and 0 < refused.value.retry_after_s <= 60
        other = bob.create_session()
        other.append(PROMPT[:5])
        assert len(list(other.generate(4))) == 4  # bob's minute is his own
        refused_http = chat(server, "alice")
        assert refused_http.status_code == 429 and int(refused_http.headers["Retry-After"]) >= 1
