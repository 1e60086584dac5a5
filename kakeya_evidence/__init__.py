"""Kakeya evidence pipeline: host check, cache prewarm, integration suite, results report.

The package imports neither torch nor grpc at module level; notebooks call it.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
