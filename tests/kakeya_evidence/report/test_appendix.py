"""The executed notebooks, rendered by nbconvert into a collapsed appendix that fetches nothing."""

from __future__ import annotations

import base64
import re

import nbformat
from report_support import make_test, write_run

from kakeya_evidence.report import ReportConfig, write_report
from kakeya_evidence.report.appendix import render_notebooks

PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()


def _executed(path, *, hostile: bool = False) -> None:
    notebook = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("answer = 6 * 7\nanswer", execution_count=1)
    code.outputs = [
        nbformat.v4.new_output("execute_result", data={"text/plain": "42"}, execution_count=1),
        nbformat.v4.new_output("display_data", data={"image/png": PNG, "text/plain": "<Fig>"}),
    ]
    notebook.cells = [nbformat.v4.new_markdown_cell("# Title\n\nSome *text*."), code]
    if hostile:
        bad = nbformat.v4.new_code_cell("display(HTML(x))", execution_count=2)
        bad.outputs = [
            nbformat.v4.new_output(
                "display_data",
                data={
                    "text/html": "<script>window.__pwned=1</script>"
                    "<img src='https://cdn.example/x.png' onerror='alert(1)'>"
                    "<a href='https://example.com'>link</a><b>kept</b>",
                    "text/plain": "x",
                },
            )
        ]
        notebook.cells.append(bad)
        notebook.cells.append(nbformat.v4.new_markdown_cell("$x^2$ ![remote](https://x.io/a.png)"))
    nbformat.write(notebook, path)


def test_notebooks_render_with_code_outputs_and_embedded_images(tmp_path):
    _executed(tmp_path / "00_a.ipynb")
    (rendered,) = render_notebooks([tmp_path / "00_a.ipynb"])
    assert rendered.error == ""
    assert "answer" in rendered.html and "42" in rendered.html and "Title" in rendered.html
    assert f'src="data:image/png;base64,{PNG}"' in rendered.html


def test_the_appendix_runs_nothing_and_fetches_nothing(tmp_path):
    _executed(tmp_path / "00_a.ipynb", hostile=True)
    (rendered,) = render_notebooks([tmp_path / "00_a.ipynb"])
    html = rendered.html
    assert "<script" not in html and "onerror" not in html
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", html)
    assert "<b>kept</b>" in html
    assert "id=" not in html  # no id can collide with the report's own


def test_a_broken_notebook_is_a_line_in_the_appendix_not_a_lost_report(tmp_path):
    (tmp_path / "01_broken.ipynb").write_text("{not a notebook")
    (rendered,) = render_notebooks([tmp_path / "01_broken.ipynb"])
    assert rendered.error and rendered.html == ""


def test_the_report_has_a_collapsed_appendix_of_every_executed_notebook(tmp_path):
    write_run(tmp_path, [make_test("t.py::a")])
    _executed(tmp_path / "00_host_check.ipynb")
    _executed(tmp_path / "02_integration_suite.ipynb", hostile=True)
    html = write_report(tmp_path).html_path.read_text()
    appendix = html[html.index('id="appendix"') :]
    summaries = re.findall(r'<details class="notebook"><summary>(.*?)</summary>', appendix)
    assert summaries == ["00_host_check.ipynb", "02_integration_suite.ipynb"]
    assert "<details open" not in appendix
    assert "require.js" not in html and "mathjax" not in html.lower()
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", html)
    plain = write_report(tmp_path, ReportConfig(appendix=False)).html_path.read_text()
    assert 'class="notebook"' not in plain


def test_notebooks_rendered_ahead_are_used_unless_they_changed_since(tmp_path):
    from kakeya_evidence.report.appendix import NotebookPrerender

    first, second = tmp_path / "00_a.ipynb", tmp_path / "01_b.ipynb"
    _executed(first)
    _executed(second)
    prerender = NotebookPrerender()
    try:
        prerender.submit(first)
        prerender.submit(second)
        prerender.submit(tmp_path / "02_never_written.ipynb")
        ahead = prerender.collect([first, second])
        notebook = nbformat.read(second, as_version=4)
        notebook.cells.append(nbformat.v4.new_markdown_cell("written after the render"))
        nbformat.write(notebook, second)
        again = prerender.collect([first, second])
    finally:
        prerender.close()
    assert [r.name for r in ahead] == ["00_a.ipynb", "01_b.ipynb"]
    assert again[0] is ahead[0]  # unchanged: the render done ahead
    assert "written after the render" in again[1].html  # changed: rendered again
