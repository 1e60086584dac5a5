#!/usr/bin/env python3
"""Run a ``kakeya-evidence`` GitHub subcommand without installing the project.

GitHub-hosted jobs have a checkout and a system Python but not the project's
dependencies (torch and friends). ``kakeya_evidence.github`` and the package's
``__init__`` use only the standard library (tests/ci checks it), so this puts the
checkout on ``sys.path`` and runs the package's ``main``.

Usage: python3 scripts/ci_github.py publish --evidence DIR --repo OWNER/NAME --sha SHA ...
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kakeya_evidence.github import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
