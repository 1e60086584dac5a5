"""``kakeya-evidence bench``: the runtime beside plain transformers, one model, one device.

Measures, interleaved with warm-up and repeats (median and IQR): decode tokens/s of the
runtime in-process (as served, and with its batch always padded to its lanes: what
padding costs where the kernels would not need it),
through the SDK over gRPC, a plain transformers decode loop and ``model.generate()``; time
to first token; a long session of T turns with incremental prefill against full
re-prefill; KV live bytes per turn against the S+W bound; the concurrency sweep (n
sessions together against ``generate()`` on a batch of n); how much a long prefill delays
a running decode. Writes ``DIR/bench.json``, which feeds evidence.json's ``perf`` and the
report.

The story of `run_bench`: load the model once, build the engines, start the SDK server,
measure decode interleaved, run the long session and the sweep, assemble, write the JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inference_engine.cli_args import add_config_args
from inference_engine.cli_args import config_from_args as build_config
from kakeya_evidence.bench.peers import LLAMA_CPP, PEER_NAMES
from kakeya_evidence.bench.peers.gguf_convert import GGUF_TYPES
from kakeya_evidence.bench.runs import measure_interleaved as runs_interleaved
from kakeya_evidence.bench.runs import random_tokens
from kakeya_evidence.bench.stats import (
    DecodeSample,
    SessionTrace,
    assemble_bench,
    assemble_session,
    concurrency_goals,
    concurrency_row,
    decode_rate,
)
from kakeya_evidence.common.commit import stamp_commit
from kakeya_evidence.common.params import DEFAULT_MODEL_ID, DEFAULT_OUTPUT_DIR
from kakeya_evidence.errors import CacheMissError, ParameterError

__all__ = ["BenchConfig", "register", "run_bench", "run_bench_command", "validate_config"]

BENCH_FILE = "bench.json"
MAX_CONCURRENCY = 64
INTERLEAVE_CHUNKS = 8  # the long prompt of the prefill-delay measurement, in chunks


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of counts: {text!r}") from exc


def _name_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class BenchConfig:
    """What to measure, and how hard. Sizes are tokens; defaults match issue 6."""

    model: str = field(default=DEFAULT_MODEL_ID, metadata={"help": "model id in the HF cache"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N or mps"})
    dtype: str = field(default="auto", metadata={"help": "auto, float32, bfloat16 or float16"})
    weights: str = field(
        default="native",
        metadata={
            "help": "native|int8: the runtime's weights (int8: the HF rows use them too)",
            "choices": ("native", "int8"),
        },
    )
    output: str = field(default=DEFAULT_OUTPUT_DIR, metadata={"help": "directory for bench.json"})
    turns: int = field(default=40, metadata={"help": "long-session turns T"})
    append_tokens: int = field(
        default=64, metadata={"help": "tokens per turn A", "flag": "--append"}
    )
    max_tokens: int = field(default=32, metadata={"help": "generated G"})
    prompt_tokens: int = field(default=128, metadata={"help": "prompt tokens"})
    repeats: int = field(default=3, metadata={"help": "decode repeats"})
    warmup: int = field(default=1, metadata={"help": "warm-up rounds"})
    session_repeats: int = field(default=1, metadata={"help": "long-session repeats"})
    sink_tokens: int = field(default=4, metadata={"help": "sink tokens S", "flag": "--sink"})
    window_tokens: int = field(
        default=1020, metadata={"help": "window tokens W", "flag": "--window"}
    )
    prefill_chunk_tokens: int = field(
        default=128, metadata={"help": "prefill chunk tokens", "flag": "--prefill-chunk"}
    )
    sdk: bool = field(default=True, metadata={"help": "measure the SDK over gRPC (--no-sdk: skip)"})
    sdk_compare: bool = field(
        default=False,
        metadata={"help": "also measure the SDK with one message per token (sdk_grpc_per_token)"},
    )
    seed: int = field(default=0, metadata={"help": "seed of the token ids"})
    quiet: bool = field(default=False, metadata={"help": "no progress on stderr"})
    concurrency: tuple[int, ...] = field(
        default=(1, 2, 4, 8, 16),
        metadata={
            "help": "session counts of the sweep, e.g. 1,2,4,8,16 ('' skips it)",
            "type": _int_list,
        },
    )
    sweep_max_tokens: int = field(
        default=0,
        metadata={"help": "tokens each session generates in the concurrency sweep (0: G)"},
    )
    peer: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "peer engines measured beside the runtime: llama.cpp (extra peer-llama)",
            "type": _name_list,
        },
    )
    peer_types: tuple[str, ...] = field(
        default=tuple(GGUF_TYPES),
        metadata={
            "help": "GGUF types of the llama.cpp peer, e.g. BF16,F16,Q8_0",
            "type": _name_list,
        },
    )
    peer_threads: int = field(default=2, metadata={"help": "threads of each peer engine"})
    peer_python: str = field(
        default="", metadata={"help": "interpreter that has llama_cpp (default: this one)"}
    )
    peer_sdist: str = field(
        default="",
        metadata={"help": "llama-cpp-python sdist whose converter makes the GGUF files"},
    )
    peer_cache: str = field(
        default="",
        metadata={"help": "converter and GGUF cache (default: ~/.cache/kakeya/peers)"},
    )

    @property
    def lanes(self) -> int:
        """The engine's decode batch: the largest n of the sweep (at least 1)."""
        return max((1, *self.concurrency))


def validate_config(config: BenchConfig) -> BenchConfig:
    """Check every size against its bound; return the config unchanged.

    Raises:
        ParameterError: a field is out of range (the message names it and the bound).
    """
    minimums = {
        "turns": 1,
        "append_tokens": 1,
        "max_tokens": 3,  # the steady decode rate needs tokens 2..G
        "prompt_tokens": 1,
        "repeats": 1,
        "warmup": 0,
        "session_repeats": 1,
        "sink_tokens": 0,
        "window_tokens": 1,
        "prefill_chunk_tokens": 1,
    }
    for name, bound in minimums.items():
        value = getattr(config, name)
        if value < bound:
            raise ParameterError(f"{name} must be >= {bound}, got {value}", stage="bench")
    if config.sweep_max_tokens and not 3 <= config.sweep_max_tokens <= 4096:
        raise ParameterError(
            f"sweep_max_tokens must be 0 or in [3, 4096], got {config.sweep_max_tokens}",
            stage="bench",
        )
    if config.max_tokens > 4096:
        raise ParameterError(f"max_tokens must be <= 4096, got {config.max_tokens}", stage="bench")
    if any(not 1 <= n <= MAX_CONCURRENCY for n in config.concurrency):
        raise ParameterError(
            f"concurrency values must be in [1, {MAX_CONCURRENCY}], got {config.concurrency}",
            stage="bench",
        )
    _validate_peers(config)
    return config


def _validate_peers(config: BenchConfig) -> None:
    for name, given, allowed in (
        ("peer", config.peer, PEER_NAMES),
        ("peer_types", config.peer_types, tuple(GGUF_TYPES)),
    ):
        unknown = [value for value in given if value not in allowed]
        if unknown:
            raise ParameterError(
                f"{name} must be among {', '.join(allowed)}, got {', '.join(unknown)}",
                stage="bench",
            )
    if config.peer and not config.peer_types:
        raise ParameterError("peer_types must name at least one GGUF type", stage="bench")
    if config.peer_threads < 1:
        raise ParameterError(f"peer_threads must be >= 1, got {config.peer_threads}", stage="bench")


# -- command line -----------------------------------------------------------------------


def register(subparsers: Any) -> None:
    """Add the ``bench`` subcommand (its flags are BenchConfig's fields) to a parser."""
    bench = subparsers.add_parser("bench", help="benchmark the runtime against transformers")
    add_config_args(bench, BenchConfig)
    bench.set_defaults(func=run_bench_command)


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """The frozen config from parsed ``bench`` flags."""
    return build_config(BenchConfig, args)


def run_bench_command(args: argparse.Namespace) -> int:
    """Handler of ``kakeya-evidence bench``: run, write DIR/bench.json, print a summary.

    Raises:
        ParameterError: a size, the device or the dtype is invalid.
        CacheMissError: the model is not in the HF cache (the message names the prewarm).
        OutputDirError: the output directory cannot be written.
    """
    from inference_engine.errors import ModelNotCached, RuntimeFault
    from kakeya_evidence.common.files import check_output_dir

    config = validate_config(config_from_args(args))
    out = check_output_dir(config.output)
    try:
        bench = run_bench(config)
    except ModelNotCached as exc:
        raise CacheMissError(exc.message, stage="bench") from exc
    except RuntimeFault as exc:  # unknown device or dtype: the loader's InvalidArgument
        raise ParameterError(exc.message, stage="bench") from exc
    path = write_bench(out, bench)
    print(format_summary(bench))
    print(f"bench: {path}")
    return 0


# -- the run ----------------------------------------------------------------------------


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Measure every variant on one loaded model and return the bench.json document.

    Raises:
        ParameterError: a size is out of range.
        inference_engine.errors.RuntimeFault: the model cannot be loaded (not cached, bad
            device or dtype).
    """
    from inference_engine.config import ModelConfig
    from inference_engine.models.loader import load_model

    validate_config(config)
    started = time.perf_counter()
    loaded = load_model(ModelConfig(config.model, config.device, config.dtype, config.weights))
    rng = random.Random(config.seed)
    prompt = random_tokens(rng, config.prompt_tokens, loaded.vocab_size)
    turns = [
        random_tokens(rng, config.append_tokens, loaded.vocab_size) for _ in range(config.turns)
    ]
    with (
        _peers(loaded, config) as peers,
        _engines(loaded, config) as engines,
        _client(engines["runtime"], config) as client,
    ):
        samples = _measure_decode(loaded, engines, client, prompt, config, peers)
        for peer in peers:  # the conversion check: logits after the prompt, against HF's
            peer.compare_logits(loaded.model, prompt)
        traces = [
            _measure_session(engines["runtime"], turns, config, r)
            for r in range(config.session_repeats)
        ]
        rows = _measure_concurrency(loaded, engines["runtime"], client, rng, config, peers)
        interleave = _measure_interleave(engines["runtime"], prompt, rng, config)
        padded = engines["runtime"].coordinator.lanes is not None
    meta = _meta(loaded, config, time.perf_counter() - started)
    bench = assemble_bench(
        meta,
        samples,
        assemble_session(traces, config.turns),
        config.sink_tokens,
        config.window_tokens,
    )
    bench["concurrency"] = rows
    bench["prefill_interleave"] = interleave
    bench["decode_lanes"] = {"max_concurrent": config.lanes, "padded": padded}
    bench["goals"].update(concurrency_goals(rows, bench["ratios"]["runtime_over_hf_loop"]))
    for peer in peers:
        section = peer.section(samples, rows)
        bench.setdefault("peers", {})[LLAMA_CPP] = section
        bench["goals"].update(peer.goals(section, rows))
    return bench


def write_bench(out: Path, bench: dict[str, Any]) -> Path:
    """Write DIR/bench.json (indented, keys in assembly order)."""
    path = out / BENCH_FILE
    path.write_text(json.dumps(stamp_commit(bench), indent=2) + "\n", encoding="utf-8")
    return path


@contextlib.contextmanager
def _engines(loaded: Any, config: BenchConfig) -> Iterator[dict[str, Any]]:
    """The runtime as served (`lanes` sessions per step, padded only where the kernels need
    it), and, when it runs unpadded, a twin that always pads (what padding would cost)."""
    from inference_engine.config import (
        CacheConfig,
        LanePadding,
        ModelConfig,
        RuntimeConfig,
        SchedulerConfig,
    )
    from inference_engine.engine import Engine

    cache = CacheConfig(config.sink_tokens, config.window_tokens, config.prefill_chunk_tokens)
    model = ModelConfig(config.model, config.device, config.dtype, config.weights)

    def build(padding: LanePadding) -> Any:
        scheduler = SchedulerConfig(
            max_concurrent=config.lanes, lane_padding=padding, max_queue=2 * config.lanes
        )
        return Engine.from_loaded(
            loaded, RuntimeConfig(model=model, cache=cache, scheduler=scheduler)
        )

    engines = {"runtime": build(LanePadding.AUTO)}
    if config.lanes > 1 and engines["runtime"].coordinator.lanes is None:
        engines["runtime_padded"] = build(LanePadding.ALWAYS)
    try:
        yield engines
    finally:
        for engine in engines.values():
            engine.shutdown()


@contextlib.contextmanager
def _peers(loaded: Any, config: BenchConfig) -> Iterator[list[Any]]:
    """The requested peers, started (converted, workers up) or marked with why not."""
    from kakeya_evidence.bench.peers.llamacpp import LlamaCppConfig, LlamaCppPeer

    peers = []
    if LLAMA_CPP in config.peer:
        settings = LlamaCppConfig(
            gguf_types=config.peer_types,
            threads=config.peer_threads,
            python=config.peer_python,
            sdist=config.peer_sdist,
            cache_dir=config.peer_cache,
        )
        n_ctx = config.prompt_tokens + config.max_tokens + 8
        peer = LlamaCppPeer(
            settings, loaded.model_id, loaded.revision or "", n_ctx, lambda x: _progress(config, x)
        )
        peers.append(peer)
    try:
        for peer in peers:
            peer.start()
            _progress(config, f"peer {LLAMA_CPP}: {peer.status} {peer.reason}".rstrip())
        yield peers
    finally:
        for peer in peers:
            peer.close()


@contextlib.contextmanager
def _client(engine: Any, config: BenchConfig) -> Iterator[Any]:
    if not config.sdk:
        yield None
        return
    from kakeya_evidence.bench.runs import sdk_client

    with sdk_client(engine) as client:
        yield client


def _measure_decode(
    loaded: Any,
    engines: dict[str, Any],
    client: Any,
    prompt: list[int],
    config: BenchConfig,
    peers: list[Any],
) -> dict[str, list[DecodeSample]]:
    from kakeya_evidence.bench import runs

    g = config.max_tokens
    variants = {"runtime": lambda: runs.measure_runtime(engines["runtime"], prompt, g)}
    if "runtime_padded" in engines:
        variants["runtime_padded"] = lambda: runs.measure_runtime(
            engines["runtime_padded"], prompt, g
        )
    if client is not None:
        variants["sdk_grpc"] = lambda: client.decode(prompt, g)
        if config.sdk_compare:
            variants["sdk_grpc_per_token"] = lambda: client.decode(prompt, g, batch_tokens=False)
    variants["hf_loop"] = lambda: runs.measure_hf_loop(loaded.model, prompt, g)
    variants["hf_generate"] = lambda: runs.measure_hf_generate(loaded.model, prompt, g)
    for peer in peers:
        variants.update(peer.decode_variants(prompt, g))
    _progress(config, f"decode: {len(variants)} variants, {config.repeats} repeats, G={g}")
    return runs.measure_interleaved(
        variants,
        config.repeats,
        config.warmup,
        on_sample=lambda n, r, s: _report_sample(config, n, r, s),
    )


def _measure_concurrency(
    loaded: Any,
    engine: Any,
    client: Any,
    rng: random.Random,
    config: BenchConfig,
    peers: list[Any],
) -> list[dict[str, Any]]:
    """Per n: the runtime, the SDK, HF's batched generate and the peers, interleaved."""
    rows = []
    for n in config.concurrency:
        prompts = [random_tokens(rng, config.prompt_tokens, loaded.vocab_size) for _ in range(n)]
        rows.append(_sweep_point(loaded, engine, client, prompts, config, peers))
        _progress(config, "  " + _row_text(rows[-1]))
    return rows


def _sweep_point(
    loaded: Any,
    engine: Any,
    client: Any,
    prompts: list[list[int]],
    config: BenchConfig,
    peers: list[Any],
) -> dict[str, Any]:
    from kakeya_evidence.bench import concurrency as sweep
    from kakeya_evidence.bench.peers.llamacpp import add_peer_rates

    g = config.sweep_max_tokens or config.max_tokens
    variants = {"runtime": lambda: sweep.measure_runtime_batch(engine, prompts, g)}
    if client is not None:
        variants["sdk_grpc"] = lambda: client.batch(prompts, g)
        if config.sdk_compare:
            variants["sdk_grpc_per_token"] = lambda: client.batch(prompts, g, batch_tokens=False)
    variants["hf_generate"] = lambda: sweep.measure_hf_generate_batch(loaded.model, prompts, g)
    for peer in peers:
        variants.update(peer.sweep_variants(prompts, g))
    _progress(config, f"concurrency n={len(prompts)}: {len(variants)} variants")
    samples = runs_interleaved(variants, config.repeats, warmup=0)
    row = concurrency_row(len(prompts), samples)
    add_peer_rates(row, samples)
    return row


def _measure_interleave(
    engine: Any, prompt: list[int], rng: random.Random, config: BenchConfig
) -> dict[str, Any]:
    from kakeya_evidence.bench.concurrency import measure_prefill_interleave

    long_prompt = random_tokens(
        rng, INTERLEAVE_CHUNKS * config.prefill_chunk_tokens, engine.vocab_size
    )
    _progress(config, f"prefill interleave: {INTERLEAVE_CHUNKS} chunks beside a running decode")
    return measure_prefill_interleave(engine, prompt, long_prompt, 6 * INTERLEAVE_CHUNKS)


def _row_text(row: dict[str, Any]) -> str:
    cells = [f"n={row['n']}"]
    keys = ["runtime_tok_s", "sdk_grpc_tok_s", "sdk_grpc_per_token_tok_s", "hf_generate_tok_s"]
    keys += sorted(k for k in row if k.startswith("llama_cpp_"))
    for key in keys:
        if row.get(key) is not None:
            cells.append(f"{key[:-6]} {row[key]:.1f} tok/s")
    if row.get("itl_p50_s") is not None:
        cells.append(f"itl p50 {row['itl_p50_s'] * 1000:.1f} ms")
    return ", ".join(cells)


def _measure_session(
    engine: Any, turns: list[list[int]], config: BenchConfig, repeat: int
) -> SessionTrace:
    from kakeya_evidence.bench.runs import run_long_session

    _progress(config, f"long session {repeat + 1}/{config.session_repeats}: T={config.turns}")

    def on_turn(turn: int, trace: SessionTrace) -> None:
        _progress(
            config,
            f"  turn {turn + 1}: incremental {trace.incremental_s[-1]:.3f}s, "
            f"full re-prefill {trace.full_reprefill_s[-1]:.3f}s, kv {trace.kv_live_bytes[-1]} B",
        )

    return run_long_session(engine, turns, config.max_tokens, on_turn)


def _report_sample(config: BenchConfig, name: str, repeat: int, sample: DecodeSample) -> None:
    rate = decode_rate(sample.stamps_s)
    _progress(config, f"  repeat {repeat + 1} {name}: {rate:.1f} tok/s, ttft {sample.ttft_s:.3f}s")


def _progress(config: BenchConfig, line: str) -> None:
    if not config.quiet:
        print(line, file=sys.stderr, flush=True)


def _meta(loaded: Any, config: BenchConfig, wall_s: float) -> dict[str, Any]:
    from inference_engine.device import dtype_name

    settings = asdict(config)
    for key in ("output", "quiet"):
        settings.pop(key)
    return {
        "model": loaded.model_id,
        "revision": loaded.revision,
        "device": str(loaded.device),
        "dtype": dtype_name(loaded.dtype),
        "weights": config.weights,
        "host": host_facts(loaded.device),
        "config": settings,
        "wall_s": wall_s,
    }


def host_facts(device: Any = None) -> dict[str, Any]:
    """CPU brand, core count, torch/transformers versions, torch threads, the GPU if any."""
    import torch
    import transformers

    facts: dict[str, Any] = {
        "cpu": _cpu_brand(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    if device is not None and getattr(device, "type", "") == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(device)
        facts["cuda"] = torch.version.cuda
    return facts


def _cpu_brand() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# -- summary ----------------------------------------------------------------------------


def format_summary(bench: dict[str, Any]) -> str:
    """A few lines for the terminal: rates, ratios, long-session ratios, goals."""
    lines = [f"{bench['model']} on {bench['device']} ({bench['dtype']}), {bench['wall_s']:.1f}s"]
    for name, value in bench["decode_tok_s"].items():
        spread = bench["decode_tok_s_spread"].get(name, 0.0)
        lines.append(f"  decode {name:<14} {value:9.1f} tok/s  (IQR {spread:.1f})")
    for name, value in bench["ttft_s"].items():
        lines.append(f"  ttft   {name:<14} {value * 1000:9.1f} ms")
    for name, value in bench["ratios"].items():
        lines.append(f"  ratio  {name:<26} {_fmt(value)}")
    for name, value in bench["long_session"]["ratio_last_first"].items():
        lines.append(f"  turn last/first {name:<16} {_fmt(value)}")
    for row in bench.get("concurrency") or []:
        lines.append("  concurrency " + _row_text(row))
    for name, peer in (bench.get("peers") or {}).items():
        for gguf_type, variant in peer["variants"].items():
            lines.append(f"  peer {name} {gguf_type:<5} {_peer_text(variant)}")
    for name, goal in bench["goals"].items():
        verdict = {True: "met", False: "NOT met", None: "n/a"}[goal["met"]]
        lines.append(f"  goal {name:<26} {_fmt(goal['value'])} ({goal['target']}): {verdict}")
    return "\n".join(lines)


def _peer_text(variant: dict[str, Any]) -> str:
    if variant["status"] != "ok":
        return f"{variant['status']}: {variant['reason']}"
    return (
        f"runtime/peer {_fmt(variant['runtime_over_peer'])}, greedy tokens equal to HF's: "
        f"{variant['tokens_matching_hf_generate']}/{variant['tokens_compared']}"
    )


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"
