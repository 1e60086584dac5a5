"""Load on loopback: 16 SDK sessions x 20 turns, 200 HTTP completions with 10% hang-ups.

Afterwards: no unexpected errors, `session_active` back to 0, threads and server-loop tasks
back to their warm baseline, and resident memory growth under `RSS_GROWTH_BOUND_BYTES`.
Throughput and tail latency are printed and written to `test-artifacts/load.json`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from reliability_support import loop_tasks, metric, wait_until

import kakeya

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SESSIONS = 16
TURNS = 20
APPEND_TOKENS = 8
GENERATE_TOKENS = 4
COMPLETIONS = 200
DISCONNECT_EVERY = 10  # every 10th client hangs up mid-stream: 10%
HTTP_WORKERS = 16
# After warm-up the model, caches and pools exist; a load run that grows RSS by more than
# this is holding on to per-session or per-request state.
RSS_GROWTH_BOUND_BYTES = 256 * 1024 * 1024
# asyncio.to_thread runs on the loop's default executor, and the engine has two pools of its
# own (admission waits, blocking work); their idle workers stay by design, so they are
# bounded, not leaked, and counted apart, each against its own bound.
POOL_PREFIXES = ("asyncio_", "kakeya-admit", "kakeya-work")
DEFAULT_EXECUTOR_MAX = min(32, (os.cpu_count() or 1) + 4)
URL = "/v1/chat/completions"


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p95/p99 (nearest rank) and the maximum, in milliseconds."""
    ordered = sorted(samples)

    def rank(q: float) -> float:
        index = min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))
        return round(ordered[index] * 1000, 2)

    return {"p50_ms": rank(0.50), "p95_ms": rank(0.95), "p99_ms": rank(0.99), "max_ms": rank(1.0)}


def rss_bytes() -> int:
    return psutil.Process().memory_info().rss


def own_threads() -> list[str]:
    """Names of live threads outside the bounded pools."""
    return sorted(t.name for t in threading.enumerate() if not t.name.startswith(POOL_PREFIXES))


def pool_threads(prefix: str) -> int:
    return sum(t.name.startswith(prefix) for t in threading.enumerate())


def pool_bounds(engine) -> dict[str, int]:
    """Each pool's most workers: the default executor's, and the engine's two."""
    from inference_engine.engine import WORK_THREADS

    s = engine.config.scheduler
    return {
        "asyncio_": DEFAULT_EXECUTOR_MAX,
        "kakeya-admit": s.max_queue + s.max_concurrent + 1,
        "kakeya-work": WORK_THREADS,
    }


def record(artifacts_dir: Path, key: str, figures: dict[str, Any]) -> None:
    """Merge one load figure set into test-artifacts/load.json and print it."""
    path = artifacts_dir / "load.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    data[key] = figures
    path.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    print(f"\nload {key}: {json.dumps(figures, sort_keys=True)}")


class Baseline:
    """Threads, loop tasks and RSS of a warm server, checked again after the load."""

    def __init__(self, server) -> None:
        self.server = server
        self.threads = own_threads()
        self.tasks = loop_tasks(server)
        self.rss = rss_bytes()

    def check(self) -> dict[str, Any]:
        engine = self.server.engine
        assert wait_until(lambda: metric(engine, "session_active") == 0, 30)
        assert wait_until(lambda: own_threads() == self.threads, 30), (
            f"threads before {self.threads}, after {own_threads()}"
        )
        for prefix, bound in pool_bounds(engine).items():
            assert pool_threads(prefix) <= bound, prefix
        assert wait_until(lambda: loop_tasks(self.server) <= self.tasks, 30), (
            f"server loop tasks: before {self.tasks}, after {loop_tasks(self.server)}"
        )
        growth = rss_bytes() - self.rss
        assert growth < RSS_GROWTH_BOUND_BYTES, f"RSS grew {growth / 2**20:.1f} MiB"
        return {
            "rss_growth_mib": round(growth / 2**20, 1),
            "rss_bound_mib": RSS_GROWTH_BOUND_BYTES // 2**20,
            "threads_after": len(own_threads()),
            "loop_tasks_after": loop_tasks(self.server),
        }


def no_error_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]


def run_all(worker: Callable[[int], Any], count: int, workers: int) -> tuple[list[Any], float]:
    """Runs worker(i) for i < count on a pool; returns results (or exceptions) and wall time."""
    start = threading.Barrier(min(workers, count))

    def guarded(index: int) -> Any:
        try:
            if index < workers:
                start.wait(30)
            return worker(index)
        except BaseException as error:  # collected and asserted on by the caller
            return error

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="load") as pool:
        results = list(pool.map(guarded, range(count)))
    return results, time.perf_counter() - began


# -- SDK: 16 sessions x 20 turns -------------------------------------------------------------


def sdk_turns(client: kakeya.Client, index: int, vocab: int, turns: int = TURNS) -> list[float]:
    """One session's turns (append 8, generate 4 each); returns per-turn latencies."""
    latencies = []
    with client.create_session(label=f"load-{index}") as session:
        for turn in range(turns):
            ids = [(index * 131 + turn * 17 + k * 7) % (vocab - 10) + 5 for k in range(8)]
            began = time.perf_counter()
            session.append(ids)
            generation = session.generate(GENERATE_TOKENS)
            tokens = list(generation)
            latencies.append(time.perf_counter() - began)
            assert len(tokens) == GENERATE_TOKENS, (index, turn, tokens)
            assert generation.stop_reason is kakeya.StopReason.MAX_TOKENS
        info = session.info()
        assert info.history_tokens == turns * (APPEND_TOKENS + GENERATE_TOKENS)
    return latencies


def test_sixteen_sdk_sessions_of_twenty_turns(serve_runtime, artifacts_dir, caplog) -> None:
    caplog.set_level(logging.WARNING)
    server = serve_runtime(http=False, max_concurrent=4, max_queue=64)
    vocab = server.engine.vocab_size
    with kakeya.Client(server.grpc_address, timeout=120) as client:
        run_all(lambda i: sdk_turns(client, i, vocab, turns=2), SESSIONS, SESSIONS)  # warm-up
    baseline = Baseline(server)
    with kakeya.Client(server.grpc_address, timeout=120) as client:
        results, wall = run_all(lambda i: sdk_turns(client, i, vocab), SESSIONS, SESSIONS)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == [], errors[:3]
    assert no_error_logs(caplog) == []
    latencies = [t for r in results for t in r]
    assert len(latencies) == SESSIONS * TURNS
    figures = {
        "sessions": SESSIONS,
        "turns": TURNS,
        "append_tokens": APPEND_TOKENS,
        "generate_tokens": GENERATE_TOKENS,
        "wall_s": round(wall, 3),
        "turns_per_s": round(len(latencies) / wall, 2),
        "turn_latency": percentiles(latencies),
        "sessions_closed": metric(server.engine, "session_total", outcome="closed"),
    }
    figures.update(baseline.check())
    record(artifacts_dir, "sdk_sessions", figures)


# -- HTTP: 200 completions, 10% of clients vanish mid-stream ---------------------------------


def http_completion(url: str, index: int, model: str) -> tuple[str, float]:
    """One completion on its own connection; every 10th client hangs up mid-stream."""
    messages = [{"role": "user", "content": f"Request {index}: say something about caches."}]
    body = {"model": model, "messages": messages, "max_tokens": 6}
    began = time.perf_counter()
    with httpx.Client(base_url=url, timeout=120) as client:
        if index % DISCONNECT_EVERY == DISCONNECT_EVERY - 1:
            body.update(stream=True, max_tokens=400)
            with client.stream("POST", URL, json=body) as response:
                assert response.status_code == 200
                lines = response.iter_lines()
                assert next(lines).startswith("data: ")
            return "disconnected", time.perf_counter() - began
        if index % 2:
            with client.stream("POST", URL, json={**body, "stream": True}) as response:
                raw = response.read()
            assert response.status_code == 200 and raw.endswith(b"data: [DONE]\n\n"), raw[-200:]
            assert b'"error"' not in raw
            return "stream", time.perf_counter() - began
        response = client.post(URL, json=body)
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["finish_reason"] in ("length", "stop")
        return "json", time.perf_counter() - began


def test_two_hundred_http_completions_with_clients_vanishing(
    serve_runtime, artifacts_dir, caplog
) -> None:
    caplog.set_level(logging.WARNING)
    server = serve_runtime(max_concurrent=4, max_queue=256)
    model = server.engine.model_id
    run_all(lambda i: http_completion(server.http_url, i, model), HTTP_WORKERS, HTTP_WORKERS)
    baseline = Baseline(server)
    results, wall = run_all(
        lambda i: http_completion(server.http_url, i, model), COMPLETIONS, HTTP_WORKERS
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == [], errors[:3]
    assert no_error_logs(caplog) == []
    kinds = [kind for kind, _ in results]
    assert kinds.count("disconnected") == COMPLETIONS // DISCONNECT_EVERY
    completed = [latency for kind, latency in results if kind != "disconnected"]
    figures = {
        "completions": COMPLETIONS,
        "disconnected": kinds.count("disconnected"),
        "workers": HTTP_WORKERS,
        "wall_s": round(wall, 3),
        "completions_per_s": round(len(completed) / wall, 2),
        "latency": percentiles(completed),
    }
    figures.update(baseline.check())
    record(artifacts_dir, "http_completions", figures)
