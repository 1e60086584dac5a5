from __future__ import annotations

import base64

from matplotlib.figure import Figure
from report_support import PERF, make_test

from kakeya_evidence.common.schema import TestRow
from kakeya_evidence.report import plots

ROWS = [
    TestRow.from_dict({"nodeid": "a.py::x", "outcome": "passed", "duration_s": 0.2}),
    TestRow.from_dict({"nodeid": "a.py::y", "outcome": "failed", "duration_s": 1.5}),
    TestRow.from_dict({"nodeid": "b.py::z", "outcome": "skipped", "duration_s": 0.0}),
]


def _modules(count: int) -> list[TestRow]:
    return [
        TestRow.from_dict({"nodeid": f"m{m:03d}.py::t{i}", "outcome": "passed"})
        for m in range(count)
        for i in range(1 + m % 4)
    ]


def test_module_chart_stacks_outcomes_per_module():
    figure = plots.plot_module_outcomes(ROWS)
    axes = figure.axes[0]
    assert isinstance(figure, Figure)
    assert [t.get_text() for t in axes.get_yticklabels()] == ["a.py", "b.py"]
    assert sorted(t.get_text() for t in axes.get_legend().get_texts()) == [
        "failed",
        "passed",
        "skipped",
    ]


def test_module_chart_keeps_the_30_largest_and_one_others_bar_at_a_fixed_height():
    many = plots.plot_module_outcomes(_modules(265))
    labels = [t.get_text() for t in many.axes[0].get_yticklabels()]
    assert len(labels) == 31 and labels[-1] == "others (235 modules)"
    assert all(int(label[1:4]) % 4 == 3 for label in labels[:30])  # the modules with 4 tests
    few = plots.plot_module_outcomes(_modules(5))
    assert tuple(many.get_size_inches()) == tuple(few.get_size_inches())
    others = sum(p.get_width() for p in many.axes[0].patches if p.get_y() > 29.5)
    assert others == sum(1 + m % 4 for m in range(265)) - sum(
        sorted((1 + m % 4 for m in range(265)), reverse=True)[:30]
    )


def test_slowest_tests_are_sorted_by_duration():
    axes = plots.plot_slowest_tests(ROWS, limit=2).axes[0]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["a.py::y", "a.py::x"]


def test_the_timeline_draws_each_test_on_its_workers_lane():
    rows = [
        TestRow.from_dict(make_test(f"t.py::t{i}", start_s=i, stop_s=i + 0.5, worker=f"gw{i % 2}"))
        for i in range(6)
    ]
    rows.append(TestRow.from_dict(make_test("t.py::untimed")))
    assert {k: len(v) for k, v in plots.timeline_lanes(rows).items()} == {"gw0": 3, "gw1": 3}
    axes = plots.plot_timeline(rows).axes[0]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["gw0", "gw1"]
    spans = [path.vertices[:, 0].min() for c in axes.collections for path in c.get_paths()]
    assert sorted(round(x, 3) for x in spans) == [0, 1, 2, 3, 4, 5]
    serial = [TestRow.from_dict(make_test("t.py::a", start_s=0.0, stop_s=1.0))]
    assert list(plots.timeline_lanes(serial)) == ["main"]


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
    uri = plots.figure_to_data_uri(plots.plot_slowest_tests(ROWS))
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_concurrency_plot_draws_each_series_against_n():
    figure = plots.plot_concurrency(PERF)
    rate, latency = figure.axes
    assert [line.get_label() for line in rate.get_lines()] == [
        "runtime (in-process)",
        "SDK over gRPC",
        "HF generate(), batched",
    ]
    assert list(rate.get_lines()[0].get_xdata()) == [1, 4, 8]
    assert list(latency.get_lines()[0].get_ydata()) == [2.4, 2.8, 3.2]  # ms
