"""Prometheus metrics of DESIGN.md §3, one registry per engine (tests run several engines).

Only aggregates are exported: no session id ever appears in a label.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384)
_SECOND_BUCKETS = (0.001, 0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_RATE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)


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
            "generate", "Finished generations by stop reason", ["stop_reason"], registry=r
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
            "request_errors", "Requests refused, by error code", ["code"], registry=r
        )
        self.scheduler_running = Gauge("scheduler_running", "Generations running", registry=r)
        self.scheduler_queued = Gauge("scheduler_queued", "Generations waiting", registry=r)
        for kind in ("inv1", "inv2"):
            self.cache_invariant_violations_total.labels(kind=kind)
        for reason in ("ttl", "lru"):
            self.session_evicted_total.labels(reason=reason)
