"""The adapters use the engine only through `EngineClient` (issue 20): no `engine: Any`, no
reaching into the coordinator, no blocking hop through the loop's default executor."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[3] / "inference_engine" / "server"
ADAPTERS = sorted(p for p in SERVER.rglob("*.py") if p.name not in {"__init__.py"})


@pytest.mark.parametrize("path", ADAPTERS, ids=lambda p: str(p.relative_to(SERVER)))
def test_adapter_uses_the_engine_through_its_protocol(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"engine: Any\b", text)
    assert "engine.coordinator" not in text and "_engine.coordinator" not in text


@pytest.mark.parametrize("path", ADAPTERS, ids=lambda p: str(p.relative_to(SERVER)))
def test_adapter_calls_do_not_wait_in_the_default_executor(path: Path) -> None:
    """Only shutdown may use asyncio.to_thread (once); every per-call hop uses the engine's
    bounded pools (`run_blocking`) or none."""
    calls = re.findall(r"asyncio\.to_thread\(([^,)]*)", path.read_text(encoding="utf-8"))
    assert all(call.strip() == "engine.shutdown" for call in calls), calls
