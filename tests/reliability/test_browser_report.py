"""report.html in real headless Chromium: it renders, filters and sorts, runs nothing from tests,
fetches nothing, and reads with scripts off.

The report is built by the evidence package's own `write_report` from stage files holding
failures whose names, messages and output carry markup and scripts, passed tests, skips and an
executed notebook for the appendix. The screenshot is kept in `test-artifacts/report.png` and
in pytest's tmp dir.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import nbformat
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
PASSED = 30

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]


def a_test(name: str, outcome: str, message: str = "", duration_s: float = 0.1, **extra) -> dict:
    return {
        "nodeid": f"tests/test_markup.py::test_{name}",
        "outcome": outcome,
        "duration_s": duration_s,
        "message": message,
        "traceback": f"E   AssertionError: {message}\n{OUTPUT}" if message else "",
        "stdout": OUTPUT if outcome in ("failed", "error") else "",
        "stderr": "",
        "rerun_outcomes": [],
        **extra,
    }


def build_report(out: Path) -> Path:
    """Stage files with failures, passes, skips, perf figures and a notebook; then the writer."""
    tests = [
        a_test(SCRIPT_NAME, "failed", IMG_MESSAGE, 0.42),
        a_test("plain", "failed", "AssertionError: 1 == 2", 0.3),
        a_test("errors", "error", f"RuntimeError: {SCRIPT_NAME}", 0.2),
        a_test("skip", "skipped", IMG_MESSAGE, 0.0),
        *(a_test(f"ok_{i:02d}", "passed", duration_s=i / 100) for i in range(PASSED)),
        a_test("slowest_of_all", "passed", duration_s=9.5),
    ]
    clock = 0.0
    for test in tests:  # the suite's clock, for the timeline
        test.update(start_s=clock, stop_s=clock + test["duration_s"], worker="")
        clock += test["duration_s"] + 0.01
    write_stage(out, "host_check", {"status": "ok", "duration_s": 1.0, "host": {"os": OUTPUT}})
    write_stage(out, "cache_prewarm", {"status": "ok", "duration_s": 0.5, "cache": {}})
    counts = Counter(t["outcome"] for t in tests)
    write_stage(out, "integration_suite", {"status": "ok", "counts": counts, "tests": tests})
    shutil.copy(EVIDENCE_FIXTURES / "bench.json", out / "bench.json")
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print('hello')", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": OUTPUT})]
    notebook.cells = [cell]
    nbformat.write(notebook, out / "02_integration_suite.ipynb")
    report = write_report(out, parameters={"model": "kakeya/tiny-qwen3", "device": "cpu"})
    assert report.evidence["verdict"] == "failed"
    return out / "report.html"


def visible_ids(page) -> list[str]:
    """The node ids of the rows the page shows now, in their order."""
    return page.evaluate(
        """() => [...document.querySelectorAll('#tests-table tbody')]
            .filter(b => !b.hidden)
            .map(b => b.rows[0].cells[1].textContent)"""
    )


def launch(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)


def test_report_renders_in_headless_chromium_as_text_and_offline(tmp_path, artifacts_dir):
    from playwright.sync_api import sync_playwright

    html = build_report(tmp_path / "ev")
    url = html.resolve().as_uri()
    console, page_errors, requests, dialogs = [], [], [], []
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: console.append((m.type, m.text)))
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(url, wait_until="load")
            page.wait_for_load_state("networkidle")
            verdict = page.inner_text("#verdict")
            rows = page.locator("#tests-table tbody tr:first-child").all_inner_texts()
            images = page.evaluate(
                "() => [...document.images].map(i => [i.alt, i.complete, i.naturalWidth])"
            )
            pwned = page.evaluate("() => window.__pwned === undefined ? null : window.__pwned")
            injected = page.evaluate(
                "() => [...document.querySelectorAll('b')]"
                ".filter(b => !b.closest('#appendix')).length"
            )
            scripts = page.evaluate("() => document.scripts.length")
            embedded = json.loads(page.inner_text("#evidence-data"))
            page.locator("#tests-table details").first.evaluate("d => d.open = true")
            page.locator("#appendix details").first.evaluate("d => d.open = true")
            appendix = page.inner_text("#appendix")
            shot = page.screenshot(full_page=True)
        finally:
            browser.close()
    (tmp_path / "report.png").write_bytes(shot)
    (artifacts_dir / "report.png").write_bytes(shot)

    assert dialogs == [] and pwned is None and injected == 0 and scripts == 2
    assert page_errors == []
    assert [text for kind, text in console if kind == "error"] == []
    assert requests == [url] and not [u for u in requests if not u.startswith(("file:", "data:"))]
    assert verdict.startswith("FAILED: 3 failing")
    assert len(rows) == PASSED + 5  # every test has a row, passed included
    assert SCRIPT_NAME in rows[1] and IMG_MESSAGE in rows[1]  # failures first, errors before
    assert f"RuntimeError: {SCRIPT_NAME}" in rows[0]
    assert "print('hello')" in appendix and "bold?" in appendix
    assert len(images) == 7, images  # modules, slowest, timeline, four perf plots
    assert all(complete and width > 0 for _, complete, width in images), images
    assert embedded["tests_count"] == PASSED + 5
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 10_000


def test_typing_in_the_search_box_narrows_the_rows_and_filters_and_sorts_work(tmp_path):
    from playwright.sync_api import sync_playwright

    url = build_report(tmp_path / "ev").resolve().as_uri()
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page()
            page.goto(url, wait_until="load")
            assert page.is_visible("#test-search")
            total = len(visible_ids(page))
            page.locator("#test-search").press_sequentially("ok_1", delay=20)
            narrowed = visible_ids(page)
            shown = page.inner_text("#shown")
            page.locator("#test-search").fill("__PWNED")  # in the message, not the id; any case
            by_message = visible_ids(page)
            page.locator("#test-search").fill("")
            page.locator("#outcome-filters input[value=passed]").uncheck()
            without_passed = visible_ids(page)
            page.locator("#outcome-filters input[value=passed]").check()
            page.click("button[data-sort=duration]")
            by_duration = visible_ids(page)
            page.click("button[data-sort=duration]")
            by_duration_ascending = visible_ids(page)
            page.click("button[data-sort=name]")
            by_name = visible_ids(page)
        finally:
            browser.close()
    assert total == PASSED + 5
    assert narrowed == [f"test_ok_{i}" for i in range(10, 20)]
    assert shown == f"showing 10 of {total}"
    assert sorted(by_message) == sorted([f"test_{SCRIPT_NAME}", "test_skip"])
    assert len(without_passed) == 4 and not any(i.startswith("test_ok") for i in without_passed)
    assert by_duration[:4] == [
        "test_slowest_of_all",
        f"test_{SCRIPT_NAME}",
        "test_plain",
        "test_ok_29",
    ]
    assert by_duration_ascending[-1] == "test_slowest_of_all"
    assert by_name == sorted(by_name) and len(by_name) == total


def test_with_scripts_off_every_row_shows_and_the_controls_stay_hidden(tmp_path):
    from playwright.sync_api import sync_playwright

    url = build_report(tmp_path / "ev").resolve().as_uri()
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_context(java_script_enabled=False).new_page()
            page.goto(url, wait_until="load")
            rows = visible_ids_without_script(page)
            controls_visible = page.is_visible("#controls")
            page.locator("#tests-table details summary").first.click()
            traceback = page.locator("#tests-table details pre").first.inner_text()
        finally:
            browser.close()
    assert len(rows) == PASSED + 5 and not controls_visible
    assert "AssertionError" in traceback


def visible_ids_without_script(page) -> list[str]:
    """Visible rows read through the accessibility of the DOM, not the page's own script."""
    return [
        text
        for text in page.locator(
            "#tests-table tbody tr:first-child td:nth-child(2)"
        ).all_inner_texts()
        if text
    ]
