"""A pytest plugin that records every report pytest counts, one JSON object a line.

Loaded with ``-p kakeya_evidence.stages.pytest_plugin``; it writes to the file named by
``KAKEYA_EVIDENCE_RECORD`` (nothing when unset). Each event is flushed as it happens, so
a killed process leaves everything up to its last moment:

    session_started  pid, rootdir, inifile, cwd, args, added, t
    collected        nodeids (after any deselection), deselected (how many)
    started          nodeid, t                  (a test began; no ``finished`` = running)
    report           nodeid, when, outcome, category (pytest's own, from
                     ``pytest_report_teststatus``), counted, duration_s, start, stop,
                     worker, message, exception, longrepr, stdout, stderr, path, line
    finished         nodeid, t
    exited           kind (exit, interrupt), reason, returncode, nodeid, t
    session_finished exitstatus, t

A report's stdout/stderr hold that phase's capture only. The plugin is invisible to the
tests: its encoder, clock and file writes are bound when it is imported, before any test
runs, and it writes with ``os.write`` on a descriptor it opened, so a test that patches
``json.dumps``, ``time.time`` or ``open`` (or swaps ``sys.modules``) cannot change what
it records. A report's category is the word ``pytest_report_teststatus`` gives (a
conftest's own word, "knownfail", included), its outcome pytest's own.

``SIGUSR1`` dumps every thread's stack to ``KAKEYA_EVIDENCE_STACKS`` (the watchdog sends
it before killing a hang).
``KAKEYA_EVIDENCE_TIMEOUT`` (seconds) and ``KAKEYA_EVIDENCE_CACHE_DIR`` are the pipeline's
per-test timeout and cache folder, applied only where the suite configured neither
(``timeout`` / ``cache_dir`` in its ini file or on the command line); ``added`` says which.
``KAKEYA_EVIDENCE_SHARD=K/N`` keeps every N-th collected test starting at the K-th; a
collection error or module-level skip is recorded in one shard only (chosen by a hash of
its node id), so the shards' counts add up to the whole suite's. Under pytest-xdist the
controller records; workers only shard and dump stacks.
"""

from __future__ import annotations

import faulthandler
import json
import json.encoder
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from kakeya_evidence.common.text import clip_end, first_line
from kakeya_evidence.stages.shard import in_shard, owns_node, parse_shard

RECORD_ENV = "KAKEYA_EVIDENCE_RECORD"
STACKS_ENV = "KAKEYA_EVIDENCE_STACKS"
SHARD_ENV = "KAKEYA_EVIDENCE_SHARD"
TIMEOUT_ENV = "KAKEYA_EVIDENCE_TIMEOUT"  # per-test timeout, unless the suite sets one
CACHE_ENV = "KAKEYA_EVIDENCE_CACHE_DIR"  # pytest's cache, unless the suite sets cache_dir

_state: dict[str, Any] = {
    "fd": None,
    "stacks": None,
    "config": None,
    "collected": False,
    "running": "",
    "deselected": 0,
}
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.<>]*)(?::\s|$)")
_SYNTAX_AT = re.compile(r'^E\s+File "(.+?)", line (\d+)')
_FRAME_AT = re.compile(r"^(\S+?\.py):(\d+): in ")


# Bound at import, before any test can patch or swap them (see the module docstring).
_str, _now, _getpid = str, time.time, os.getpid
_os_open, _os_write, _os_close = os.open, os.write, os.close
_EXIT = pytest.exit.Exception


def _default(value: Any) -> str:
    try:
        return _str(value)
    except Exception:  # a test's object whose __str__ raises still gets a line
        return object.__repr__(value)


def _make_encoder() -> Any:
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is not None:
        # markers, default, encoder, indent, key sep, item sep, sort_keys, skipkeys, allow_nan
        encode = make(
            None, _default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
        )
        return lambda event: "".join(encode(event, 0))
    encoder = json.JSONEncoder(default=_default, check_circular=False)
    return lambda event: "".join(encoder.iterencode(event))


_encode = _make_encoder()


def _write(event: dict[str, Any]) -> None:
    fd = _state["fd"]
    if fd is None:
        return
    data = (_encode(event) + "\n").encode("ascii")  # ensure_ascii: every id byte for byte
    while data:
        data = data[_os_write(fd, data) :]


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(tryfirst=True)  # before pytest-timeout and the cache read the settings
def pytest_configure(config: pytest.Config) -> None:
    _state["config"] = config
    added = _add_defaults(config)
    stacks = os.environ.get(STACKS_ENV)
    if stacks and hasattr(signal, "SIGUSR1"):
        if _is_worker(config):
            stacks += "." + str(config.workerinput.get("workerid", "worker"))  # type: ignore[attr-defined]
        _state["stacks"] = open(stacks, "w", encoding="utf-8")  # noqa: SIM115 - whole session
        faulthandler.register(signal.SIGUSR1, file=_state["stacks"], all_threads=True)
    path = os.environ.get(RECORD_ENV)
    if not path or _is_worker(config):
        return
    _state["fd"] = _os_open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    _write(
        {
            "event": "session_started",
            "pid": _getpid(),
            "rootdir": str(config.rootpath),
            "inifile": str(config.inipath or ""),
            "cwd": str(config.invocation_params.dir),
            "args": [str(a) for a in config.invocation_params.args],
            "added": added,
            "t": _now(),
        }
    )


def _add_defaults(config: pytest.Config) -> list[str]:
    """The pipeline's defaults, each only where the suite configured nothing itself.

    Returns:
        What was added, as the command-line option a person would have typed.
    """
    ini = getattr(config, "_inicfg", None) or getattr(config, "inicfg", None) or {}
    added = []
    timeout = os.environ.get(TIMEOUT_ENV)
    if timeout and config.pluginmanager.hasplugin("timeout"):
        own = config.getoption("timeout", None) is not None or "timeout" in ini
        if not own and not os.environ.get("PYTEST_TIMEOUT"):
            config.option.timeout = float(timeout)
            added.append(f"--timeout={timeout}")
    cache = os.environ.get(CACHE_ENV)
    if cache and "cache_dir" not in ini:
        config._inicache["cache_dir"] = cache  # read once, by the cache plugin's configure
        added.append(f"-o cache_dir={cache}")
    return added


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shard = parse_shard(os.environ.get(SHARD_ENV, ""))
    if shard is None:
        return
    kept = [item for index, item in enumerate(items) if in_shard(index, shard)]
    dropped = [item for index, item in enumerate(items) if not in_shard(index, shard)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = kept


def pytest_deselected(items: list[pytest.Item]) -> None:
    _state["deselected"] += len(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    if not _is_worker(session.config):
        _collected([item.nodeid for item in session.items])


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    _collected(list(ids))  # every worker collects the same ids; the first one counts


def _collected(nodeids: list[str]) -> None:
    if _state["collected"] or _state["fd"] is None:
        return
    _state["collected"] = True
    _write({"event": "collected", "nodeids": nodeids, "deselected": _state["deselected"]})


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.passed or _state["fd"] is None:
        return
    if not owns_node(report.nodeid, parse_shard(os.environ.get(SHARD_ENV, ""))):
        return
    # The terminal counts a failed collection as an error and a skipped one as skipped.
    category = "error" if report.failed else "skipped"
    _write(_report_event(report, category, counted=True))


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _state["running"] = nodeid
    _write({"event": "started", "nodeid": nodeid, "t": _now()})


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    config = _state["config"]
    if _state["fd"] is None or config is None:
        return
    status = config.hook.pytest_report_teststatus(report=report, config=config)
    category = _str(status[0]) if status else report.outcome
    counted = bool(getattr(report, "count_towards_summary", True))
    _write(_report_event(report, category, counted=counted))


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _state["running"] = ""
    _write({"event": "finished", "nodeid": nodeid, "t": _now()})


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """pytest.exit() or Ctrl-C ended the session: say so, and where."""
    error = excinfo.value
    exited = isinstance(error, _EXIT)
    _write(
        {
            "event": "exited",
            "kind": "exit" if exited else "interrupt",
            "reason": _str(getattr(error, "msg", "") or error) if exited else "KeyboardInterrupt",
            "returncode": getattr(error, "returncode", None),
            "nodeid": _state["running"],
            "t": _now(),
        }
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _write({"event": "session_finished", "exitstatus": int(exitstatus), "t": _now()})


def pytest_unconfigure(config: pytest.Config) -> None:
    if _state["stacks"] is not None and hasattr(signal, "SIGUSR1"):
        faulthandler.unregister(signal.SIGUSR1)
        _state["stacks"].close()
        _state["stacks"] = None
    if _state["fd"] is not None:
        _os_close(_state["fd"])
        _state["fd"] = None
    _state.update(config=None, collected=False, running="", deselected=0)


def _report_event(
    report: pytest.TestReport | pytest.CollectReport, category: str, *, counted: bool
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event": "report",
        "nodeid": report.nodeid,
        "when": getattr(report, "when", None) or "collect",
        "outcome": _str(report.outcome),
        "category": category,
        "counted": counted,
        "duration_s": round(float(getattr(report, "duration", 0.0) or 0.0), 6),
        "start": getattr(report, "start", None),
        "stop": getattr(report, "stop", None),
        "worker": _worker(report),
    }
    try:
        event.update(_describe(report))
    except Exception as exc:  # a report we cannot read must not break the user's run
        event.update(message=f"(could not read the report: {type(exc).__name__}: {exc})")
    return event


def _worker(report: Any) -> str:
    worker = getattr(report, "worker_id", None)
    if worker is None:
        gateway = getattr(getattr(report, "node", None), "gateway", None)
        worker = getattr(gateway, "id", None)
    return str(worker or "")


def _describe(report: Any) -> dict[str, Any]:
    text = report.longreprtext if report.longrepr is not None else ""
    when = getattr(report, "when", None) or "collect"
    path, line = _location(report)
    message, exception = _message(report, text)
    if when == "collect" and report.failed:
        message, exception, path, line = _collect_error(text, path, message, exception)
    elif report.failed:
        line = _failure_line(report, path) or line
    return {
        "message": message,
        "exception": exception,
        "longrepr": clip_end(text),
        "stdout": clip_end(_captured(report, "stdout", when)),
        "stderr": clip_end(_captured(report, "stderr", when)),
        "path": path,
        "line": line,
        "wasxfail": hasattr(report, "wasxfail"),
    }


def _location(report: Any) -> tuple[str, int | None]:
    """The test's file relative to the rootdir, and the line pytest points at."""
    longrepr = report.longrepr
    skip = longrepr if isinstance(longrepr, tuple | list) and len(longrepr) == 3 else None
    if (getattr(report, "when", None) or "collect") == "collect":
        path = report.nodeid.split("::", 1)[0]
        return (_relative(str(skip[0])) or path, _int(skip[1])) if skip else (path, None)
    path, line = str(report.location[0]), report.location[1]
    if skip and _relative(str(skip[0])) == path:
        return path, _int(skip[1])
    return path, line + 1 if isinstance(line, int) else None


def _message(report: Any, text: str) -> tuple[str, str]:
    longrepr = report.longrepr
    if hasattr(report, "wasxfail") and not report.failed:
        return str(report.wasxfail or "xfail"), ""
    if report.skipped and isinstance(longrepr, tuple | list) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: "), ""
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        message = first_line(str(crash.message))
        return message, _exception_name(message)
    return first_line(text), ""


def _exception_name(line: str) -> str:
    match = _EXCEPTION_LINE.match(line)
    if not match or " " in match.group(1):
        return ""
    name = match.group(1).rsplit(".", 1)[-1]
    return name if name[:1].isupper() else ""


def _collect_error(
    text: str, path: str, message: str, exception: str
) -> tuple[str, str, str, int | None]:
    """The user's file, line and exception of a collection error (not _pytest's frames)."""
    errors = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    last = next((e for e in reversed(errors) if e), "")
    exception = _exception_name(last) or exception
    where: tuple[str, int] | None = None
    for line in text.splitlines():
        syntax = _SYNTAX_AT.match(line)
        frame = _FRAME_AT.match(line)
        if syntax:
            where = (_relative(syntax.group(1)), int(syntax.group(2)))
        elif frame and _relative(frame.group(1)) == path:
            where = (path, int(frame.group(2)))
    if where is None:
        return (last or message), exception, path, None
    return f"{where[0]}:{where[1]}: {last or message}", exception, where[0], where[1]


def _failure_line(report: Any, path: str) -> int | None:
    """The line of the innermost traceback entry in the test's own file."""
    entries = getattr(getattr(report.longrepr, "reprtraceback", None), "reprentries", None)
    for entry in reversed(entries or []):
        location = getattr(entry, "reprfileloc", None)
        if location is not None and _relative(str(location.path)) == path:
            return _int(location.lineno)
    return None


def _relative(path: str) -> str:
    """path (absolute, or relative to the invocation directory) relative to the rootdir."""
    config = _state["config"]
    if config is None:
        return path
    full = Path(config.invocation_params.dir, path)
    try:
        return full.resolve().relative_to(config.rootpath.resolve()).as_posix()
    except (ValueError, OSError):
        return path


def _captured(report: Any, stream: str, when: str) -> str:
    title = f"Captured {stream} {when}"
    return "".join(content for name, content in getattr(report, "sections", []) if name == title)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
