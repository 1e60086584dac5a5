"""``python -m kakeya_evidence.github SUBCOMMAND ...``: the GitHub subcommands alone."""

from __future__ import annotations

import sys

from kakeya_evidence.github.commands import main

sys.exit(main())
