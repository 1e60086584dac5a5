"""The project's own packaging metadata: it builds today and keeps building.

setuptools deprecated `project.license` as a TOML table and stops building such projects
after 2027-02-18; an SPDX expression with `license-files` (PEP 639) is the lasting form.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILD_METADATA = (
    "import sys\n"
    "from setuptools import build_meta\n"
    "print(build_meta.prepare_metadata_for_build_wheel(sys.argv[1]))\n"
)


def test_metadata_builds_with_an_spdx_license_and_no_deprecation_warning(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-W", "always", "-c", BUILD_METADATA, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    assert "deprecat" not in log.lower(), log
    metadata = next(tmp_path.glob("*.dist-info/METADATA")).read_text(encoding="utf-8")
    assert "License-Expression: Apache-2.0" in metadata
    assert "License-File: LICENSE" in metadata
    assert (REPO / "LICENSE").read_text(encoding="utf-8").lstrip().startswith("Apache License")
