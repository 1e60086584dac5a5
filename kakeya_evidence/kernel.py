"""Jupyter kernels: register one for this Python, execute a notebook with papermill.

A kernel that dies before replying is retried once; the executed notebook is
written in every case (papermill writes it as cells run), so a failed cell can
be inspected. Kernels talk over encrypted channels, and what a kernel process prints
itself goes to NAME.kernel.log beside the executed notebook, never to the terminal.
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = ["KERNEL_NAME", "NotebookRun", "ensure_kernel", "execute_notebook"]

KERNEL_NAME = "kakeya-evidence"


@dataclass(frozen=True)
class NotebookRun:
    """How one notebook execution ended.

    Attributes:
        status: ok, failed (a cell raised), crashed (the kernel died), timeout.
        reason: One line for the stage table ("" when ok).
        duration_s: Wall time, retries included.
        attempts: Kernel starts used.
    """

    status: str
    reason: str
    duration_s: float
    attempts: int = 1


def ensure_kernel(name: str = KERNEL_NAME) -> str:
    """Make sure a kernelspec that runs this interpreter exists; return its name.

    The spec goes into this environment's prefix (so a fresh venv gets its own);
    when a spec of the same name elsewhere shadows it, a name with a hash of the
    interpreter path is used instead.

    Args:
        name: Preferred kernel name.

    Returns:
        The kernel name to pass to papermill.

    Raises:
        OSError: No kernelspec could be written.
    """
    if _spec_executable(name) == sys.executable:
        return name
    _install(name)
    if _spec_executable(name) == sys.executable:
        return name
    unique = f"{name}-{hashlib.sha1(sys.executable.encode()).hexdigest()[:8]}"
    if _spec_executable(unique) != sys.executable:
        _install(unique)
    return unique


def _spec_executable(name: str) -> str | None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        return None
    return spec.argv[0] if spec.argv else None


def _install(name: str) -> None:
    from ipykernel.kernelspec import install

    display = f"Python ({name})"
    try:
        install(kernel_name=name, display_name=display, prefix=sys.prefix)
    except OSError:
        install(kernel_name=name, display_name=display, user=True)


def execute_notebook(
    source: Path,
    target: Path,
    parameters: dict[str, Any],
    *,
    kernel_name: str,
    timeout_s: float,
    cwd: Path | None = None,
) -> NotebookRun:
    """Execute a notebook with papermill, retrying once if the kernel dies.

    Args:
        source: The notebook to run.
        target: Where the executed notebook goes (written even when a cell fails).
        parameters: Values injected after the ``parameters`` cell.
        kernel_name: The kernel to run in.
        timeout_s: Per-cell execution timeout.
        cwd: Working directory for the kernel.

    Returns:
        How the execution ended; never raises for notebook or kernel failures.
    """
    started = time.monotonic()
    log_path = target.with_name(target.stem + ".kernel.log")
    with log_path.open("wb") as log:
        manager = _kernel_manager_class(log)
        run = _execute_once(source, target, parameters, kernel_name, timeout_s, cwd, manager)
        attempts = 1
        if run[0] == "crashed":
            attempts = 2
            run = _execute_once(source, target, parameters, kernel_name, timeout_s, cwd, manager)
            if run[0] == "crashed":
                run = (run[0], run[1] + " (after one retry)")
    if log_path.stat().st_size == 0:
        log_path.unlink()
    return NotebookRun(run[0], run[1], time.monotonic() - started, attempts)


def _execute_once(
    source: Path,
    target: Path,
    parameters: dict[str, Any],
    kernel_name: str,
    timeout_s: float,
    cwd: Path | None,
    kernel_manager_class: type,
) -> tuple[str, str]:
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    try:
        papermill.execute_notebook(
            str(source),
            str(target),
            parameters=parameters,
            kernel_name=kernel_name,
            execution_timeout=int(max(1, timeout_s)),
            cwd=str(cwd) if cwd else None,
            progress_bar=False,
            log_output=False,
            config=_client_config(),
            kernel_manager_class=kernel_manager_class,
        )
    except PapermillExecutionError as exc:
        return "failed", f"cell {exc.exec_count} raised {exc.ename}: {_one_line(exc.evalue)}"
    except DeadKernelError as exc:
        return "crashed", f"kernel died: {_one_line(str(exc))}"
    except CellTimeoutError as exc:
        return "timeout", f"cell exceeded {timeout_s:g}s: {_one_line(str(exc))}"
    except Exception as exc:
        return "failed", f"{type(exc).__name__}: {_one_line(str(exc))}"
    return "ok", ""


def _kernel_manager_class(log: IO[bytes]) -> type:
    """A kernel manager whose kernels write their own logs to log, not to the terminal.

    Cell output travels over the kernel's channels into the notebook; what the kernel
    process itself prints (its log lines, e.g. "KeyboardInterrupt caught in kernel" when
    it is interrupted at shutdown) is kept beside the executed notebook instead.
    """
    from jupyter_client.manager import AsyncKernelManager

    class LoggedKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", log)
            await super().start_kernel(**kw)

    return LoggedKernelManager


def _client_config() -> Any:
    """Encrypt the kernel's channels (CurveZMQ) where the kernel supports it.

    A kernel reached over plain TCP warns on stderr, into the user's terminal, that its
    traffic is unencrypted; with keys provisioned by the manager it is not.
    """
    from traitlets.config import Config

    return Config({"KernelManager": {"transport_encryption": "auto"}})


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]
