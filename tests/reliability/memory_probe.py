"""RSS before, during and after N full-window sessions: run alone, in a subprocess of its own.

    python tests/reliability/memory_probe.py --model kakeya/tiny-qwen3 --sessions 64 [--no-trim]

Prints one JSON object: the RSS figures (MiB), the per-session KV bound, the store's
per-session figure, and the measured per-session overhead above the KV bound. Each
session gets a history that fills its window (sink + window + one prefill chunk), and one
generated token, so its KV buffers reach their largest size. Closing them, the store's
sweeper gives the freed memory back (`inference_engine.memory`); `--no-trim` switches that
off, to measure what the trim is worth.
"""

from __future__ import annotations

import argparse
import gc
import json
import time

MIB = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="kakeya/tiny-qwen3")
    parser.add_argument("--sessions", type=int, default=64)
    parser.add_argument("--no-trim", action="store_true")
    args = parser.parse_args()

    from inference_engine import memory
    from inference_engine.config import CacheConfig, ModelConfig, RuntimeConfig, StoreConfig
    from inference_engine.engine import Engine
    from inference_engine.session.events import GenerationParams

    if args.no_trim:
        memory.trim = lambda: False  # type: ignore[assignment]
    cache = CacheConfig()
    store = StoreConfig(max_sessions=args.sessions + 1, session_ttl_s=1e9, sweep_interval_s=0.2)
    config = RuntimeConfig(model=ModelConfig(args.model, device="cpu"), cache=cache, store=store)
    engine = Engine.start(config)
    vocab = engine.vocab_size
    history = [(7 * i) % (vocab - 10) + 5 for i in range(cache.sink_tokens + cache.window_tokens)]
    history += history[: cache.prefill_chunk_tokens]
    one = GenerationParams(max_tokens=1)

    def full_session() -> str:
        sid = engine.create_session().session_id
        engine.append(sid, history)
        list(engine.generate(sid, one))
        return sid

    engine.close(full_session())  # one-time allocations (kernels, pools) before the baseline
    settle(engine)
    before = memory.rss_bytes()
    started = time.perf_counter()
    ids = [full_session() for _ in range(args.sessions)]
    during = memory.rss_bytes()
    fill_s = time.perf_counter() - started
    info = engine.info(ids[0])
    for sid in ids:
        engine.close(sid)
    settle(engine)
    after = memory.rss_bytes()
    per_session = (during - before) / args.sessions
    print(
        json.dumps(
            {
                "model": args.model,
                "dtype": engine.dtype,
                "sessions": args.sessions,
                "trim": not args.no_trim,
                "rss_before_mib": round(before / MIB, 1),
                "rss_during_mib": round(during / MIB, 1),
                "rss_after_mib": round(after / MIB, 1),
                "rss_per_session_mib": round(per_session / MIB, 2),
                "kv_bound_mib": round(info.kv_bound_bytes / MIB, 2),
                "kv_buffer_bound_mib": round(
                    memory.kv_buffer_bytes(
                        engine.coordinator.shape.bytes_per_token,
                        cache.sink_tokens,
                        cache.window_tokens,
                        cache.prefill_chunk_tokens,
                    )
                    / MIB,
                    2,
                ),
                "store_session_mib": round(engine.coordinator.store.session_bytes / MIB, 2),
                "overhead_above_kv_bound_mib": round((per_session - info.kv_bound_bytes) / MIB, 2),
                "after_minus_before_mib": round((after - before) / MIB, 1),
                "fill_s": round(fill_s, 1),
            }
        )
    )
    engine.shutdown()


def settle(engine) -> None:
    """Drop garbage, then give the sweeper (which trims) a few of its intervals."""
    gc.collect()
    time.sleep(3 * engine.config.store.sweep_interval_s + 0.2)


if __name__ == "__main__":
    main()
