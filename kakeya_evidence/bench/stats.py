"""Pure parts of the benchmark: statistics over repeats, ratios, goals, bench.json assembly.

Nothing here touches a model; `kakeya_evidence.bench.runs` measures and this module turns
the raw samples into the `bench.json` document (see `assemble_bench`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BatchSample",
    "DecodeSample",
    "SessionTrace",
    "Summary",
    "assemble_bench",
    "concurrency_goals",
    "concurrency_row",
    "decode_rate",
    "evaluate_goals",
    "paired_ratio",
    "quantile",
    "steady_rate",
    "summarize",
]

# Goals from issue 6 section 3 and issue 12: reported, never asserted.
GOAL_RUNTIME_OVER_HF = 1.0
GOAL_SDK_OVER_RUNTIME = 0.9
GOAL_INCREMENTAL_LAST_FIRST = 1.3
GOAL_BATCH8_OVER_SINGLE = 4.0
GOAL_BATCH8_OVER_HF_GENERATE = 1.0


@dataclass(frozen=True)
class Summary:
    """Median and spread of one metric over repeats; `iqr` is the spread bench.json reports."""

    median: float
    iqr: float
    min: float
    max: float
    n: int


@dataclass(frozen=True)
class DecodeSample:
    """One generation of one variant: time to first token and each token's arrival.

    `stamps_s[i]` is when token i was available, in seconds after the request started.
    """

    ttft_s: float
    stamps_s: tuple[float, ...]
    token_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class BatchSample:
    """n sessions generating together: each session's token arrival times, in seconds after
    the common start (for HF's batched generate every row shares the step stamps)."""

    stamps_s: tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class SessionTrace:
    """One repeat of the long session: one entry per turn for each series."""

    incremental_s: list[float] = field(default_factory=list)
    full_reprefill_s: list[float] = field(default_factory=list)
    kv_live_bytes: list[int] = field(default_factory=list)
    prefill_tokens: list[int] = field(default_factory=list)
    full_prefill_tokens: list[int] = field(default_factory=list)
    history_tokens: list[int] = field(default_factory=list)
    kv_bound_bytes: int = 0


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile with linear interpolation between order statistics (numpy's default).

    Raises:
        ValueError: `values` is empty or `q` is outside [0, 1].
    """
    if not values:
        raise ValueError("quantile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(values: Sequence[float]) -> Summary:
    """Median, interquartile range, min, max and count.

    Raises:
        ValueError: `values` is empty.
    """
    if not values:
        raise ValueError("summary of no values")
    return Summary(
        median=quantile(values, 0.5),
        iqr=quantile(values, 0.75) - quantile(values, 0.25),
        min=min(values),
        max=max(values),
        n=len(values),
    )


def decode_rate(stamps_s: Sequence[float]) -> float:
    """Steady decode tokens/s: tokens 2..G over the time from token 1 to token G-1.

    The first decode step is left out for every variant alike: on CUDA it holds the
    runtime's one-off graph capture per session, which is not a steady-state cost.

    Raises:
        ValueError: fewer than 3 tokens, or timestamps that do not increase.
    """
    if len(stamps_s) < 3:
        raise ValueError(f"decode rate needs at least 3 tokens, got {len(stamps_s)}")
    elapsed = stamps_s[-1] - stamps_s[1]
    if elapsed <= 0:
        raise ValueError("token timestamps must increase")
    return (len(stamps_s) - 2) / elapsed


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float | None:
    """Median of per-repeat ratios; pairing within a repeat cancels drift between repeats."""
    pairs = [n / d for n, d in zip(numerator, denominator, strict=False) if d > 0]
    return quantile(pairs, 0.5) if pairs else None


def _group(samples: Mapping[str, Sequence[float]]) -> tuple[dict[str, Any], ...]:
    """(medians, iqr spreads, [min, max] ranges) for each variant with samples."""
    medians: dict[str, float] = {}
    spreads: dict[str, float] = {}
    ranges: dict[str, list[float]] = {}
    for name, values in samples.items():
        if values:
            s = summarize(values)
            medians[name], spreads[name], ranges[name] = s.median, s.iqr, [s.min, s.max]
    return medians, spreads, ranges


def _per_turn(traces: Sequence[SessionTrace], attribute: str) -> tuple[list[float], list[float]]:
    """Per-turn median and IQR over repeats of one series."""
    series = [getattr(t, attribute) for t in traces]
    turns = min(len(s) for s in series)
    summaries = [summarize([s[i] for s in series]) for i in range(turns)]
    return [x.median for x in summaries], [x.iqr for x in summaries]


def _last_first(latency: Sequence[float]) -> float | None:
    return latency[-1] / latency[0] if latency and latency[0] > 0 else None


def assemble_session(traces: Sequence[SessionTrace], turns: int) -> dict[str, Any]:
    """The `long_session` section from one or more repeats of the turn loop.

    Raises:
        ValueError: no traces.
    """
    if not traces:
        raise ValueError("long session needs at least one repeat")
    incremental, incremental_iqr = _per_turn(traces, "incremental_s")
    full, full_iqr = _per_turn(traces, "full_reprefill_s")
    first = traces[0]
    return {
        "turns": turns,
        "repeats": len(traces),
        "latency_s": {"incremental": incremental, "full_reprefill": full},
        "latency_s_spread": {"incremental": incremental_iqr, "full_reprefill": full_iqr},
        "ratio_last_first": {
            "incremental": _last_first(incremental),
            "full_reprefill": _last_first(full),
        },
        "kv_live_bytes": list(first.kv_live_bytes),
        "kv_bound_bytes": first.kv_bound_bytes,
        "prefill_tokens": list(first.prefill_tokens),
        "full_reprefill_prefill_tokens": list(first.full_prefill_tokens),
        "history_tokens": list(first.history_tokens),
    }


def _ratios(decode: Mapping[str, Sequence[float]]) -> dict[str, float | None]:
    """Paired ratios of decode rates; `padding` (always padded over as served: what a single
    session would pay for fixed lanes) only where the padded twin ran."""
    runtime, hf_loop = decode.get("runtime") or [], decode.get("hf_loop") or []
    ratios = {
        "runtime_over_hf_loop": paired_ratio(runtime, hf_loop),
        "runtime_over_hf_generate": paired_ratio(runtime, decode.get("hf_generate") or []),
        "sdk_over_runtime": paired_ratio(decode.get("sdk_grpc") or [], runtime),
    }
    if decode.get("runtime_padded"):
        ratios["padding"] = paired_ratio(decode["runtime_padded"], runtime)
    return ratios


def _goal(value: float | None, target: float, at_least: bool) -> dict[str, Any]:
    met = None if value is None else (value >= target if at_least else value <= target)
    return {"value": value, "target": f"{'>=' if at_least else '<='} {target}", "met": met}


def _kv_flat(session: Mapping[str, Any], sink: int, window: int) -> bool | None:
    """KV bytes equal once history exceeds S+W, and never above the bound."""
    live, history = session["kv_live_bytes"], session["history_tokens"]
    bound = session["kv_bound_bytes"]
    past = [b for b, h in zip(live, history, strict=False) if h > sink + window]
    if not past:
        return None
    return len(set(past)) == 1 and max(live) <= bound


def evaluate_goals(
    ratios: Mapping[str, float | None], session: Mapping[str, Any], sink: int, window: int
) -> dict[str, Any]:
    """Issue 6 section 3 goals against this run's numbers (`met` None: not measured)."""
    last_first = session["ratio_last_first"]
    incremental, full = last_first["incremental"], last_first["full_reprefill"]
    # Only past the window does the incremental turn stop growing while a full re-prefill
    # keeps on; a shorter session measures nothing here.
    outgrown = any(h > sink + window for h in session["history_tokens"])
    grows = None if incremental is None or full is None or not outgrown else full > incremental
    return {
        "runtime_over_hf_loop": _goal(ratios["runtime_over_hf_loop"], GOAL_RUNTIME_OVER_HF, True),
        "runtime_over_hf_generate": _goal(
            ratios["runtime_over_hf_generate"], GOAL_RUNTIME_OVER_HF, True
        ),
        "sdk_over_runtime": _goal(ratios["sdk_over_runtime"], GOAL_SDK_OVER_RUNTIME, True),
        "incremental_last_first": _goal(incremental, GOAL_INCREMENTAL_LAST_FIRST, False),
        "full_reprefill_grows": {"value": full, "target": "> incremental", "met": grows},
        "kv_flat_past_bound": {
            "value": None,
            "target": "flat",
            "met": _kv_flat(session, sink, window),
        },
    }


def _same_tokens(samples: Mapping[str, Sequence[DecodeSample]]) -> dict[str, int | None]:
    """Per variant, how many leading tokens of its first sample match the runtime's.

    Equal to G when the greedy paths agree; bf16 numerics can part near-ties earlier.
    """
    runs = samples.get("runtime") or []
    if not runs:
        return {}
    reference = runs[0]
    return {
        name: _common_prefix(runs[0].token_ids, reference.token_ids)
        for name, runs in samples.items()
        if runs and name != "runtime"
    }


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count


def assemble_bench(
    meta: Mapping[str, Any],
    samples: Mapping[str, Sequence[DecodeSample]],
    session: Mapping[str, Any],
    sink: int,
    window: int,
) -> dict[str, Any]:
    """The whole bench.json document.

    Args:
        meta: model, device, dtype, host, config, wall_s (copied in first).
        samples: per variant, one `DecodeSample` per repeat, repeats interleaved.
        session: the `long_session` section (`assemble_session`).
        sink: attention-sink tokens S (for the KV-flat goal).
        window: window tokens W.
    """
    decode = {n: [decode_rate(s.stamps_s) for s in runs] for n, runs in samples.items()}
    first_step = {n: [s.stamps_s[1] - s.stamps_s[0] for s in runs] for n, runs in samples.items()}
    ttft = {n: [s.ttft_s for s in runs] for n, runs in samples.items() if n in _TTFT_VARIANTS}
    decode_med, decode_iqr, decode_range = _group(decode)
    ttft_med, ttft_iqr, ttft_range = _group(ttft)
    ratios = _ratios(decode)
    return {
        **meta,
        "decode_tok_s": decode_med,
        "decode_tok_s_spread": decode_iqr,
        "decode_tok_s_range": decode_range,
        "ttft_s": ttft_med,
        "ttft_s_spread": ttft_iqr,
        "ttft_s_range": ttft_range,
        "first_decode_step_s": _group(first_step)[0],
        "ratios": ratios,
        "tokens_matching_runtime": _same_tokens(samples),
        "long_session": dict(session),
        "goals": evaluate_goals(ratios, session, sink, window),
    }


_TTFT_VARIANTS = ("runtime", "sdk_grpc", "runtime_padded")


# -- the concurrency sweep ----------------------------------------------------------------


def steady_rate(sample: BatchSample) -> float:
    """Aggregate decode tokens/s while every session decodes.

    The window runs from the latest second token to the earliest last token (sessions join
    and leave at different steps); every token of every session inside it counts. When the
    sessions barely overlap, the whole span from the first second token to the last token.

    Raises:
        ValueError: a session has fewer than 3 tokens.
    """
    sessions = sample.stamps_s
    if not sessions or any(len(s) < 3 for s in sessions):
        raise ValueError("each session needs at least 3 tokens")
    start, end = max(s[1] for s in sessions), min(s[-1] for s in sessions)
    if end - start <= 0:
        start, end = min(s[1] for s in sessions), max(s[-1] for s in sessions)
    count = sum(1 for s in sessions for t in s if start < t <= end)
    return count / (end - start)


def concurrency_row(n: int, samples: Mapping[str, Sequence[BatchSample]]) -> dict[str, Any]:
    """One row of bench.json's `concurrency` list: medians over repeats of each variant's
    aggregate rate, and the runtime's inter-token latency and time to first token."""
    rates = {name: [steady_rate(s) for s in runs] for name, runs in samples.items() if runs}
    runtime = samples.get("runtime") or []
    stamps = [session for sample in runtime for session in sample.stamps_s]
    gaps = [b - a for session in stamps for a, b in itertools.pairwise(session[1:])]
    firsts = [session[0] for session in stamps if session]
    row = {
        "n": n,
        "runtime_tok_s": _median_or_none(rates.get("runtime")),
        "sdk_grpc_tok_s": _median_or_none(rates.get("sdk_grpc")),
        "hf_generate_tok_s": _median_or_none(rates.get("hf_generate")),
        "itl_p50_s": quantile(gaps, 0.5) if gaps else None,
        "itl_p95_s": quantile(gaps, 0.95) if gaps else None,
        "ttft_p50_s": quantile(firsts, 0.5) if firsts else None,
    }
    if rates.get("sdk_grpc_per_token"):  # measured with --sdk-compare only
        row["sdk_grpc_per_token_tok_s"] = _median_or_none(rates["sdk_grpc_per_token"])
    return row


def concurrency_goals(
    rows: Sequence[Mapping[str, Any]], runtime_over_hf_loop: float | None
) -> dict[str, Any]:
    """Issue 12's goals from the sweep (`met` None where the sweep lacks n=1 or n=8)."""
    by_n = {row["n"]: row for row in rows}
    one, eight = by_n.get(1) or {}, by_n.get(8) or {}
    return {
        "batch8_over_single": _goal(
            _ratio(eight.get("runtime_tok_s"), one.get("runtime_tok_s")),
            GOAL_BATCH8_OVER_SINGLE,
            True,
        ),
        "batch8_over_hf_generate": _goal(
            _ratio(eight.get("runtime_tok_s"), eight.get("hf_generate_tok_s")),
            GOAL_BATCH8_OVER_HF_GENERATE,
            True,
        ),
        "single_over_hf_loop": _goal(runtime_over_hf_loop, GOAL_RUNTIME_OVER_HF, True),
        "sdk_over_runtime_batch8": _goal(
            _ratio(eight.get("sdk_grpc_tok_s"), eight.get("runtime_tok_s")),
            GOAL_SDK_OVER_RUNTIME,
            True,
        ),
    }


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def _median_or_none(values: Sequence[float] | None) -> float | None:
    return quantile(values, 0.5) if values else None
