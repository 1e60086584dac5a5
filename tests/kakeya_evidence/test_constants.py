"""One constant, one place: the default model id is written once in the package code.

Everything else (the runtime's ModelConfig and CLI, the pipeline's configs, the bench,
the scripts, the Makefile) imports it or leaves the flag to the CLI's default.
"""

from __future__ import annotations

import re
from pathlib import Path

from inference_engine.config import DEFAULT_MODEL_ID
from inference_engine.models.presets import TINY_MODEL_ID

REPO = Path(__file__).resolve().parents[2]
PACKAGE_CODE = ("inference_engine", "kakeya", "kakeya_evidence", "scripts")
# The embedded preset is named where it is defined; that is the one place.
DEFINED_IN = {"inference_engine/models/presets.py"}
# The CI glue's shell default (owned with the workflows; its test pins the argv it builds).
NOT_YET = {"scripts/ci_evidence.sh"}


def _code_files() -> list[Path]:
    files = [p for root in PACKAGE_CODE for p in (REPO / root).rglob("*") if p.is_file()]
    return [p for p in files if p.suffix in (".py", ".sh", ".j2") or p.name == "Makefile"]


def test_the_default_model_is_the_embedded_preset():
    assert DEFAULT_MODEL_ID == TINY_MODEL_ID == "kakeya/tiny-qwen3"


def test_no_stray_literal_of_the_default_model_id_in_package_code():
    stray = [
        f"{path.relative_to(REPO)}:{number}"
        for path in [*_code_files(), REPO / "Makefile"]
        if str(path.relative_to(REPO)) not in DEFINED_IN | NOT_YET
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if DEFAULT_MODEL_ID in line
    ]
    assert stray == []


def test_the_literal_check_sees_the_definition():
    """The check can fail: the one definition is found by the same walk."""
    found = [p for p in _code_files() if DEFAULT_MODEL_ID in p.read_text(encoding="utf-8")]
    assert {str(p.relative_to(REPO)) for p in found} >= DEFINED_IN


# an assignment or keyword default of the literal, not a comparison (`name == "evidence"`)
_ASSIGNS_EVIDENCE = re.compile(r'(?<![=!<>])= ?"evidence"')


def test_the_default_output_dir_is_defined_once_in_the_pipeline():
    """Notebooks say ``../evidence`` (their folder's view); the code says it once."""
    defined = [
        str(path.relative_to(REPO))
        for path in (REPO / "kakeya_evidence").rglob("*.py")
        for line in path.read_text(encoding="utf-8").splitlines()
        if _ASSIGNS_EVIDENCE.search(line)
    ]
    assert defined == ["kakeya_evidence/common/params.py"]
