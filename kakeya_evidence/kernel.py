"""Jupyter kernels: register one for this Python, execute a notebook with papermill.

A kernel that dies before replying is retried once; the executed notebook is
written in every case (papermill writes it as cells run), so a failed cell can
be inspected. Kernels talk over encrypted channels, and what a kernel process prints
itself goes to NAME.kernel.log beside the executed notebook, never to the terminal.

A kernel takes most of a second to start; :class:`KernelQueue` starts each notebook's
kernel one stage ahead, so that this overlaps the stage before instead of adding to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from kakeya_evidence.common.schema import StageStatus

__all__ = ["KERNEL_NAME", "KernelQueue", "NotebookRun", "ensure_kernel", "execute_notebook"]

KERNEL_NAME = "kakeya-evidence"
_ADOPTING_ENGINE = "kakeya-started-kernel"


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


@dataclass(frozen=True)
class _Ending:
    """How one attempt ended (execute_notebook may make two)."""

    status: StageStatus
    reason: str


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
    started: Any = None,
) -> NotebookRun:
    """Execute a notebook with papermill, retrying once if the kernel dies.

    Args:
        source: The notebook to run.
        target: Where the executed notebook goes (written even when a cell fails).
        parameters: Values injected after the ``parameters`` cell.
        kernel_name: The kernel to run in.
        timeout_s: Per-cell execution timeout.
        cwd: Working directory for the kernel.
        started: The kernel manager of a kernel started for this notebook (see
            :class:`KernelQueue`): the first attempt runs on it while it is alive; it is
            shut down in every case.

    Returns:
        How the execution ended; never raises for notebook or kernel failures.
    """
    began = time.monotonic()
    log_path = target.with_name(target.stem + ".kernel.log")
    # A kernel started ahead already writes to the log: append, never truncate it.
    with log_path.open("ab" if started is not None else "wb") as log:
        manager = _kernel_manager_class(log)
        if started is not None and not _alive(started):
            _shut_down(started)
            started = None
        run = _execute_once(
            source, target, parameters, kernel_name, timeout_s, cwd, manager, started
        )
        attempts = 1
        if run.status == StageStatus.CRASHED:
            attempts = 2
            run = _execute_once(source, target, parameters, kernel_name, timeout_s, cwd, manager)
            if run.status == StageStatus.CRASHED:
                run = _Ending(run.status, run.reason + " (after one retry)")
    if log_path.stat().st_size == 0:
        log_path.unlink()
    return NotebookRun(str(run.status), run.reason, time.monotonic() - began, attempts)


class KernelQueue:
    """Starts notebooks' kernels ahead of their turn and hands each to its notebook once.

    ``start`` returns as soon as the kernel process is launched, so the kernel boots while
    the caller goes on; it runs in ``cwd`` and its own output goes to NAME.kernel.log beside
    the executed notebook. ``close`` shuts down every kernel started and never taken.
    """

    def __init__(self, kernel_name: str, cwd: Path) -> None:
        self.kernel_name = kernel_name
        self.cwd = cwd
        self._started: dict[Path, Any] = {}

    def start(self, target: Path) -> None:
        """Launch the kernel for the notebook that will be written to target."""
        from jupyter_core.utils import run_sync

        if target in self._started:
            return
        log_path = target.with_name(target.stem + ".kernel.log")
        with log_path.open("wb") as log:  # the kernel process keeps its own copy of the file
            manager = _kernel_manager_class(log)(
                kernel_name=self.kernel_name, config=_client_config()
            )
            try:
                # run_sync runs on this thread's loop, the one nbclient will use the kernel on.
                run_sync(manager.start_kernel)(cwd=str(self.cwd))
            except Exception:  # a kernel that cannot start ahead starts cold, in its turn
                return
        self._started[target] = manager

    def take(self, target: Path) -> Any:
        """The kernel manager started for target, now the caller's (None when none was)."""
        return self._started.pop(target, None)

    def close(self) -> None:
        """Shut down every kernel started and not taken."""
        while self._started:
            _shut_down(self._started.popitem()[1])


def _execute_once(
    source: Path,
    target: Path,
    parameters: dict[str, Any],
    kernel_name: str,
    timeout_s: float,
    cwd: Path | None,
    kernel_manager_class: type,
    started: Any = None,
) -> _Ending:
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    kernel: dict[str, Any] = {"kernel_manager_class": kernel_manager_class}
    if started is not None:
        kernel = {"engine_name": _adopting_engine(), "km": started}
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
            **kernel,
        )
    except PapermillExecutionError as exc:
        why = f"cell {exc.exec_count} raised {exc.ename}: {_one_line(exc.evalue)}"
        return _Ending(StageStatus.FAILED, why)
    except DeadKernelError as exc:
        return _Ending(StageStatus.CRASHED, f"kernel died: {_one_line(str(exc))}")
    except CellTimeoutError as exc:
        why = f"cell exceeded {timeout_s:g}s: {_one_line(str(exc))}"
        return _Ending(StageStatus.TIMEOUT, why)
    except Exception as exc:
        return _Ending(StageStatus.FAILED, f"{type(exc).__name__}: {_one_line(str(exc))}")
    finally:
        if started is not None:
            _shut_down(started)  # the engine shut it down; a failure before that must not leak it
    return _Ending(StageStatus.OK, "")


def _adopting_engine() -> str:
    """Register (once) papermill's nbclient engine for a kernel started beforehand.

    Given ``km``, nbclient leaves the kernel and its client's channels open after the run,
    for their owner; this engine has it clean both up, as it does for a kernel it started.
    """
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.log import logger

    class AdoptingEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(
            cls,
            nb_man: Any,
            kernel_name: str,
            log_output: bool = False,
            stdout_file: Any = None,
            stderr_file: Any = None,
            start_timeout: int = 60,
            execution_timeout: int | None = None,
            **kwargs: Any,
        ) -> Any:
            kwargs.pop("input_path", None)
            client = PapermillNotebookClient(
                nb_man,
                timeout=execution_timeout,
                startup_timeout=start_timeout,
                kernel_name=kernel_name,
                log=logger,
                log_output=log_output,
                stdout_file=stdout_file,
                stderr_file=stderr_file,
                **kwargs,
            )
            return client.execute(cleanup_kc=True)

    if _ADOPTING_ENGINE not in papermill_engines._engines:
        papermill_engines.register(_ADOPTING_ENGINE, AdoptingEngine)
    return _ADOPTING_ENGINE


def _alive(manager: Any) -> bool:
    from jupyter_core.utils import run_sync

    try:
        return bool(run_sync(manager.is_alive)())
    except Exception:  # a manager that cannot tell is treated as dead
        return False


def _shut_down(manager: Any) -> None:
    """Stop a started kernel now (a no-op once nbclient has shut it down)."""
    from jupyter_core.utils import run_sync

    if not getattr(manager, "has_kernel", False):
        return
    with contextlib.suppress(Exception):  # it may have died already: nothing is left to stop
        run_sync(manager.shutdown_kernel)(now=True)


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
    """Encrypted channels, and a kernel stopped at once when its notebook is done.

    A kernel reached over plain TCP warns on stderr, into the user's terminal, that its
    traffic is unencrypted; with keys provisioned by the manager (CurveZMQ) it is not.
    Every cell's outputs have arrived when the last cell is done and the notebooks keep
    nothing for exit hooks, so the graceful shutdown's wait (about 0.3 s a notebook)
    buys nothing.
    """
    from traitlets.config import Config

    return Config(
        {
            "KernelManager": {"transport_encryption": "auto"},
            "NotebookClient": {"shutdown_kernel": "immediate"},
        }
    )


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]
