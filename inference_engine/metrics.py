"""Prometheus metrics (docs/protocol.md), one registry per engine (tests run several engines).

Only aggregates are exported: no session id ever appears in a label. Gauges that mirror
another object's state (the scheduler's running and queued counts) are read from it at
scrape time, so they cannot drift from what they describe.
"""

from __future__ import annotations

from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from inference_engine.config import StoreConfig, WhenFull
from inference_engine.errors import ErrorCode

SURFACES = ("grpc", "http")
# Generation outcomes: the stop reasons, plus FAILED when a generation ended in an error.
GENERATE_OUTCOMES = ("MAX_TOKENS", "EOS", "CANCELLED", "SHUTDOWN", "FAILED")


class Admission(Protocol):
    """What the metrics read from the scheduler at scrape time."""

    @property
    def running(self) -> int: ...

    @property
    def queued(self) -> int: ...


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
        for reason in ("ttl", "lru"):
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

    def count_error(self, surface: str, code: ErrorCode) -> None:
        """One request answered with `code` on `surface` ("grpc" or "http")."""
        self.request_errors_total.labels(surface=surface, code=code.value).inc()
