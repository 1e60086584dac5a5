"""Deterministic slices of a suite: ``--shard K/N`` keeps every N-th test from the K-th.

The pytest plugin applies it to the collected items; the runner validates it. Items are
dealt round-robin in collection order (same collection, same slices); collection-level
reports (an error, a module-level skip) go to the one shard their node id hashes to, so
the shards' counts add up to the whole suite's.
"""

from __future__ import annotations

import re
import zlib

__all__ = ["in_shard", "owns_node", "parse_shard"]


def parse_shard(text: str) -> tuple[int, int] | None:
    """Parse "K/N" (1 <= K <= N) into (K, N); "" gives None.

    Raises:
        ValueError: The text is not of that form.
    """
    if not text:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise ValueError(f"shard must be K/N with 1 <= K <= N, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def in_shard(index: int, shard: tuple[int, int] | None) -> bool:
    """Whether the index-th collected item (0-based) belongs to shard (K, N)."""
    return shard is None or index % shard[1] == shard[0] - 1


def owns_node(nodeid: str, shard: tuple[int, int] | None) -> bool:
    """Whether a collection-level report for nodeid belongs to shard (K, N)."""
    return shard is None or zlib.crc32(nodeid.encode()) % shard[1] == shard[0] - 1
