"""Kakeya runtime: session-bound LLM inference with a bounded, per-session KV cache."""

import os

# GNU OpenMP (torch's CPU thread pool on Linux) spins idle workers for a long while after
# each parallel region. When generations run on different threads, or anything else
# shares the cores, those spinning teams starve each other: decode measured 10-20x
# slower here. A short spin keeps single-thread speed and removes the starvation. It
# must be set before torch loads, so it lives here; an explicit setting wins.
os.environ.setdefault("GOMP_SPINCOUNT", "1000")

__version__ = "0.1.0"
