"""The timeline stays readable at any suite size: failures and long tests keep own marks."""

from __future__ import annotations

from kakeya_evidence.common.schema import Outcome, TestRow
from kakeya_evidence.report.plots import plot_timeline


def _rows() -> list[TestRow]:
    rows, t = [], 0.0
    for i in range(3000):  # dense passing tests, 10 ms each
        outcome = Outcome.FAILED if i in (10, 2000) else Outcome.PASSED
        outcome = Outcome.ERROR if i == 2500 else outcome
        rows.append(TestRow(f"t.py::t{i}", outcome, start_s=t, stop_s=t + 0.01))
        t += 0.01
    rows.append(TestRow("t.py::test_slow", Outcome.PASSED, start_s=t, stop_s=t + 25.0))
    return rows


def test_each_failure_gets_a_mark_and_a_long_test_an_outline_and_its_name():
    figure = plot_timeline(_rows())
    axes = figure.axes[0]
    marks = [line for line in axes.lines if line.get_gid() == "failure-mark"]
    assert len(marks) == 3
    outlines = [c for c in axes.collections if c.get_gid() == "long-test"]
    assert len(outlines) == 1
    assert any("test_slow (25.0 s)" in text.get_text() for text in axes.texts)
    assert "3 failing" in figure._suptitle.get_text()
