from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

from kakeya_evidence.report import write_report
from kakeya_evidence.report.html import render_html
from kakeya_evidence.stages import write_stage

PAYLOAD = "<script>alert('x')</script>"
PERF = json.loads((Path(__file__).parents[1] / "fixtures" / "bench.json").read_text())


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict] = []
        self.images: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.scripts.append(dict(attrs))
        if tag == "img":
            self.images.append(dict(attrs)["src"])


def _write_stages(out: Path, *, cache_status: str = "ok") -> None:
    tests = [
        {
            "nodeid": f"t.py::test_{PAYLOAD}",
            "module": "t.py",
            "outcome": "failed",
            "duration_s": 0.5,
            "message": PAYLOAD,
            "traceback": f"E   {PAYLOAD}",
            "stdout": PAYLOAD,
            "stderr": "",
            "rerun_outcomes": [],
        },
        {
            "nodeid": "t.py::test_skip",
            "module": "t.py",
            "outcome": "skipped",
            "duration_s": 0.0,
            "message": "needs a GPU",
        },
    ]
    write_stage(out, "host_check", {"status": "ok", "duration_s": 1.0, "host": {"chip": "M4"}})
    write_stage(
        out,
        "cache_prewarm",
        {"status": cache_status, "reason": "run: kakeya-runtime prewarm --model m", "cache": {}},
    )
    counts = {"passed": 0, "failed": 1, "error": 0, "skipped": 1}
    write_stage(out, "integration_suite", {"status": "ok", "counts": counts, "tests": tests})


def test_report_escapes_test_strings_embeds_images_and_fetches_nothing(tmp_path: Path):
    _write_stages(tmp_path)
    (tmp_path / "bench.json").write_text(json.dumps(PERF))
    report = write_report(tmp_path, parameters={"model": "m", "device": "cpu"})
    html = (tmp_path / "report.html").read_text()
    assert PAYLOAD not in html
    assert "&lt;script&gt;alert(" in html
    parser = _Scripts()
    parser.feed(html)
    assert parser.scripts == [{"type": "application/json", "id": "evidence-data"}]
    assert len(parser.images) == 5
    assert all(src.startswith("data:image/png;base64,") for src in parser.images)
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", html)
    assert "<link" not in html
    assert report.html_bytes < 2_000_000
    assert report.evidence["verdict"] == "failed"


def test_report_sections_come_in_reviewer_order(tmp_path: Path):
    _write_stages(tmp_path)
    (tmp_path / "bench.json").write_text(json.dumps(PERF))
    html = write_report(tmp_path).html_path.read_text()
    order = [
        'id="verdict"',
        'id="counts"',
        'id="stages"',
        'id="failures"',
        'id="skips"',
        'id="modules"',
        'id="slowest"',
        'id="perf"',
        'id="host"',
        'id="cache"',
        'id="provenance"',
    ]
    positions = [html.index(marker) for marker in order]
    assert positions == sorted(positions)
    assert "needs a GPU" in html
    assert "python -m pytest" in html


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
    html = render_html(evidence, {})
    assert 'class="change c-new_failures"' in html
    assert "t.py::gone" in html
    assert "REGRESSION" in html
