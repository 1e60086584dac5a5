"""Notebook execution in a real kernel: a killed kernel is retried once, failures are recorded."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

from kakeya_evidence.kernel import ensure_kernel, execute_notebook

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

NOTEBOOKS = Path(__file__).parent / "fixtures" / "notebooks"


@pytest.fixture(scope="module")
def kernel() -> str:
    return ensure_kernel()


def test_the_registered_kernel_runs_this_interpreter(kernel):
    from jupyter_client.kernelspec import KernelSpecManager

    assert KernelSpecManager().get_kernel_spec(kernel).argv[0] == sys.executable


def test_a_kernel_killed_once_is_retried_and_succeeds(kernel, tmp_path):
    run = execute_notebook(
        NOTEBOOKS / "kill_kernel.ipynb",
        tmp_path / "out.ipynb",
        {"marker": str(tmp_path / "marker")},
        kernel_name=kernel,
        timeout_s=60,
    )
    assert (run.status, run.attempts) == ("ok", 2)
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert "survived" in executed.cells[-1].outputs[0]["text"]


def test_a_kernel_that_always_dies_is_a_crashed_stage(kernel, tmp_path):
    run = execute_notebook(
        NOTEBOOKS / "kill_kernel.ipynb",
        tmp_path / "out.ipynb",
        {},
        kernel_name=kernel,
        timeout_s=60,
    )
    assert run.status == "crashed"
    assert "kernel died" in run.reason and "after one retry" in run.reason


def test_a_failing_cell_is_recorded_and_the_notebook_kept(kernel, tmp_path):
    run = execute_notebook(
        NOTEBOOKS / "raises.ipynb", tmp_path / "out.ipynb", {}, kernel_name=kernel, timeout_s=60
    )
    assert run.status == "failed"
    assert "ValueError" in run.reason and "on purpose" in run.reason
    assert (tmp_path / "out.ipynb").is_file()


def test_the_kernel_runs_encrypted_and_prints_nothing_to_the_terminal(kernel, tmp_path, capfd):
    """No "running over TCP without encryption" warning; what the kernel process writes
    to its own stderr (below the notebook's capture) lands in NAME.kernel.log."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("import os; os.write(2, b'kernel-side noise')")]
    nbformat.write(notebook, tmp_path / "tiny.ipynb")
    run = execute_notebook(
        tmp_path / "tiny.ipynb", tmp_path / "out.ipynb", {}, kernel_name=kernel, timeout_s=60
    )
    assert run.status == "ok"
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    log = (tmp_path / "out.kernel.log").read_text()
    assert "kernel-side noise" in log and "without encryption" not in log
