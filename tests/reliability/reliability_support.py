"""Helpers shared by the reliability tests (pytest puts this folder on sys.path)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
EVIDENCE_FIXTURES = REPO / "tests" / "kakeya_evidence" / "fixtures"
ARTIFACTS = REPO / "test-artifacts"


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Polls a condition the system reaches asynchronously, up to a deadline."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        pause.wait(0.02)
    return predicate()


def metric(engine, name: str, **labels) -> float:
    """One sample from the engine's Prometheus registry (0 when absent)."""
    value = engine.metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


def loop_tasks(server) -> int:
    """How many asyncio tasks the background server's loop holds right now."""

    async def count() -> int:
        return len(asyncio.all_tasks()) - 1  # less this probe

    return asyncio.run_coroutine_threadsafe(count(), server._loop).result(10)


def scrape(http_url: str, token: str | None = None) -> dict[tuple[str, tuple], float]:
    """Every sample of GET /metrics, keyed by (name, sorted labels)."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    text = httpx.get(f"{http_url}/metrics", headers=headers, timeout=30).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: dict[tuple[str, tuple], float], name: str, **labels: str) -> float:
    """One value from `scrape` (0 when absent)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
