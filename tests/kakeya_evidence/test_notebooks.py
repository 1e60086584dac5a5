"""The notebooks run top to bottom with their defaults (only the output directory moved)."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

from kakeya_evidence.config import NOTEBOOK_PIECES, RunConfig, notebook_piece
from kakeya_evidence.kernel import ensure_kernel
from kakeya_evidence.runner import DEFAULT_NOTEBOOKS_DIR, NOTEBOOKS

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]
# What a notebook takes beside its piece: where it writes (and, for the suite, which tests
# and where pytest starts), relative to the notebook's folder; and the inline re-run.
OWN_PARAMETERS = {"integration_suite": {"output_dir", "tests", "cwd", "inline_nodeid"}}


def _parameters(name: str) -> dict[str, object]:
    """The parameters cell's assignments, each a plain literal (nothing computed)."""
    notebook = nbformat.read(DEFAULT_NOTEBOOKS_DIR / name, as_version=4)
    (cell,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    values = {}
    for statement in ast.parse(cell.source).body:
        assert isinstance(statement, ast.Assign), ast.unparse(statement)
        (target,) = statement.targets
        assert isinstance(target, ast.Name), ast.unparse(statement)
        values[target.id] = ast.literal_eval(statement.value)
    return values


@pytest.mark.parametrize("stage", list(NOTEBOOKS))
def test_every_parameters_cell_holds_its_pieces_defaults(stage):
    """Same names, same defaults as the dataclass the runner hands the notebook."""
    values = _parameters(NOTEBOOKS[stage])
    piece = NOTEBOOK_PIECES[stage]
    assert set(values) == OWN_PARAMETERS.get(stage, {"output_dir"}) | {piece}
    assert values[piece] == notebook_piece(RunConfig(), stage)


def test_the_parameters_cells_are_written_from_the_dataclasses():
    script = REPO / "scripts" / "notebook_parameters.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", list(NOTEBOOKS.values()))
def test_notebooks_are_thin_and_committed_without_outputs(name):
    _parameters(name)  # the parameters cell only names values
    notebook = nbformat.read(DEFAULT_NOTEBOOKS_DIR / name, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    parameters = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert not any("def " in c.source for c in code)
    assert all(len(c.source.splitlines()) <= 12 for c in code if c not in parameters)


@pytest.mark.notebook
@pytest.mark.slow
def test_the_four_notebooks_run_from_their_folder_with_no_parameters(tmp_path):
    """As an engineer runs them in Jupyter (or papermill) from notebooks/: every relative
    default resolves inside the checkout. The checkout here is a copy whose
    tests/integration is a small passing suite, so the run stays short."""
    kernel = ensure_kernel()
    checkout = tmp_path / "checkout"
    notebooks = checkout / "notebooks"
    shutil.copytree(DEFAULT_NOTEBOOKS_DIR, notebooks)
    shutil.copytree(FIXTURES / "passing", checkout / "tests" / "integration")
    for name in NOTEBOOKS.values():
        papermill.execute_notebook(
            str(notebooks / name),
            str(tmp_path / name),
            kernel_name=kernel,
            cwd=str(notebooks),
            progress_bar=False,
        )
    evidence = json.loads((checkout / "evidence" / "evidence.json").read_text())
    assert [s["status"] for s in evidence["stages"]] == ["ok"] * 4
    assert evidence["verdict"] == "passed" and evidence["counts"]["passed"] == 2
    suite = json.loads((checkout / "evidence" / "stages" / "integration_suite.json").read_text())
    assert suite["cwd"] == str(checkout)
    assert suite["command"][3] == "tests/integration"
    assert all(t["nodeid"].startswith("tests/integration/") for t in suite["tests"])
    report = nbformat.read(tmp_path / "03_results_report.ipynb", as_version=4)
    outputs = [o for c in report.cells if c.cell_type == "code" for o in c.outputs]
    assert any("image/png" in o.get("data", {}) for o in outputs)


@pytest.mark.notebook
@pytest.mark.slow
def test_the_suite_notebook_reruns_one_test_inline_with_ipytest(tmp_path, monkeypatch):
    """An engineer sets `inline_nodeid`; that test runs again inside the kernel."""
    kernel = ensure_kernel()
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_inline.py").write_text(
        "import os\n"
        "def test_marks_the_kernel():\n"
        "    open(os.environ['INLINE_MARK'], 'a').write(str(os.getpid()) + '\\n')\n"
    )
    mark = tmp_path / "mark"
    monkeypatch.setenv("INLINE_MARK", str(mark))  # the kernel and the suite inherit it
    executed = tmp_path / "02.ipynb"
    papermill.execute_notebook(
        str(DEFAULT_NOTEBOOKS_DIR / "02_integration_suite.ipynb"),
        str(executed),
        parameters={
            "output_dir": str(tmp_path / "ev"),
            "tests": str(suite),
            "cwd": str(suite),
            "inline_nodeid": "test_inline.py::test_marks_the_kernel",
        },
        kernel_name=kernel,
        cwd=str(DEFAULT_NOTEBOOKS_DIR),
        progress_bar=False,
    )
    notebook = nbformat.read(executed, as_version=4)
    last = [c for c in notebook.cells if c.cell_type == "code"][-1]
    results = [o.data["text/plain"] for o in last.outputs if o.output_type == "execute_result"]
    assert results == ["0"]  # pytest's exit code for the inline run
    pids = mark.read_text().split()
    assert len(pids) == 2 and pids[0] != pids[1]  # once in the subprocess, once in the kernel
