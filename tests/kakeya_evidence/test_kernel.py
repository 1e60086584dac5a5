"""Notebook execution in a real kernel: a killed kernel is retried once, failures are recorded."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import psutil
import pytest

from kakeya_evidence.kernel import KernelQueue, ensure_kernel, execute_notebook

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


def _where_and_who(tmp_path: Path) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("import os; print(os.getcwd(), os.getpid())")]
    nbformat.write(notebook, tmp_path / "who.ipynb")
    return tmp_path / "who.ipynb"


def _printed(executed: Path) -> tuple[str, int]:
    text = nbformat.read(executed, as_version=4).cells[0].outputs[0]["text"]
    cwd, pid = text.split()
    return cwd, int(pid)


def test_a_kernel_started_ahead_runs_its_notebook_in_the_queues_directory_then_stops(
    kernel, tmp_path
):
    workdir = tmp_path / "work"
    workdir.mkdir()
    queue = KernelQueue(kernel, workdir)
    target = tmp_path / "out.ipynb"
    queue.start(target)
    started = queue.take(target)
    assert queue.take(target) is None  # handed out once
    pid = started.provisioner.process.pid
    run = execute_notebook(
        _where_and_who(tmp_path), target, {}, kernel_name=kernel, timeout_s=60, started=started
    )
    assert (run.status, run.attempts) == ("ok", 1)
    assert _printed(target) == (str(workdir), pid)  # that kernel, not a fresh one
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_kernel_started_ahead_that_died_before_its_turn_is_replaced_by_a_fresh_one(
    kernel, tmp_path
):
    queue = KernelQueue(kernel, tmp_path)
    target = tmp_path / "out.ipynb"
    queue.start(target)
    started = queue.take(target)
    dead = started.provisioner.process
    dead.kill()
    dead.wait(timeout=30)
    run = execute_notebook(
        _where_and_who(tmp_path), target, {}, kernel_name=kernel, timeout_s=60, started=started
    )
    assert (run.status, run.attempts) == ("ok", 1)
    assert _printed(target)[1] != dead.pid


def test_closing_the_queue_stops_every_kernel_never_taken(kernel, tmp_path):
    before = {child.pid for child in psutil.Process().children()}
    queue = KernelQueue(kernel, tmp_path)
    for name in ("a", "b"):
        queue.start(tmp_path / f"{name}.ipynb")
    kernels = [child for child in psutil.Process().children() if child.pid not in before]
    assert len(kernels) == 2
    queue.close()
    assert [k.is_running() and k.status() != psutil.STATUS_ZOMBIE for k in kernels] == [False] * 2
    assert queue.take(tmp_path / "a.ipynb") is None
