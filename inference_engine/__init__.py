"""Kakeya runtime: session-bound LLM inference with a bounded, per-session KV cache."""

__version__ = "0.1.0"
