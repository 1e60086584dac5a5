"""Plots for the report. Each returns a matplotlib Figure; none shows or saves.

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot), so no
GUI backend or global state is involved. Every chart has a bounded size, whatever
the number of tests, modules or workers. matplotlib (most of a second to import) loads
when the first figure is drawn: a report whose figures are all cached never loads it.
"""

from __future__ import annotations

import base64
import io
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kakeya_evidence.common.schema import Outcome, TestRow

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "COLORS",
    "MAX_MODULE_BARS",
    "figure_to_data_uri",
    "plot_concurrency",
    "plot_kv_bytes",
    "plot_module_outcomes",
    "plot_slowest_tests",
    "plot_throughput",
    "plot_timeline",
    "plot_trends",
    "plot_turn_latency",
    "timeline_lanes",
]

COLORS = {
    Outcome.PASSED: "#2e7d32",
    Outcome.FLAKY: "#f9a825",
    Outcome.FAILED: "#c62828",
    Outcome.ERROR: "#6a1b9a",
    Outcome.SKIPPED: "#9e9e9e",
    Outcome.XFAILED: "#78909c",
    Outcome.XPASSED: "#ef6c00",
    Outcome.NOT_RUN: "#d7ccc8",
}
MAX_MODULE_BARS = 30
MODULE_CHART_HEIGHT_IN = 7.0
_MAX_LANES = 32
SERIAL_LANE = "main"


def figure_to_data_uri(figure: Figure, dpi: int = 80) -> str:
    """Encode a figure as a PNG ``data:`` URI for inlining in HTML."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def plot_module_outcomes(rows: Sequence[TestRow], limit: int = MAX_MODULE_BARS) -> Figure:
    """Stacked horizontal bars of outcome counts for the largest modules, at a fixed height.

    The ``limit`` modules with the most tests get a bar each; the rest share one
    "others" bar, so a suite of 265 modules draws the same size of chart as one of 5.
    """
    per_module: dict[str, Counter[str]] = {}
    for row in rows:
        per_module.setdefault(row.module, Counter())[str(row.outcome)] += 1
    ranked = sorted(per_module, key=lambda m: (-sum(per_module[m].values()), m))
    labels = [_short(m, 50) for m in ranked[:limit]]
    bars = [per_module[m] for m in ranked[:limit]]
    rest = ranked[limit:]
    if rest:
        labels.append(f"others ({len(rest)} modules)")
        bars.append(sum((per_module[m] for m in rest), Counter()))
    figure = _figure(figsize=(8, MODULE_CHART_HEIGHT_IN))
    axes = figure.add_subplot()
    left = [0] * len(bars)
    for outcome, color in COLORS.items():
        values = [bar[outcome] for bar in bars]
        if any(values):
            axes.barh(range(len(bars)), values, left=left, color=color, label=outcome)
            left = [a + b for a, b in zip(left, values, strict=True)]
    axes.set_yticks(range(len(bars)), labels, fontsize="small" if len(bars) > 15 else None)
    axes.set_xlabel("tests")
    axes.invert_yaxis()
    if bars:
        axes.legend(loc="lower right", fontsize="small")
    figure.suptitle(f"Outcomes per module ({len(ranked)} modules)")
    return figure


def plot_slowest_tests(rows: Sequence[TestRow], limit: int = 15) -> Figure:
    """Horizontal bars of the slowest tests' durations."""
    slowest = sorted(rows, key=lambda r: r.duration_s, reverse=True)[:limit]
    figure = _figure(figsize=(8, 1.2 + 0.3 * max(1, len(slowest))))
    axes = figure.add_subplot()
    labels = [_short(r.nodeid) for r in slowest]
    colors = [COLORS.get(r.outcome, "#555555") for r in slowest]
    axes.barh(labels, [r.duration_s for r in slowest], color=colors)
    axes.invert_yaxis()
    axes.set_xlabel("seconds")
    figure.suptitle(f"Slowest {len(slowest)} tests")
    return figure


def timeline_lanes(rows: Sequence[TestRow]) -> dict[str, list[TestRow]]:
    """Rows with a start and stop time, per worker lane (one lane when the suite ran serially).

    Merged runs that differ in device get one lane per device and worker.
    """
    lanes: dict[str, list[TestRow]] = {}
    for row in rows:
        if row.start_s is None or row.stop_s is None:
            continue
        lane = "/".join(p for p in (row.device, row.worker) if p) or SERIAL_LANE
        lanes.setdefault(lane, []).append(row)
    return dict(sorted(lanes.items()))


def plot_timeline(rows: Sequence[TestRow]) -> Figure:
    """Each test's start and end on the suite's clock, one lane per worker.

    Gaps between bars are idle time (collection, fixtures outside tests, a stalled
    worker); a long bar at a lane's start is usually a slow session-scoped setup.
    """
    lanes = list(timeline_lanes(rows).items())[:_MAX_LANES]
    figure = _figure(figsize=(10, min(8.0, 1.4 + 0.35 * max(1, len(lanes)))))
    axes = figure.add_subplot()
    long_s = _long_test_s([r for _, lane in lanes for r in lane])
    for index, (_, lane) in enumerate(lanes):
        spans = [(r.start_s or 0.0, max(0.0, (r.stop_s or 0.0) - (r.start_s or 0.0))) for r in lane]
        colors = [COLORS.get(r.outcome, "#555555") for r in lane]
        axes.broken_barh(spans, (index - 0.4, 0.8), facecolors=colors, linewidth=0)
        _mark_tests(axes, index, lane, long_s)
    axes.set_yticks(range(len(lanes)), [name for name, _ in lanes])
    axes.invert_yaxis()
    axes.set_xlabel("seconds since the suite started")
    count = sum(len(lane) for _, lane in lanes)
    failing = sum(
        1 for _, lane in lanes for r in lane if r.outcome in (Outcome.FAILED, Outcome.ERROR)
    )
    figure.suptitle(
        f"Timeline: {count} tests on {len(lanes)} lane(s); ticks mark {failing} failing, "
        f"outlines tests of {long_s:.0f} s or more"
    )
    return figure


def _long_test_s(rows: Sequence[TestRow]) -> float:
    """A test this long (2% of the run, at least 1 s) gets its own outlined mark and label."""
    stops = [r.stop_s for r in rows if r.stop_s is not None]
    return max(1.0, 0.02 * (max(stops) if stops else 0.0))


def _mark_tests(axes: Any, index: int, lane: Sequence[TestRow], long_s: float) -> None:
    """Marks that stay visible at any density: a tick per failure, an outline per long test.

    Dense passing tests merge into one bar (their bins); a failure among them is still a
    full-height tick in its own colour, and a long test is outlined and named.
    """
    failing = [r for r in lane if r.outcome in (Outcome.FAILED, Outcome.ERROR)]
    for row in failing:
        axes.plot(
            [row.start_s], [index], marker="|", markersize=16, markeredgewidth=2,
            color=COLORS[row.outcome], gid="failure-mark",
        )  # fmt: skip
    for row in lane:
        took = (row.stop_s or 0.0) - (row.start_s or 0.0)
        if took >= long_s:
            axes.broken_barh(
                [(row.start_s or 0.0, took)], (index - 0.4, 0.8), facecolors="none",
                edgecolors="#000000", linewidth=1.2, gid="long-test",
            )  # fmt: skip
            label = f"{_short(row.name or row.nodeid, 30)} ({took:.1f} s)"
            axes.text((row.start_s or 0.0) + took / 2, index, label, ha="center",
                      va="center", fontsize="x-small", clip_on=True)  # fmt: skip


def plot_trends(runs: Sequence[dict[str, Any]]) -> Figure:
    """Pass rate, pytest wall time and perf metrics over the history's runs (this run last)."""
    perf_names = sorted({name for run in runs for name in (run.get("perf") or {})})
    groups = [n for n in ("decode_tok_s", "ttft_s") if any(p.startswith(n) for p in perf_names)]
    panels = 2 + len(groups)
    figure = _figure(figsize=(9, 2.2 * panels))
    axes = figure.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    xs = list(range(len(runs)))
    _trend_line(axes[0], xs, [r.get("pass_rate") for r in runs], "pass rate", 100.0)
    axes[0].set_ylabel("pass rate (%)")
    _trend_line(axes[1], xs, [r.get("pytest_wall_s") for r in runs], "pytest wall", 1.0)
    axes[1].set_ylabel("pytest (s)")
    for panel, group in zip(axes[2:], groups, strict=True):
        for name in (n for n in perf_names if n.startswith(group + ".")):
            values = [(r.get("perf") or {}).get(name) for r in runs]
            _trend_line(panel, xs, values, name.split(".", 1)[1], 1.0)
        panel.set_ylabel(group)
        panel.legend(fontsize="x-small", loc="best")
    labels = [str(r.get("generated_at") or "?")[5:16].replace("T", " ") for r in runs]
    axes[-1].set_xticks(xs, labels, rotation=45, ha="right", fontsize="x-small")
    figure.suptitle(f"Trends over {len(runs)} runs (this run last)")
    return figure


def plot_turn_latency(perf: dict[str, Any]) -> Figure:
    """Per-turn latency of a long session: incremental prefill against full re-prefill."""
    latency = (perf.get("long_session") or {}).get("latency_s") or {}
    figure = _figure(figsize=(7, 3.5))
    axes = figure.add_subplot()
    for name, values in latency.items():
        axes.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=name)
    axes.set_xlabel("turn")
    axes.set_ylabel("latency (s)")
    axes.legend(fontsize="small")
    figure.suptitle("Per-turn latency")
    return figure


def plot_kv_bytes(perf: dict[str, Any]) -> Figure:
    """Live KV-cache bytes per turn with the configured bound."""
    session = perf.get("long_session") or {}
    live = session.get("kv_live_bytes") or []
    figure = _figure(figsize=(7, 3.5))
    axes = figure.add_subplot()
    axes.plot(range(1, len(live) + 1), [b / 2**20 for b in live], marker="o", markersize=3)
    bound = session.get("kv_bound_bytes")
    if isinstance(bound, int | float):
        axes.axhline(bound / 2**20, color="#c62828", linestyle="--", label="bound")
        axes.legend(fontsize="small")
    axes.set_xlabel("turn")
    axes.set_ylabel("KV live (MiB)")
    figure.suptitle("KV cache size over turns")
    return figure


def plot_throughput(perf: dict[str, Any]) -> Figure:
    """Decode tokens/s per path, with the measured spread as error bars."""
    values = {k: v for k, v in (perf.get("decode_tok_s") or {}).items() if v is not None}
    spreads = perf.get("decode_tok_s_spread") or {}
    figure = _figure(figsize=(7, 3.5))
    axes = figure.add_subplot()
    names = list(values)
    errors = [spreads.get(n) or 0.0 for n in names]
    axes.bar(names, [values[n] for n in names], yerr=errors, capsize=4, color="#1565c0")
    axes.set_ylabel("decode tokens/s")
    figure.suptitle("Decode throughput")
    return figure


CONCURRENCY_SERIES = (
    ("runtime_tok_s", "runtime (in-process)"),
    ("sdk_grpc_tok_s", "SDK over gRPC"),
    ("hf_generate_tok_s", "HF generate(), batched"),
)
LATENCY_SERIES = (
    ("itl_p50_s", "inter-token p50"),
    ("itl_p95_s", "inter-token p95"),
    ("ttft_p50_s", "TTFT p50"),
)


def plot_concurrency(perf: dict[str, Any]) -> Figure:
    """Aggregate decode tokens/s and per-session latency against n sessions generating together."""
    rows = sorted(perf.get("concurrency") or [], key=lambda row: row.get("n") or 0)
    ns = [int(row.get("n") or 0) for row in rows]
    figure = _figure(figsize=(10, 3.5))
    rate, latency = figure.subplots(1, 2)
    for key, label in (*CONCURRENCY_SERIES, *_peer_series(rows)):
        _trend_line(rate, ns, [row.get(key) for row in rows], label, 1.0)
    for key, label in LATENCY_SERIES:
        _trend_line(latency, ns, [row.get(key) for row in rows], label, 1000.0)
    for axes, unit in ((rate, "aggregate decode tokens/s"), (latency, "ms")):
        axes.set_xlabel("sessions generating together (n)")
        axes.set_ylabel(unit)
        axes.set_xscale("log", base=2)
        axes.set_xticks(ns, [str(n) for n in ns])
        axes.legend(fontsize="small")
    figure.suptitle("Continuous batching: throughput and latency against n")
    return figure


def _peer_series(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The peers' aggregate rates in the sweep rows (``llama_cpp_bf16_tok_s``: llama.cpp BF16)."""
    keys = sorted({k for row in rows for k in row if k.startswith("llama_cpp_")})
    return [
        (k, "llama.cpp " + k.removeprefix("llama_cpp_").removesuffix("_tok_s").upper())
        for k in keys
    ]


def _figure(figsize: tuple[float, float]) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def _trend_line(axes: Any, xs: list[int], values: list[Any], label: str, scale: float) -> None:
    points = [(x, v * scale) for x, v in zip(xs, values, strict=True) if _is_number(v)]
    if points:
        axes.plot(*zip(*points, strict=True), marker="o", markersize=3, label=label)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _short(nodeid: str, width: int = 60) -> str:
    return nodeid if len(nodeid) <= width else "..." + nodeid[-(width - 3) :]
