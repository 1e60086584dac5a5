"""report.html in real headless Chromium: it renders, runs nothing from tests, fetches nothing.

The report is built by the evidence package's own `write_report` from stage files holding
failures whose names, messages and output carry markup and scripts. The screenshot is kept
in `test-artifacts/report.png` and in pytest's tmp dir.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from reliability_support import EVIDENCE_FIXTURES

from kakeya_evidence.report import write_report
from kakeya_evidence.stages import write_stage

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
]
SCRIPT_NAME = "<script>alert(1)</script>"
IMG_MESSAGE = '<img src=x onerror="window.__pwned = 1; alert(2)">'
OUTPUT = "<script>window.__pwned = 3; alert(3)</script><b>bold?</b>"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]


def failing_test(name: str, message: str, outcome: str = "failed") -> dict:
    return {
        "nodeid": f"tests/test_markup.py::test_{name}",
        "module": "tests/test_markup.py",
        "outcome": outcome,
        "duration_s": 0.42,
        "message": message,
        "traceback": f"E   AssertionError: {message}\n{OUTPUT}",
        "stdout": OUTPUT,
        "stderr": "",
        "rerun_outcomes": [],
    }


def build_report(out: Path) -> Path:
    """Stage files with failures, skips and perf figures; then the real report writer."""
    tests = [
        failing_test(SCRIPT_NAME, IMG_MESSAGE),
        failing_test("plain", "AssertionError: 1 == 2"),
        failing_test("errors", f"RuntimeError: {SCRIPT_NAME}", outcome="error"),
        {
            "nodeid": "tests/test_ok.py::test_ok",
            "module": "tests/test_ok.py",
            "outcome": "passed",
            "duration_s": 0.1,
        },
        {
            "nodeid": "tests/test_ok.py::test_skip",
            "module": "tests/test_ok.py",
            "outcome": "skipped",
            "duration_s": 0.0,
            "message": IMG_MESSAGE,
        },
    ]
    write_stage(out, "host_check", {"status": "ok", "duration_s": 1.0, "host": {"os": OUTPUT}})
    write_stage(out, "cache_prewarm", {"status": "ok", "duration_s": 0.5, "cache": {}})
    counts = {"passed": 1, "failed": 2, "error": 1, "skipped": 1}
    write_stage(out, "integration_suite", {"status": "ok", "counts": counts, "tests": tests})
    shutil.copy(EVIDENCE_FIXTURES / "bench.json", out / "bench.json")
    report = write_report(out, parameters={"model": "kakeya/tiny-qwen3", "device": "cpu"})
    assert report.evidence["verdict"] == "failed"
    return out / "report.html"


def test_report_renders_in_headless_chromium_as_text_and_offline(tmp_path, artifacts_dir):
    from playwright.sync_api import sync_playwright

    html = build_report(tmp_path / "ev")
    url = html.resolve().as_uri()
    console, page_errors, requests, dialogs = [], [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: console.append((m.type, m.text)))
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(url, wait_until="load")
            page.wait_for_load_state("networkidle")
            verdict = page.inner_text("#verdict")
            failure_rows = page.locator("#failures tr.failure").all_inner_texts()
            skip_rows = page.locator("#skips tr.skip").all_inner_texts()
            images = page.evaluate(
                "() => [...document.images].map(i => [i.alt, i.complete, i.naturalWidth])"
            )
            pwned = page.evaluate("() => window.__pwned === undefined ? null : window.__pwned")
            injected = page.evaluate(
                "() => document.querySelectorAll('body script:not(#evidence-data), body b').length"
            )
            embedded = json.loads(page.inner_text("#evidence-data"))
            page.locator("details").first.evaluate("d => d.open = true")
            shot = page.screenshot(full_page=True)
        finally:
            browser.close()
    (tmp_path / "report.png").write_bytes(shot)
    (artifacts_dir / "report.png").write_bytes(shot)

    assert dialogs == [] and pwned is None and injected == 0
    assert page_errors == []
    assert [text for kind, text in console if kind == "error"] == []
    assert requests == [url] and not [u for u in requests if not u.startswith(("file:", "data:"))]
    assert verdict.startswith("FAILED: 3 failing")
    assert len(failure_rows) == 3
    assert SCRIPT_NAME in failure_rows[0] and IMG_MESSAGE in failure_rows[0]
    assert f"RuntimeError: {SCRIPT_NAME}" in failure_rows[2]
    assert skip_rows and IMG_MESSAGE in skip_rows[0]
    assert len(images) == 5, images  # two outcome charts, three perf plots
    assert all(complete and width > 0 for _, complete, width in images), images
    assert embedded["tests"][0]["nodeid"].endswith(SCRIPT_NAME)
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 10_000
