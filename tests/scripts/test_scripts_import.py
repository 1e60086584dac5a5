"""Every Python script under scripts/ imports (a script that reads a removed attribute at
import time, or imports a moved module, fails here rather than on the GPU machine)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[2] / "scripts").glob("*.py"))


def test_there_are_scripts_to_import():
    assert len(SCRIPTS) >= 5


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_every_script_imports_and_has_a_main(path: Path):
    spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # runs the module body, not __main__
    assert callable(getattr(module, "main", None)), f"{path.name} has no main()"
