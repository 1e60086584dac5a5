from __future__ import annotations

import base64
import json
from pathlib import Path

from matplotlib.figure import Figure

from kakeya_evidence.report import plots

PERF = json.loads((Path(__file__).parents[1] / "fixtures" / "bench.json").read_text())
TESTS = [
    {"nodeid": "a.py::x", "module": "a.py", "outcome": "passed", "duration_s": 0.2},
    {"nodeid": "a.py::y", "module": "a.py", "outcome": "failed", "duration_s": 1.5},
    {"nodeid": "b.py::z", "module": "b.py", "outcome": "skipped", "duration_s": 0.0},
]


def test_module_chart_stacks_outcomes_per_module():
    figure = plots.plot_module_outcomes(TESTS)
    axes = figure.axes[0]
    assert isinstance(figure, Figure)
    assert [t.get_text() for t in axes.get_yticklabels()] == ["a.py", "b.py"]
    assert sorted(t.get_text() for t in axes.get_legend().get_texts()) == [
        "failed",
        "passed",
        "skipped",
    ]


def test_slowest_tests_are_sorted_by_duration():
    axes = plots.plot_slowest_tests(TESTS, limit=2).axes[0]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["a.py::y", "a.py::x"]


def test_perf_plots_draw_both_latency_series_the_bound_and_error_bars():
    latency = plots.plot_turn_latency(PERF).axes[0]
    assert sorted(line.get_label() for line in latency.get_lines()) == [
        "full_reprefill",
        "incremental",
    ]
    kv = plots.plot_kv_bytes(PERF).axes[0]
    bound = [line for line in kv.get_lines() if line.get_label() == "bound"]
    assert bound and bound[0].get_ydata()[0] == PERF["long_session"]["kv_bound_bytes"] / 2**20
    bars = plots.plot_throughput(PERF).axes[0]
    assert len(bars.patches) == 4
    bar_container = next(c for c in bars.containers if hasattr(c, "errorbar"))
    assert bar_container.errorbar is not None


def test_figures_encode_as_png_data_uris():
    uri = plots.figure_to_data_uri(plots.plot_slowest_tests(TESTS))
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
