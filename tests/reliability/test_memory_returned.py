"""Memory accounted and returned (issue 25): RSS before, during and after 64 full sessions.

The probe runs in a subprocess of its own (RSS is a process-wide figure). Each session's
RSS cost stays within the store's per-session figure (KV buffer bound plus overhead), and
closing all of them gives the memory back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

PROBE = Path(__file__).with_name("memory_probe.py")
MARGIN_MIB = 8.0  # after closing: within this of the start (allocator rounding, arenas)


def probe(*args: str) -> dict[str, float]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, str(PROBE), "--sessions", "64", *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_closing_64_full_sessions_gives_their_memory_back() -> None:
    figures = probe()
    grew = figures["rss_during_mib"] - figures["rss_before_mib"]
    assert grew > 0.9 * 64 * figures["kv_bound_mib"], figures  # the sessions really were full
    assert figures["rss_per_session_mib"] <= figures["store_session_mib"] * 1.05, figures
    assert figures["rss_after_mib"] - figures["rss_before_mib"] <= MARGIN_MIB, figures
