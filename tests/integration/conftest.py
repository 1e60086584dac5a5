"""The real-model suite: every test here is marked `integration`.

Its fixtures (model, engines, servers) live in tests/runtime_fixtures.py, shared with
tests/reliability. The evidence runner points them at a model with KAKEYA_MODEL,
KAKEYA_DEVICE and KAKEYA_DTYPE; by default the embedded model, offline.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.integration)
