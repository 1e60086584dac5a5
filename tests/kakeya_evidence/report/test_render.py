from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

from report_support import PERF, make_test, write_run

from kakeya_evidence.report import write_report
from kakeya_evidence.report.html import render_html
from kakeya_evidence.stages import write_stage

PAYLOAD = "<script>alert('x')</script>"


class _Page(HTMLParser):
    """Scripts, images and the test table's row bodies of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict] = []
        self.images: list[str] = []
        self.bodies: list[dict] = []
        self.inputs: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script":
            self.scripts.append(attributes)
        if tag == "img":
            self.images.append(attributes["src"])
        if tag == "tbody":
            self.bodies.append(attributes)
        if tag == "input":
            self.inputs.append(attributes)


def _write_stages(out: Path, *, cache_status: str = "ok") -> None:
    tests = [
        make_test(
            f"t.py::test_{PAYLOAD}",
            "failed",
            message=PAYLOAD,
            traceback=f"E   {PAYLOAD}",
            stdout=PAYLOAD,
            duration_s=0.5,
        ),
        make_test("t.py::test_skip", "skipped", message="needs a GPU"),
        make_test("u.py::test_ok", "passed", duration_s=2.0),
    ]
    write_run(out, tests)
    write_stage(
        out,
        "cache_prewarm",
        {"status": cache_status, "reason": "run: kakeya-runtime prewarm --model m", "cache": {}},
    )


def _page(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def test_report_escapes_test_strings_embeds_images_and_fetches_nothing(tmp_path: Path):
    _write_stages(tmp_path)
    (tmp_path / "bench.json").write_text(json.dumps(PERF))
    report = write_report(tmp_path, parameters={"model": "m", "device": "cpu"})
    html = (tmp_path / "report.html").read_text()
    assert PAYLOAD not in html
    assert "&lt;script&gt;alert(" in html
    page = _page(html)
    assert page.scripts == [{"type": "application/json", "id": "evidence-data"}, {}]
    assert len(page.images) == 6  # modules, slowest, 3 perf plots, concurrency
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", html)
    assert "<link" not in html
    assert report.html_bytes < 2_000_000
    assert report.evidence["verdict"] == "failed"


def test_the_embedded_json_cannot_close_its_script_tag(tmp_path: Path):
    closing = "</script><script>alert(1)</script><!--"
    write_run(tmp_path, [make_test("t.py::a", "failed", message=closing)])
    write_stage(tmp_path, "host_check", {"status": "ok", "host": {"os": closing}})
    html = write_report(tmp_path).html_path.read_text()
    data = html.split('<script type="application/json" id="evidence-data">')[1]
    data = data.split("</script>")[0]
    assert json.loads(data)["host"]["os"] == closing
    assert "tests" not in json.loads(data) and json.loads(data)["tests_count"] == 1


def test_every_test_has_a_row_passed_included_failures_first(tmp_path: Path):
    tests = [make_test(f"m{i % 3}.py::test_{i}", "passed") for i in range(40)]
    tests[25] = make_test("m1.py::test_25", "error", message="RuntimeError: setup broke")
    write_run(tmp_path, tests)
    html = write_report(tmp_path).html_path.read_text()
    page = _page(html)
    assert len(page.bodies) == 40
    assert page.bodies[0]["class"] == "t-error"
    first = html.split('<tbody id="t1" class="t-error">')[1].split("</tbody>")[0]
    assert "<td>m1.py</td><td><code>test_25</code></td><td>error</td>" in first
    assert "RuntimeError: setup broke" in first and "<details>" in first
    assert "python -m pytest m1.py::test_25" in first and "m1.py:3" in first


def test_the_table_reads_with_scripts_off_and_its_controls_wait_for_the_script(tmp_path: Path):
    _write_stages(tmp_path)
    html = write_report(tmp_path).html_path.read_text()
    assert '<div id="controls" hidden>' in html
    search = [i for i in _page(html).inputs if i.get("type") == "search"]
    assert search and search[0]["id"] == "test-search"
    assert [i["value"] for i in _page(html).inputs if i.get("type") == "checkbox"] == [
        "passed",
        "failed",
        "skipped",
    ]
    table = html[html.index('id="tests-table"') :].split("</table>")[0]
    assert table.count("<tbody") == 3  # rendered rows, not built by the script
    assert "<td><code>test_ok</code></td>" in table


def test_report_sections_come_in_reviewer_order(tmp_path: Path):
    _write_stages(tmp_path)
    (tmp_path / "bench.json").write_text(json.dumps(PERF))
    html = write_report(tmp_path).html_path.read_text()
    order = [
        'id="verdict"',
        'id="gates"',
        'id="counts"',
        'id="stages"',
        'id="categories"',
        'id="tests"',
        'id="skips"',
        'id="timeline"',
        'id="modules"',
        'id="slowest"',
        'id="perf"',
        'id="host"',
        'id="cache"',
        'id="suite"',
        'id="provenance"',
        'id="appendix"',
    ]
    positions = [html.index(marker) for marker in order]
    assert positions == sorted(positions)
    assert "needs a GPU" in html
    assert "python -m pytest" in html


def test_host_facts_are_in_human_units(tmp_path: Path):
    write_run(tmp_path, [make_test("t.py::a")])
    write_stage(
        tmp_path,
        "host_check",
        {"status": "ok", "host": {"memory_total_bytes": 17179869184, "disk_free_bytes": 5 * 2**20}},
    )
    host = write_report(tmp_path).html_path.read_text().split('id="host"')[1].split("</section>")[0]
    assert "16.0 GiB" in host and "5.0 MiB" in host and "17179869184" not in host


def test_the_header_says_what_changed_against_the_baseline_first(tmp_path: Path):
    from kakeya_evidence.report import ReportConfig

    write_run(tmp_path / "ev", [make_test("t.py::a", "failed"), make_test("t.py::b")])
    baseline = tmp_path / "b.json"
    tests = [{"nodeid": "t.py::a", "outcome": "passed"}, {"nodeid": "t.py::b", "outcome": "failed"}]
    baseline.write_text(json.dumps({"tests": tests, "provenance": {"commit": "feedface"}}))
    html = write_report(tmp_path / "ev", ReportConfig(baseline=str(baseline))).html_path.read_text()
    header = html.split("<header")[1].split("</header>")[0]
    lines = re.findall(r"<p[^>]*>(.*?)</p>", header, flags=re.S)
    assert re.fullmatch(
        r"Tested commit <code>[0-9a-f]{12}</code>( \(dirty\))?( on branch <code>[^<]+</code>)?"
        r"; baseline commit <code>feedface</code>",
        lines[0],
    ), lines[0]
    assert lines[1] == (
        "Against the baseline (commit feedface): 1 new failures, 1 fixed, 0 still failing, "
        "no perf regression."
    )
    summary = (tmp_path / "ev" / "summary.md").read_text().splitlines()
    assert summary[0].startswith("## Kakeya evidence: FAILED")
    assert re.fullmatch(r"Tested commit [0-9a-f]{12}.*; baseline commit feedface\.", summary[2])


def test_a_failed_setup_stage_says_results_are_not_meaningful(tmp_path: Path):
    _write_stages(tmp_path, cache_status="failed")
    report = write_report(tmp_path)
    html = report.html_path.read_text()
    assert report.evidence["verdict"] == "error"
    assert "Infrastructure failed: results are not meaningful." in html
    assert "kakeya-runtime prewarm --model m" in html
    assert 'id="perf"' not in html


def test_render_html_shows_baseline_changes_and_perf_regressions():
    evidence = {
        "verdict": "failed",
        "counts": {"failed": 1},
        "stages": [],
        "tests": [],
        "baseline": {
            "verdict": "passed",
            "commit": "abc",
            "tests": {
                "new_failures": ["t.py::a"],
                "fixed": [],
                "still_failing": [],
                "flaky": [],
                "added": [],
                "removed": ["t.py::gone"],
            },
            "perf": [
                {
                    "metric": "decode_tok_s.runtime",
                    "baseline": 500.0,
                    "current": 410.0,
                    "delta_pct": -18.0,
                    "noise": 22.0,
                    "regression": True,
                    "improvement": False,
                }
            ],
        },
    }
    html = render_html(evidence, [], {})
    assert 'class="change c-new_failures"' in html
    assert "t.py::gone" in html
    assert "REGRESSION" in html


def test_the_concurrency_sweep_and_the_perf_goals_are_shown(tmp_path: Path):
    _write_stages(tmp_path)
    (tmp_path / "bench.json").write_text(json.dumps(PERF))
    html = write_report(tmp_path).html_path.read_text()
    start = html.index('id="concurrency"')
    table = html[start : html.index("</table>", start)]
    assert table.count("<tr>") == 1 + len(PERF["concurrency"])
    assert "<td>8</td><td>2500.0</td><td>2300.0</td><td>2100.0</td><td>3.2 / 4.1</td>" in table
    goals = html[html.index('id="perf-goals"') :]
    assert '<tr class="regression"><td>batch8_over_hf_generate</td>' in goals
    assert "<td>kv_flat_past_bound</td><td>-</td><td>flat</td><td>n/a</td>" in goals
