"""A suite the size of networkx's (~6,600 tests over ~265 modules) gives a report under 2 MB."""

from __future__ import annotations

import pytest
from report_support import networkx_like, write_run

from kakeya_evidence.report import write_report

pytestmark = pytest.mark.slow


def test_a_networkx_sized_suite_reports_in_under_2_mb_with_bounded_charts(tmp_path):
    tests = networkx_like()
    write_run(tmp_path, tests, suite={"workers": 4})
    report = write_report(tmp_path)
    assert report.html_bytes <= 2_000_000, report.html_bytes
    html = report.html_path.read_text()
    assert html.count("<tbody") == 6600
    modules = report.figures["modules"]
    assert len(modules.axes[0].get_yticklabels()) == 31
    assert tuple(modules.get_size_inches()) == (8.0, 7.0)
    timeline = report.figures["timeline"].axes[0]
    assert [t.get_text() for t in timeline.get_yticklabels()] == ["gw0", "gw1", "gw2", "gw3"]
