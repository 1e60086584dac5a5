"""Committed docs and notebooks speak to every reader, not to one development machine."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Roots of the machines this project is developed on (the runner runbook's /Users/runner
# and /opt/homebrew describe the runner it sets up, and stay).
MACHINE_PATH = re.compile(r"(?<![\w.~$-])/(?:work|root|home)/[^\s`'\")]*")


def committed(*patterns: str) -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", *patterns], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    return [REPO / line for line in out.splitlines() if line]


def test_no_doc_or_notebook_names_a_development_machine_path() -> None:
    files = committed("*.md", "*.ipynb")
    assert any(p.name == "README.md" for p in files)
    found = [
        f"{path.relative_to(REPO)}:{number}: {match.group(0)}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for match in MACHINE_PATH.finditer(line)
    ]
    assert found == []


def test_the_machine_path_pattern_catches_what_it_should() -> None:
    assert MACHINE_PATH.search("source /work/venv/bin/activate")
    assert MACHINE_PATH.search("see /home/dev/kakeya/evidence")
    assert not MACHINE_PATH.search("HF_HOME=/Users/runner/hf-home")
    assert not MACHINE_PATH.search(". .venv/bin/activate && ~/work/x and $HOME/work")
