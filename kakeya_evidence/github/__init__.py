"""GitHub glue for the evidence pipeline, standard library only.

Modules, one job each::

    client       REST client: JSON, pagination by Link header, artifact downloads
    paths        the runtime paths (gate, labeler config, push filter) and sync-paths
    gate         whether the Mac M4 job runs for an event, and on which commit
    baseline     main's newest evidence (baseline) and its last N (history)
    render       Markdown from evidence.json for the comment, check run and summary
    annotations  failing tests as Checks API annotations or ::error commands
    checks       the check run with every annotation, 50 per request
    comment      the one PR comment, found by marker and by its bot author
    publish      all three outputs for one run
    commands     the CLI subcommands (registered into kakeya-evidence)

GitHub-hosted jobs run it without the project installed:
``python3 scripts/ci_github.py SUBCOMMAND ...`` (or
``PYTHONPATH=. python3 -m kakeya_evidence.github SUBCOMMAND ...``).
"""

from __future__ import annotations

from kakeya_evidence.github.commands import main, register

__all__ = ["main", "register"]
