"""Write (or, with --check, compare) each notebook's parameters cell from its dataclass.

Each notebook's parameters cell holds the notebook's own locations (relative to its
folder) and one dict: the defaults of its stage's config piece, as the runner hands it
(``kakeya_evidence.config.notebook_piece``). Add a field to a piece, run this script, and
the notebook takes the new option. tests/kakeya_evidence/test_notebooks.py holds every
parameters cell against its dataclass.

Usage: python3 scripts/notebook_parameters.py [--check]
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import nbformat

from kakeya_evidence.common.params import DEFAULT_OUTPUT_DIR, DEFAULT_TESTS
from kakeya_evidence.config import NOTEBOOK_PIECES, RunConfig, notebook_piece
from kakeya_evidence.runner import DEFAULT_NOTEBOOKS_DIR, NOTEBOOKS

# The locations each notebook takes beside its piece, as seen from notebooks/: the
# repository's evidence/ (DEFAULT_OUTPUT_DIR), its integration suite, its root.
OUTPUT = f'output_dir = "../{DEFAULT_OUTPUT_DIR}"'
LOCATIONS = {
    "host_check": [OUTPUT],
    "cache_prewarm": [OUTPUT],
    "integration_suite": [
        OUTPUT,
        f'tests = "../{DEFAULT_TESTS}"  # relative paths start from this notebook\'s folder',
        'cwd = ".."  # where pytest starts: the repository root, as in CI',
    ],
    "results_report": [OUTPUT],
}
MAX_LINE = 100  # ruff's line length, notebooks included
EXTRA = {"integration_suite": ['inline_nodeid = ""  # a node id to re-run inline (see below)']}


def parameters_source(stage: str) -> str:
    """The parameters cell of a stage's notebook, from the piece's defaults."""
    name = NOTEBOOK_PIECES[stage]
    piece = getattr(RunConfig(), name)
    body = _dict_lines(notebook_piece(RunConfig(), stage), piece, "    ")
    lines = [*LOCATIONS[stage], f"{name} = {{", *body, "}", *EXTRA.get(stage, [])]
    return "\n".join(lines)


def _dict_lines(values: dict[str, Any], config: Any, indent: str) -> list[str]:
    """One line per key, its help as a comment; a nested config dict likewise."""
    helps = {f.name: f.metadata.get("help", "") for f in dataclasses.fields(config)}
    lines = []
    for key, value in values.items():
        if isinstance(value, dict):
            nested = _dict_lines(value, getattr(config, key), indent + "    ")
            lines += [f'{indent}"{key}": {{', *nested, f"{indent}}},"]
            continue
        note = helps.get(key, "").replace("%%", "%")
        line = f'{indent}"{key}": {_literal(value)},'
        if note and len(f"{line}  # {note}") <= MAX_LINE:
            line += f"  # {note}"
        elif note:  # too long beside the value: the comment goes above it
            lines.append(f"{indent}# {note}")
        lines.append(line)
    return lines


def _literal(value: Any) -> str:
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for stage, filename in NOTEBOOKS.items():
        path = Path(DEFAULT_NOTEBOOKS_DIR, filename)
        notebook = nbformat.read(path, as_version=4)
        cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
        wanted = parameters_source(stage)
        if cell.source != wanted:
            stale.append(filename)
            if not check:
                cell.source = wanted
                nbformat.write(notebook, path)
    for filename in stale:
        print(f"{'stale' if check else 'wrote'}: notebooks/{filename}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
