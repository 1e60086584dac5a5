"""Prometheus metrics (docs/protocol.md), one registry per engine (tests run several engines).

Only aggregates are exported: no session id ever appears in a label. Gauges that mirror
another object's state (the scheduler's running and queued counts) are read from it at
scrape time, so they cannot drift from what they describe.

Per identity (`tenancy.Identity`: a bearer token's name, or a peer address; never a
token): sessions held, generations running and waiting (read at scrape time), and
counters of evictions, refusals and tokens. `tenant_*` families carry an `identity` label.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from inference_engine.config import StoreConfig, WhenFull
from inference_engine.errors import ErrorCode
from inference_engine.tenancy import Identity

SURFACES = ("grpc", "http")
# Generation outcomes: the stop reasons, plus FAILED when a generation ended in an error.
GENERATE_OUTCOMES = ("MAX_TOKENS", "EOS", "CANCELLED", "SHUTDOWN", "FAILED")


class Admission(Protocol):
    """What the metrics read from the scheduler at scrape time."""

    @property
    def running(self) -> int: ...

    @property
    def queued(self) -> int: ...


class TenantAdmission(Protocol):
    def by_identity(self) -> dict[Identity, tuple[int, int]]: ...


class TenantStore(Protocol):
    capacity: int
    session_bytes: int

    @property
    def admitted_bytes(self) -> int: ...

    def owners(self) -> list[Identity]: ...


class TenantGauges(Collector):
    """Per-identity sessions, running and queued generations, read at scrape time."""

    def __init__(self, scheduler: TenantAdmission, store: TenantStore) -> None:
        self._scheduler = scheduler
        self._store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        sessions = GaugeMetricFamily(
            "tenant_sessions", "Live sessions by owner identity", labels=["identity"]
        )
        running = GaugeMetricFamily(
            "tenant_generations_running", "Generations running by identity", labels=["identity"]
        )
        queued = GaugeMetricFamily(
            "tenant_generations_queued", "Generations waiting by identity", labels=["identity"]
        )
        for identity, held in sorted(Tally(self._store.owners()).items()):
            sessions.add_metric([identity.name], held)
        for identity, (run, wait) in sorted(self._scheduler.by_identity().items()):
            running.add_metric([identity.name], run)
            queued.add_metric([identity.name], wait)
        yield sessions
        yield running
        yield queued


_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384)
_SECOND_BUCKETS = (0.001, 0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_RATE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class RuntimeMetrics:
    """The runtime's counters, gauges and histograms, registered on `self.registry`."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.session_active = Gauge("session_active", "Live sessions", registry=r)
        self.session_total = Counter(
            "session",
            "Sessions by outcome (created, closed, evicted, failed)",
            ["outcome"],
            registry=r,
        )
        self.session_kv_live_bytes = Gauge(
            "session_kv_live_bytes", "KV bytes held by live sessions", registry=r
        )
        self.session_evicted_total = Counter(
            "session_evicted", "Sessions evicted, by reason (ttl, lru)", ["reason"], registry=r
        )
        self.session_history_tokens = Gauge(
            "session_history_tokens", "History tokens across live sessions", registry=r
        )
        self.generate_prefill_tokens = Histogram(
            "generate_prefill_tokens",
            "Tokens prefilled per generate",
            buckets=_TOKEN_BUCKETS,
            registry=r,
        )
        self.generate_prefill_duration_seconds = Histogram(
            "generate_prefill_duration_seconds",
            "Prefill time per generate",
            buckets=_SECOND_BUCKETS,
            registry=r,
        )
        self.generate_total = Counter(
            "generate",
            "Finished generations by stop reason (FAILED: ended in an error)",
            ["stop_reason"],
            registry=r,
        )
        self.generate_decode_tokens_total = Counter(
            "generate_decode_tokens", "Tokens generated", registry=r
        )
        self.generate_decode_tokens_per_second = Histogram(
            "generate_decode_tokens_per_second",
            "Decode throughput per generate",
            buckets=_RATE_BUCKETS,
            registry=r,
        )
        self.cache_invariant_violations_total = Counter(
            "cache_invariant_violations", "KV cache invariant violations", ["kind"], registry=r
        )
        self.request_errors_total = Counter(
            "request_errors",
            "Requests answered with an error, by surface and error code",
            ["surface", "code"],
            registry=r,
        )
        self.scheduler_running = Gauge("scheduler_running", "Generations running", registry=r)
        self.decode_lanes = Gauge(
            "decode_lanes",
            "Rows every decode step runs (padding included); 0: exactly its sessions' rows",
            registry=r,
        )
        self.decode_batch_sessions = Histogram(
            "decode_batch_sessions",
            "Sessions stepped together per decode step",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.scheduler_queued = Gauge("scheduler_queued", "Generations waiting", registry=r)
        self.session_store_capacity = Gauge(
            "session_store_capacity", "Most sessions the store holds", registry=r
        )
        self.session_store_bytes = Gauge(
            "session_store_bytes",
            "Bytes the live sessions may hold (KV buffer bound plus overhead, per session)",
            registry=r,
        )
        self.session_store_session_bytes = Gauge(
            "session_store_session_bytes",
            "What the store counts per session: KV buffer bound plus overhead",
            registry=r,
        )
        self.tenant_sessions_evicted_total = Counter(
            "tenant_sessions_evicted",
            "Sessions evicted, by owner identity and reason (ttl, lru, over_share)",
            ["identity", "reason"],
            registry=r,
        )
        self.tenant_refusals_total = Counter(
            "tenant_refusals",
            "RESOURCE_EXHAUSTED answers by identity and reason (store_full, quota, "
            "queue_full, queue_timeout, tokens_per_minute)",
            ["identity", "reason"],
            registry=r,
        )
        self.tenant_tokens_total = Counter(
            "tenant_tokens",
            "Tokens used by finished generations, by owner identity and kind (prefill, decode)",
            ["identity", "kind"],
            registry=r,
        )
        self.tenant_preemptions_total = Counter(
            "tenant_preemptions",
            "Generations that gave their lane to another identity at a step boundary",
            ["identity"],
            registry=r,
        )
        self.session_store_when_full = Gauge(
            "session_store_when_full",
            "The store's full policy (1 on the active one): reject or evict-idle",
            ["policy"],
            registry=r,
        )
        self._zero_labels()

    def _zero_labels(self) -> None:
        """Every known label set exported from the start, at 0, so rates have a baseline."""
        for kind in ("inv1", "inv2"):
            self.cache_invariant_violations_total.labels(kind=kind)
        for reason in ("ttl", "lru", "over_share"):
            self.session_evicted_total.labels(reason=reason)
        for outcome in GENERATE_OUTCOMES:
            self.generate_total.labels(stop_reason=outcome)
        for surface in SURFACES:
            for code in ErrorCode:
                self.request_errors_total.labels(surface=surface, code=code.value)

    def watch(self, scheduler: Admission, store: StoreConfig) -> None:
        """Reads the scheduler's gauges from it at scrape time; exports the store policy."""
        self.scheduler_running.set_function(lambda: scheduler.running)
        self.scheduler_queued.set_function(lambda: scheduler.queued)
        self.session_store_capacity.set(store.max_sessions)
        for policy in WhenFull:
            self.session_store_when_full.labels(policy=policy.value).set(
                1 if policy is store.when_full else 0
            )

    def watch_tenants(self, scheduler: TenantAdmission, store: TenantStore) -> None:
        """Per-identity gauges and the store's byte figures, read at scrape time."""
        self.registry.register(TenantGauges(scheduler, store))
        self.session_store_bytes.set_function(lambda: store.admitted_bytes)
        self.session_store_session_bytes.set(store.session_bytes)
        self.session_store_capacity.set(store.capacity)

    def count_eviction(self, identity: Identity, reason: str) -> None:
        self.tenant_sessions_evicted_total.labels(identity=identity.name, reason=reason).inc()

    def count_refusal(self, identity: Identity, reason: str) -> None:
        self.tenant_refusals_total.labels(identity=identity.name, reason=reason).inc()

    def count_tokens(self, identity: Identity, prefill: int, decode: int) -> None:
        self.tenant_tokens_total.labels(identity=identity.name, kind="prefill").inc(prefill)
        self.tenant_tokens_total.labels(identity=identity.name, kind="decode").inc(decode)

    def count_preemption(self, identity: Identity) -> None:
        self.tenant_preemptions_total.labels(identity=identity.name).inc()

    def count_error(self, surface: str, code: ErrorCode) -> None:
        """One request answered with `code` on `surface` ("grpc" or "http")."""
        self.request_errors_total.labels(surface=surface, code=code.value).inc()
