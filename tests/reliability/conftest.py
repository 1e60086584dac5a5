"""Fixtures for the reliability and security suite: real model, real servers, loopback only.

pytest does not share `tests/integration/conftest.py` with sibling folders, so the few
fixtures needed here are restated (same shapes: `make_engine`, `serve_runtime`, `runtime`).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path

import pytest
from reliability_support import ARTIFACTS

from inference_engine.config import (
    CacheConfig,
    ModelConfig,
    RuntimeConfig,
    SchedulerConfig,
    StoreConfig,
)

# The fixture suites hang, crash and garble their JUnit on purpose; only the pipeline runs them.
collect_ignore = ["fixtures"]


@pytest.fixture(scope="session")
def model_config() -> ModelConfig:
    return ModelConfig(
        model_id=os.environ.get("KAKEYA_MODEL", "kakeya/tiny-qwen3"),
        device=os.environ.get("KAKEYA_DEVICE", "auto"),
        dtype=os.environ.get("KAKEYA_DTYPE", "auto"),
    )


@pytest.fixture(scope="session")
def loaded_model(model_config: ModelConfig):
    """One model load for this folder; engines share it."""
    from inference_engine.models.loader import load_model

    return load_model(model_config)


@pytest.fixture
def make_engine(loaded_model, model_config):
    """Engines over the shared model with per-test limits; all shut down at teardown."""
    from inference_engine.server.engine import Engine

    engines = []

    def build(
        *,
        window: int = 60,
        max_sessions: int = 64,
        max_concurrent: int = 4,
        max_queue: int = 64,
        queue_timeout_s: float = 30.0,
    ) -> Engine:
        config = RuntimeConfig(
            model=model_config,
            cache=CacheConfig(sink_tokens=4, window_tokens=window, prefill_chunk_tokens=16),
            store=StoreConfig(max_sessions=max_sessions, session_ttl_s=600.0),
            scheduler=SchedulerConfig(
                max_concurrent=max_concurrent, max_queue=max_queue, queue_timeout_s=queue_timeout_s
            ),
        )
        engine = Engine.from_loaded(loaded_model, config)
        engines.append(engine)
        return engine

    yield build
    for engine in engines:
        engine.shutdown()


@pytest.fixture
def serve_runtime(make_engine):
    """Start gRPC (and the HTTP shim) on 127.0.0.1 port 0; every server stops at teardown."""
    from inference_engine.server.config import ServerConfig
    from inference_engine.server.serve import BackgroundServer

    servers = []

    def start(*, token: str | None = None, http: bool = True, **engine_kwargs):
        engine = make_engine(**engine_kwargs)
        config = ServerConfig(grpc_port=0, http_port=0 if http else -1, token=token)
        server = BackgroundServer(engine, config)
        servers.append(server)
        server.engine = engine
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def runtime(serve_runtime):
    """A default server (gRPC + HTTP, auth off) over a fresh engine."""
    return serve_runtime()


@pytest.fixture
def artifacts_dir() -> Path:
    """`test-artifacts/` at the repository root (gitignored): figures kept after the run."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
