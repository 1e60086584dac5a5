"""The performance table gives every value and spread a unit, time to first token in ms."""

from __future__ import annotations

import re

from report_support import PERF, make_test, write_run

from kakeya_evidence.report import write_report


def test_time_to_first_token_is_in_ms_and_every_row_names_its_unit(tmp_path):
    write_run(tmp_path, [make_test("t.py::a")], perf=PERF)
    html = write_report(tmp_path).html_path.read_text()
    section = html[html.index('id="perf"') :]
    table = section[: section.index("</table>")]
    assert "<th>spread (same unit)</th><th>unit</th>" in table
    rows = re.findall(
        r"<tr><td>([^<]+)</td><td>[^<]*</td><td>[^<]*</td><td>([^<]+)</td></tr>", table
    )
    assert rows and all(unit in ("ms", "tok/s", "ratio") for _, unit in rows)
    assert all(unit == "ms" for metric, unit in rows if metric.startswith("ttft_s"))
