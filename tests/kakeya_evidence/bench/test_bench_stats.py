"""The benchmark's pure parts: statistics, ratios, goals and the bench.json shape."""

from __future__ import annotations

import pytest

from kakeya_evidence.bench.runs import interleave_order, measure_interleaved
from kakeya_evidence.bench.stats import (
    BatchSample,
    DecodeSample,
    SessionTrace,
    assemble_bench,
    assemble_session,
    concurrency_goals,
    concurrency_row,
    decode_rate,
    paired_ratio,
    quantile,
    steady_rate,
    summarize,
)

REQUIRED_KEYS = {
    "model",
    "device",
    "dtype",
    "decode_tok_s",
    "decode_tok_s_spread",
    "ttft_s",
    "ttft_s_spread",
    "long_session",
    "ratios",
    "goals",
}
SESSION_KEYS = {
    "turns",
    "latency_s",
    "ratio_last_first",
    "kv_live_bytes",
    "kv_bound_bytes",
    "prefill_tokens",
}


def test_quantile_interpolates_between_order_statistics():
    assert quantile([4.0, 1.0, 3.0, 2.0], 0.5) == pytest.approx(2.5)
    assert quantile([1.0, 2.0, 3.0, 4.0, 5.0], 0.25) == pytest.approx(2.0)
    assert quantile([7.0], 0.75) == 7.0


@pytest.mark.parametrize("values, q", [([], 0.5), ([1.0], 1.5), ([1.0], -0.1)])
def test_quantile_rejects_empty_input_and_bad_q(values, q):
    with pytest.raises(ValueError):
        quantile(values, q)


def test_summarize_reports_median_iqr_and_range():
    s = summarize([10.0, 2.0, 6.0, 4.0, 8.0])
    assert (s.median, s.iqr, s.min, s.max, s.n) == (6.0, 4.0, 2.0, 10.0, 5)


def test_decode_rate_leaves_out_the_first_decode_step():
    # token 0 at 1 s, a slow first step (capture), then 0.1 s per token
    stamps = [1.0, 3.0, 3.1, 3.2, 3.3]
    assert decode_rate(stamps) == pytest.approx(3 / 0.3)


@pytest.mark.parametrize("stamps", [[0.1, 0.2], [0.1, 0.5, 0.5]])
def test_decode_rate_rejects_too_few_or_flat_stamps(stamps):
    with pytest.raises(ValueError):
        decode_rate(stamps)


def test_paired_ratio_is_the_median_of_per_repeat_ratios():
    # drift doubles both variants in repeat 2; the paired ratio stays 2
    assert paired_ratio([20.0, 40.0, 22.0], [10.0, 20.0, 11.0]) == pytest.approx(2.0)
    assert paired_ratio([1.0], []) is None


def test_interleave_order_rotates_each_repeat():
    names = ["a", "b", "c"]
    assert [interleave_order(names, r) for r in range(4)] == [
        ["a", "b", "c"],
        ["b", "c", "a"],
        ["c", "a", "b"],
        ["a", "b", "c"],
    ]


def test_measure_interleaved_warms_up_then_alternates_variants():
    calls: list[str] = []

    def variant(name: str):
        def run() -> DecodeSample:
            calls.append(name)
            return _sample(rate=10.0)

        return run

    samples = measure_interleaved({"a": variant("a"), "b": variant("b")}, repeats=2, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a"]
    assert {name: len(runs) for name, runs in samples.items()} == {"a": 2, "b": 2}


def _sample(rate: float, ttft: float = 0.05, tokens: int = 8, ids=(1, 2)) -> DecodeSample:
    stamps = tuple(ttft + i / rate for i in range(tokens))
    return DecodeSample(ttft_s=ttft, stamps_s=stamps, token_ids=tuple(ids))


def _trace(incremental, full, kv, history, bound=1000) -> SessionTrace:
    return SessionTrace(
        incremental_s=list(incremental),
        full_reprefill_s=list(full),
        kv_live_bytes=list(kv),
        prefill_tokens=[4] * len(incremental),
        full_prefill_tokens=[4 * (i + 1) for i in range(len(incremental))],
        history_tokens=list(history),
        kv_bound_bytes=bound,
    )


def test_assemble_session_takes_the_per_turn_median_over_repeats():
    a = _trace([1.0, 1.1, 1.2], [1.0, 2.0, 3.0], [100, 200, 200], [4, 8, 12])
    b = _trace([3.0, 1.3, 1.0], [1.2, 2.2, 3.6], [100, 200, 200], [4, 8, 12])
    c = _trace([2.0, 1.2, 1.4], [1.1, 2.1, 3.3], [100, 200, 200], [4, 8, 12])
    session = assemble_session([a, b, c], turns=3)
    assert session["latency_s"]["incremental"] == [2.0, 1.2, 1.2]
    assert session["latency_s"]["full_reprefill"] == [1.1, 2.1, 3.3]
    assert session["ratio_last_first"]["incremental"] == pytest.approx(0.6)
    assert session["ratio_last_first"]["full_reprefill"] == pytest.approx(3.0)
    assert set(session) >= SESSION_KEYS


def test_assemble_bench_has_the_issue_keys_and_ratios():
    samples = {
        "runtime": [_sample(20.0), _sample(40.0)],
        "sdk_grpc": [_sample(19.0), _sample(38.0)],
        "hf_loop": [_sample(10.0), _sample(20.0)],
        "hf_generate": [_sample(16.0, ids=(1, 9)), _sample(32.0)],
    }
    session = assemble_session([_trace([1.0, 1.1], [1.0, 3.0], [500, 500], [4, 8])], turns=2)
    meta = {"model": "m", "device": "cpu", "dtype": "bfloat16", "wall_s": 1.0}
    bench = assemble_bench(meta, samples, session, sink=2, window=4)
    assert set(bench) >= REQUIRED_KEYS
    assert set(bench["decode_tok_s"]) == {"runtime", "sdk_grpc", "hf_loop", "hf_generate"}
    assert set(bench["ttft_s"]) == {"runtime", "sdk_grpc"}
    assert bench["decode_tok_s"]["runtime"] == pytest.approx(30.0)
    assert bench["ratios"]["runtime_over_hf_loop"] == pytest.approx(2.0)
    assert bench["ratios"]["runtime_over_hf_generate"] == pytest.approx(1.25)
    assert bench["ratios"]["sdk_over_runtime"] == pytest.approx(0.95)
    assert "padding" not in bench["ratios"]  # no one-lane twin measured
    assert bench["tokens_matching_runtime"] == {"sdk_grpc": 2, "hf_loop": 2, "hf_generate": 1}


def test_goals_report_met_and_missed_targets():
    samples = {"runtime": [_sample(9.0)], "sdk_grpc": [_sample(8.0)], "hf_loop": [_sample(10.0)]}
    session = assemble_session(
        [_trace([1.0, 1.5, 1.6], [1.0, 2.0, 3.0], [300, 600, 600], [4, 8, 12], bound=600)], 3
    )
    goals = assemble_bench({}, samples, session, sink=2, window=4)["goals"]
    assert goals["runtime_over_hf_loop"]["met"] is False
    assert goals["runtime_over_hf_generate"]["met"] is None  # not measured
    assert goals["sdk_over_runtime"]["met"] is False
    assert goals["incremental_last_first"]["met"] is False
    assert goals["full_reprefill_grows"]["met"] is True
    assert goals["kv_flat_past_bound"]["met"] is True


def test_kv_goal_fails_when_bytes_grow_past_the_bound():
    session = assemble_session(
        [_trace([1.0, 1.0, 1.0], [1.0, 2.0, 3.0], [300, 600, 900], [4, 8, 12], bound=600)], 3
    )
    goals = assemble_bench({}, {"runtime": [_sample(9.0)]}, session, sink=2, window=4)["goals"]
    assert goals["kv_flat_past_bound"]["met"] is False


def test_growth_goals_are_unmeasured_before_the_history_outgrows_the_window():
    # two turns, history 4 then 6 tokens: never past S + W = 6, so the incremental turn
    # cannot yet have levelled off; the full re-prefill not growing faster proves nothing
    session = assemble_session([_trace([1.0, 1.2], [1.0, 1.1], [300, 450], [4, 6], bound=600)], 2)
    goals = assemble_bench({}, {"runtime": [_sample(9.0)]}, session, sink=2, window=4)["goals"]
    assert goals["full_reprefill_grows"]["value"] == pytest.approx(1.1)
    assert goals["full_reprefill_grows"]["met"] is None
    assert goals["kv_flat_past_bound"]["met"] is None


def test_padding_ratio_compares_always_padded_with_as_served():
    samples = {"runtime": [_sample(20.0)], "runtime_padded": [_sample(18.0)]}
    session = assemble_session([_trace([1.0, 1.1], [1.0, 3.0], [500, 500], [4, 8])], turns=2)
    bench = assemble_bench({}, samples, session, sink=2, window=4)
    assert bench["ratios"]["padding"] == pytest.approx(0.9)


def test_steady_rate_counts_tokens_while_every_session_decodes():
    # two sessions, 0.1 s per step; the second joins one step later and leaves one step later
    first = tuple(0.1 * i for i in range(1, 11))  # tokens at 0.1 .. 1.0
    second = tuple(0.1 * i for i in range(2, 12))  # tokens at 0.2 .. 1.1
    rate = steady_rate(BatchSample((first, second)))
    # window (0.3, 1.0]: 7 tokens of the first, 7 of the second, in 0.7 s
    assert rate == pytest.approx(14 / 0.7)
    with pytest.raises(ValueError):
        steady_rate(BatchSample(((0.1, 0.2),)))


def test_concurrency_row_and_goals():
    def batch(n: int, step_s: float) -> BatchSample:
        return BatchSample(tuple(tuple(step_s * i for i in range(1, 9)) for _ in range(n)))

    one = concurrency_row(1, {"runtime": [batch(1, 0.1)], "hf_generate": [batch(1, 0.1)]})
    eight = concurrency_row(
        8,
        {
            "runtime": [batch(8, 0.15)],
            "sdk_grpc": [batch(8, 0.16)],
            "hf_generate": [batch(8, 0.2)],
        },
    )
    assert one["runtime_tok_s"] == pytest.approx(10.0) and one["sdk_grpc_tok_s"] is None
    assert eight["runtime_tok_s"] == pytest.approx(8 / 0.15)
    assert eight["itl_p50_s"] == pytest.approx(0.15) and eight["ttft_p50_s"] == pytest.approx(0.15)
    goals = concurrency_goals([one, eight], runtime_over_hf_loop=1.02)
    assert goals["batch8_over_single"]["value"] == pytest.approx(8 / 0.15 / 10.0)
    assert goals["batch8_over_single"]["met"] is True
    assert goals["batch8_over_hf_generate"]["met"] is True
    assert goals["sdk_over_runtime_batch8"]["value"] == pytest.approx(0.15 / 0.16)
    assert goals["single_over_hf_loop"]["met"] is True
    assert concurrency_goals([one], None)["batch8_over_single"]["met"] is None
