"""`kakeya-evidence bench`: flags, validation, summary, and one small real run."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kakeya_evidence.bench import run as bench
from kakeya_evidence.bench.stats import DecodeSample, SessionTrace, assemble_bench, assemble_session
from kakeya_evidence.errors import CacheMissError, ParameterError

TINY_ARGS = [
    "--model",
    "kakeya/tiny-qwen3",
    "--device",
    "cpu",
    "--turns",
    "4",
    "--append",
    "8",
    "--max-tokens",
    "4",
    "--prompt-tokens",
    "8",
    "--repeats",
    "2",
    "--warmup",
    "0",
    "--sink",
    "4",
    "--window",
    "16",
    "--concurrency",
    "1,3",
    "--quiet",
]


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kakeya-evidence")
    bench.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["bench", *argv])


def test_register_adds_bench_with_issue_defaults():
    args = _parse([])
    assert args.func is bench.run_bench_command
    config = bench.config_from_args(args)
    assert (config.turns, config.append_tokens, config.max_tokens) == (40, 64, 32)
    assert config.sdk is True and config.sdk_compare is False


def test_flags_reach_the_config():
    flags = [*TINY_ARGS, "--output", "out", "--no-sdk", "--sdk-compare"]
    config = bench.config_from_args(_parse(flags))
    assert config.sdk_compare is True
    assert config.window_tokens == 16
    assert config.repeats == 2
    assert config.output == "out"
    assert config.sdk is False


@pytest.mark.parametrize(
    "field, value", [("turns", 0), ("max_tokens", 2), ("repeats", 0), ("window_tokens", 0)]
)
def test_validate_config_names_the_field_and_bound(field, value):
    config = bench.BenchConfig(**{field: value})
    with pytest.raises(ParameterError, match=field):
        bench.validate_config(config)


def test_an_uncached_model_is_a_cache_miss_with_exit_code_2(tmp_path: Path):
    args = _parse(["--model", "kakeya/not-a-cached-model", "--output", str(tmp_path), "--quiet"])
    with pytest.raises(CacheMissError) as caught:
        args.func(args)
    assert caught.value.exit_code == 2
    assert "kakeya/not-a-cached-model" in caught.value.reason


def test_module_imports_neither_torch_nor_grpc():
    code = (
        "import sys, kakeya_evidence.bench.run\n"
        "print(sorted(m for m in ('torch', 'grpc', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_format_summary_shows_rates_ratios_and_goals():
    stamps = tuple(0.01 * i for i in range(1, 6))
    samples = {"runtime": [DecodeSample(0.01, stamps)], "hf_loop": [DecodeSample(0.01, stamps)]}
    trace = SessionTrace([1.0, 1.0], [1.0, 2.0], [10, 10], [4, 5], [4, 9], [9, 18], 10)
    doc = assemble_bench(
        {"model": "m", "device": "cpu", "dtype": "float32", "wall_s": 2.0},
        samples,
        assemble_session([trace], 2),
        sink=2,
        window=4,
    )
    text = bench.format_summary(doc)
    assert "decode runtime" in text
    assert "runtime_over_hf_loop" in text
    assert "goal incremental_last_first" in text


@pytest.mark.slow
def test_bench_on_the_tiny_model_writes_a_sane_bench_json(tmp_path: Path):
    args = _parse([*TINY_ARGS, "--output", str(tmp_path), "--sdk-compare"])
    assert args.func(args) == 0
    doc = json.loads((tmp_path / "bench.json").read_text(encoding="utf-8"))
    assert doc["model"] == "kakeya/tiny-qwen3"
    assert doc["device"] == "cpu"
    padded = doc["decode_lanes"]["padded"]  # the engine pads only where kernels need it
    twin = set() if padded else {"runtime_padded"}  # then the always-padded twin measures it
    variants = {"runtime", "sdk_grpc", "sdk_grpc_per_token", "hf_loop", "hf_generate", *twin}
    assert set(doc["decode_tok_s"]) == variants
    assert all(v > 0 for v in doc["decode_tok_s"].values())
    assert set(doc["ttft_s"]) == {"runtime", "sdk_grpc", *twin}
    assert doc["decode_lanes"]["max_concurrent"] == 3  # the largest n of the sweep
    assert all(v > 0 for v in doc["ttft_s"].values())
    assert all(v is not None and v > 0 for v in doc["ratios"].values())
    session = doc["long_session"]
    assert session["turns"] == 4
    for series in session["latency_s"].values():
        assert len(series) == 4
        assert all(v > 0 for v in series)
    assert max(session["kv_live_bytes"]) <= session["kv_bound_bytes"]
    assert session["kv_live_bytes"][-1] == session["kv_bound_bytes"]  # history > S+W: full
    assert session["prefill_tokens"] == [8, 9, 9, 9]  # the append plus the pending token
    # the SDK runs in a client process of its own, against the same engine: same tokens
    assert doc["tokens_matching_runtime"]["sdk_grpc"] == 4
    assert doc["tokens_matching_runtime"]["sdk_grpc_per_token"] == 4
    assert doc["goals"]["kv_flat_past_bound"]["met"] is True
    assert doc["config"]["window_tokens"] == 16
    assert [row["n"] for row in doc["concurrency"]] == [1, 3]
    for row in doc["concurrency"]:
        assert row["runtime_tok_s"] > 0 and row["sdk_grpc_tok_s"] > 0
        assert row["sdk_grpc_per_token_tok_s"] > 0
        assert row["hf_generate_tok_s"] > 0 and 0 < row["itl_p50_s"] <= row["itl_p95_s"]
    assert doc["prefill_interleave"]["chunks"] == 8
    assert doc["goals"]["batch8_over_single"]["met"] is None  # n=8 not in this sweep
    assert doc["host"]["torch_threads"] >= 1
