#!/usr/bin/env python3
"""Run a ``kakeya-evidence`` GitHub subcommand without installing the project.

GitHub-hosted gate jobs have a checkout and a system Python but not the
project's dependencies (torch and friends). ``kakeya_evidence/github.py`` uses
only the standard library, so this loads that one file by path (importing the
package would import its other modules) and runs its ``main``.

Usage: python3 scripts/ci_github.py gate --repo OWNER/NAME --event-name ... --event-path ...
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

MODULE_PATH = Path(__file__).resolve().parent.parent / "kakeya_evidence" / "github.py"


def load_github_module() -> types.ModuleType:
    """Import kakeya_evidence/github.py as a standalone module."""
    spec = importlib.util.spec_from_file_location("kakeya_ci_github", MODULE_PATH)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {MODULE_PATH}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    sys.exit(load_github_module().main(sys.argv[1:]))
