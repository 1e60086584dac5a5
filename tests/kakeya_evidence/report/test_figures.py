"""The report's figures are drawn once per content and reused, never trusted blindly."""

from __future__ import annotations

import json
import subprocess
import sys

from report_support import PERF, make_test, write_run

from kakeya_evidence.report import write_report
from kakeya_evidence.report.evidence import read_stages, suite_rows
from kakeya_evidence.report.figures import CACHE_FILE, figure_specs

TESTS = [make_test("t.py::a"), make_test("t.py::b", "failed", start_s=0.0, stop_s=0.5)]


def test_the_second_write_of_the_same_run_draws_nothing_and_embeds_the_same_pngs(tmp_path):
    write_run(tmp_path, TESTS, perf=PERF)
    first = write_report(tmp_path)
    assert first.figures.keys() == first.images.keys() >= {"modules", "throughput"}
    second = write_report(tmp_path)  # the runner's write after notebook 03's
    assert second.figures == {}
    assert second.images == first.images
    html = (tmp_path / "report.html").read_text()
    assert all(uri in html for uri in second.images.values())


def test_changed_data_redraws_only_the_figures_that_show_it(tmp_path):
    write_run(tmp_path, TESTS, perf=PERF)
    first = write_report(tmp_path)
    faster = json.loads(json.dumps(PERF))
    faster["decode_tok_s"]["runtime"] = PERF["decode_tok_s"]["runtime"] * 2
    (tmp_path / "bench.json").write_text(json.dumps(faster))
    second = write_report(tmp_path)
    assert "throughput" in second.figures and "modules" not in second.figures
    assert second.images["throughput"] != first.images["throughput"]
    assert second.images["modules"] == first.images["modules"]


def test_a_cache_entry_that_is_not_a_png_data_uri_is_drawn_again_not_embedded(tmp_path):
    write_run(tmp_path, TESTS)
    rows = suite_rows(read_stages(tmp_path)["integration_suite"])
    specs = figure_specs({"perf": None}, rows)  # what write_report will ask for
    names = {spec.name for spec in specs}
    stand_in = "data:image/png;base64,iVBORw0KGgo="
    (tmp_path / CACHE_FILE).parent.mkdir(exist_ok=True)
    (tmp_path / CACHE_FILE).write_text(json.dumps({spec.key(): stand_in for spec in specs}))
    assert write_report(tmp_path).figures == {}  # well-formed entries under these keys are used
    payload = 'data:image/png;base64,AAAA" onerror="alert(1)'
    (tmp_path / CACHE_FILE).write_text(json.dumps({spec.key(): payload for spec in specs}))
    report = write_report(tmp_path)
    assert set(report.figures) == names  # every poisoned entry was drawn again
    assert "onerror" not in (tmp_path / "report.html").read_text()
    assert all(uri.startswith("data:image/png;base64,iVBOR") for uri in report.images.values())


def test_a_cache_that_cannot_be_read_or_written_costs_only_time(tmp_path):
    write_run(tmp_path, TESTS)
    (tmp_path / CACHE_FILE).mkdir()  # neither readable nor replaceable as a file
    report = write_report(tmp_path)
    assert report.exit_code == 1  # t.py::b failed; the report stage itself is fine
    assert report.images and report.figures.keys() == report.images.keys()
    stage = json.loads((tmp_path / "evidence.json").read_text())["stages"][-1]
    assert stage["status"] == "ok"


def test_a_report_whose_figures_are_all_cached_never_loads_matplotlib(tmp_path):
    write_run(tmp_path, TESTS, perf=PERF)
    write_report(tmp_path)  # draws and caches
    script = (
        "import sys\n"
        "from kakeya_evidence.report import write_report\n"
        f"report = write_report({str(tmp_path)!r})\n"
        "assert report.images and not report.figures\n"
        "print('matplotlib' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
