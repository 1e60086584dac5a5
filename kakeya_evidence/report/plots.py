"""Plots for the report. Each returns a matplotlib Figure; none shows or saves.

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot), so no
GUI backend or global state is involved.
"""

from __future__ import annotations

import base64
import io
from collections import Counter
from typing import Any

from matplotlib.figure import Figure

__all__ = [
    "figure_to_data_uri",
    "plot_kv_bytes",
    "plot_module_outcomes",
    "plot_slowest_tests",
    "plot_throughput",
    "plot_turn_latency",
]

COLORS = {
    "passed": "#2e7d32",
    "flaky": "#f9a825",
    "failed": "#c62828",
    "error": "#6a1b9a",
    "skipped": "#9e9e9e",
    "xfailed": "#78909c",
    "xpassed": "#ef6c00",
}


def figure_to_data_uri(figure: Figure, dpi: int = 80) -> str:
    """Encode a figure as a PNG ``data:`` URI for inlining in HTML."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def plot_module_outcomes(tests: list[dict[str, Any]]) -> Figure:
    """Stacked horizontal bars: outcome counts per test module."""
    per_module: dict[str, Counter[str]] = {}
    for test in tests:
        per_module.setdefault(test["module"], Counter())[test["outcome"]] += 1
    modules = sorted(per_module)
    figure = Figure(figsize=(8, 1.2 + 0.35 * max(1, len(modules))))
    axes = figure.add_subplot()
    left = [0] * len(modules)
    for outcome, color in COLORS.items():
        values = [per_module[m][outcome] for m in modules]
        if any(values):
            axes.barh(modules, values, left=left, color=color, label=outcome)
            left = [a + b for a, b in zip(left, values, strict=True)]
    axes.set_xlabel("tests")
    axes.invert_yaxis()
    if modules:
        axes.legend(loc="lower right", fontsize="small")
    figure.suptitle("Outcomes per module")
    return figure


def plot_slowest_tests(tests: list[dict[str, Any]], limit: int = 15) -> Figure:
    """Horizontal bars of the slowest tests' durations."""
    slowest = sorted(tests, key=lambda t: t.get("duration_s", 0.0), reverse=True)[:limit]
    figure = Figure(figsize=(8, 1.2 + 0.3 * max(1, len(slowest))))
    axes = figure.add_subplot()
    labels = [_short(t["nodeid"]) for t in slowest]
    colors = [COLORS.get(t["outcome"], "#555555") for t in slowest]
    axes.barh(labels, [t.get("duration_s", 0.0) for t in slowest], color=colors)
    axes.invert_yaxis()
    axes.set_xlabel("seconds")
    figure.suptitle(f"Slowest {len(slowest)} tests")
    return figure


def plot_turn_latency(perf: dict[str, Any]) -> Figure:
    """Per-turn latency of a long session: incremental prefill against full re-prefill."""
    latency = (perf.get("long_session") or {}).get("latency_s") or {}
    figure = Figure(figsize=(7, 3.5))
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
    figure = Figure(figsize=(7, 3.5))
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
    figure = Figure(figsize=(7, 3.5))
    axes = figure.add_subplot()
    names = list(values)
    errors = [spreads.get(n) or 0.0 for n in names]
    axes.bar(names, [values[n] for n in names], yerr=errors, capsize=4, color="#1565c0")
    axes.set_ylabel("decode tokens/s")
    figure.suptitle("Decode throughput")
    return figure


def _short(nodeid: str, width: int = 60) -> str:
    return nodeid if len(nodeid) <= width else "..." + nodeid[-(width - 3) :]
