"""Suite-wide setup: the tools the tests run by name come from this interpreter's venv.

`make test` runs `.venv/bin/python -m pytest` without activating the venv, so console
scripts installed there (kakeya-runtime, kakeya-evidence, zizmor, actionlint) are put
first on PATH for every subprocess the tests start.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_BIN = str(Path(sys.executable).parent)
if os.environ.get("PATH", "").split(os.pathsep)[0] != _BIN:
    os.environ["PATH"] = os.pathsep.join(p for p in (_BIN, os.environ.get("PATH", "")) if p)

# Model, engine and server fixtures for the real-model suites (loaded only when used).
pytest_plugins = ["runtime_fixtures"]
