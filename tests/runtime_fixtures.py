"""Real-model fixtures shared by tests/integration and tests/reliability.

The embedded model (or KAKEYA_MODEL / KAKEYA_DEVICE / KAKEYA_DTYPE, as the evidence
runner sets them) goes through the real loading path once per run; engines and servers
are built per test on top of it, servers on 127.0.0.1 port 0, all stopped at teardown.
Registered from tests/conftest.py, so the model loads only when a test asks for it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the suites never download

import pytest

from inference_engine.config import (
    CacheConfig,
    LanePadding,
    ModelConfig,
    RuntimeConfig,
    SchedulerConfig,
    StoreConfig,
    WhenFull,
)
from inference_engine.tenancy import TenancyConfig


@pytest.fixture(scope="session")
def model_config() -> ModelConfig:
    return ModelConfig(
        model_id=os.environ.get("KAKEYA_MODEL", "kakeya/tiny-qwen3"),
        device=os.environ.get("KAKEYA_DEVICE", "auto"),
        dtype=os.environ.get("KAKEYA_DTYPE", "auto"),
    )


@pytest.fixture(scope="session")
def loaded_model(model_config: ModelConfig):
    """One model load for the whole suite; engines share it."""
    from inference_engine.models.loader import load_model

    loaded = load_model(model_config)
    record = os.environ.get("KAKEYA_MODEL_LOAD_FILE")  # set by the evidence suite stage
    if record:
        from inference_engine.device import dtype_name

        facts = {
            "model_id": loaded.model_id,
            "revision": loaded.revision,
            "load_s": loaded.load_s,
            # what the loader resolved `auto` to, beside what was asked for
            "device_requested": model_config.device,
            "device": str(loaded.device),
            "dtype_requested": model_config.dtype,
            "dtype": dtype_name(loaded.dtype),
        }
        Path(record).write_text(json.dumps(facts))
    return loaded


@pytest.fixture(scope="session")
def loaded_model_fp32(model_config: ModelConfig):
    """The same model in float32, for claims that hold only up to rounding (chunk-size knob)."""
    from dataclasses import replace

    from inference_engine.models.loader import load_model

    return load_model(replace(model_config, dtype="float32"))


@pytest.fixture
def make_engine(loaded_model, loaded_model_fp32, model_config):
    """Build engines over the shared model with per-test limits; all are shut down."""
    from inference_engine.engine import Engine

    engines = []

    def build(
        *,
        sink: int = 4,
        window: int = 60,
        prefill_chunk: int = 16,
        max_sessions: int = 64,
        when_full: WhenFull = WhenFull.REJECT,
        ttl_s: float = 600.0,
        sweep_s: float = 0.05,
        max_concurrent: int = 4,
        max_queue: int = 64,
        queue_timeout_s: float = 30.0,
        lane_padding: LanePadding = LanePadding.AUTO,
        float32: bool = False,
        tenancy: TenancyConfig | None = None,
        max_session_bytes: int = 0,
    ) -> Engine:
        config = RuntimeConfig(
            model=model_config,
            cache=CacheConfig(
                sink_tokens=sink, window_tokens=window, prefill_chunk_tokens=prefill_chunk
            ),
            store=StoreConfig(
                max_sessions=max_sessions,
                when_full=when_full,
                session_ttl_s=ttl_s,
                sweep_interval_s=sweep_s,
                max_session_bytes=max_session_bytes,
            ),
            scheduler=SchedulerConfig(
                max_concurrent=max_concurrent,
                lane_padding=lane_padding,
                max_queue=max_queue,
                queue_timeout_s=queue_timeout_s,
            ),
            tenancy=tenancy or TenancyConfig(),
        )
        engine = Engine.from_loaded(loaded_model_fp32 if float32 else loaded_model, config)
        engines.append(engine)
        return engine

    yield build
    for engine in engines:
        engine.shutdown()


@pytest.fixture
def engine(make_engine):
    return make_engine()


@pytest.fixture
def serve_runtime(make_engine):
    """Start the real gRPC server (and HTTP shim) on 127.0.0.1 port 0 over a fresh engine.

    `serve_runtime(token=..., http=..., **engine_limits)` returns a started
    `BackgroundServer` with `.engine`; every server is stopped at teardown (before the
    engines shut down).
    """
    from inference_engine.server.config import ServerConfig
    from inference_engine.server.serve import BackgroundServer

    servers = []

    def start(*, token: str | None = None, tokens=(), http: bool = True, **engine_kwargs):
        if tokens and "tenancy" not in engine_kwargs:  # as `serve` does with a token file
            engine_kwargs["tenancy"] = TenancyConfig(identities=len(tokens))
        engine = make_engine(**engine_kwargs)
        config = ServerConfig(
            grpc_port=0, http_port=0 if http else -1, token=token, tokens=tuple(tokens)
        )
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
def sdk_client(runtime):
    """A `kakeya.Client` connected to `runtime`, closed at teardown."""
    import kakeya

    with kakeya.Client(runtime.grpc_address, timeout=60) as client:
        yield client
