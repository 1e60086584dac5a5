"""The suite's model fixture records what the loader resolved `auto` to (device and dtype)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TESTS_DIR = Path(__file__).resolve().parents[2]


def test_the_model_fixture_writes_requested_and_resolved_device_and_dtype(tmp_path):
    # Only the fixtures module on the path: tests/ itself holds folders named like the
    # packages (tests/inference_engine/models), which would shadow an editable install.
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copy(TESTS_DIR / "runtime_fixtures.py", plugins)
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text('pytest_plugins = ["runtime_fixtures"]\n')
    (suite / "test_load.py").write_text("def test_loads(loaded_model):\n    pass\n")
    facts = tmp_path / "model_load.json"
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(plugins), os.environ.get("PYTHONPATH", "")]),
        KAKEYA_MODEL_LOAD_FILE=str(facts),
        KAKEYA_MODEL="kakeya/tiny-qwen3",
        KAKEYA_DEVICE="auto",
        KAKEYA_DTYPE="auto",
        HF_HUB_OFFLINE="1",
    )
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(suite)]
    proc = subprocess.run(command, cwd=suite, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    data = json.loads(facts.read_text())
    assert (data["device_requested"], data["dtype_requested"]) == ("auto", "auto")
    assert data["device"] in ("cpu", "cuda", "cuda:0", "mps")
    assert data["dtype"] in ("float32", "bfloat16", "float16")
