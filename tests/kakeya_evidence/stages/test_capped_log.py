"""pytest's console log is kept compressed, capped, with its head and its tail."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kakeya_evidence.stages.capped_log import CappedLog

CHATTY = "import sys\nfor n in range(200_000):\n    sys.stdout.write(f'line {n:06d}\\n')\n"


def _capture(tmp_path: Path, code: str, **limits: int) -> tuple[CappedLog, bytes]:
    log = CappedLog(tmp_path / "log.txt.gz", **limits)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    log.start(proc.stdout)
    proc.wait(timeout=60)
    log.close()
    return log, gzip.decompress(log.path.read_bytes())


def test_a_flood_keeps_its_head_a_marked_cut_and_its_tail(tmp_path: Path):
    log, kept = _capture(tmp_path, CHATTY, max_bytes=100_000, tail_bytes=10_000)
    assert log.total_bytes == 200_000 * 12
    assert kept.startswith(b"line 000000\n")
    assert kept.endswith(b"line 199999\n")
    assert b" bytes of output cut ...]" in kept
    assert len(kept) < 100_000 + 2 * 10_000 + 100
    assert log.path.stat().st_size < 60_000  # compressed
    assert log.tail(24) == b"line 199998\nline 199999\n"


def test_small_output_is_kept_whole(tmp_path: Path):
    log, kept = _capture(tmp_path, "print('hello')", max_bytes=1_000, tail_bytes=100)
    assert kept == b"hello\n"
    assert log.tail(100) == b"hello\n"


def test_a_pipe_held_open_by_a_leftover_does_not_block_close(tmp_path: Path):
    # The child's own child keeps the pipe open for a minute after the child exits.
    code = (
        "import subprocess, sys;"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        "print(child.pid)"
    )
    log = CappedLog(tmp_path / "log.txt.gz")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    log.start(proc.stdout)
    proc.wait(timeout=60)
    started = time.monotonic()
    log.close(timeout_s=0.5)
    waited_s = time.monotonic() - started
    leftover = int(gzip.decompress(log.path.read_bytes()))
    os.kill(leftover, signal.SIGKILL)
    assert waited_s < 30  # not the leftover's 60 s
