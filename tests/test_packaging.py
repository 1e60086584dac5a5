"""The project's own packaging metadata: it builds today and keeps building, and a plain
`pip install kakeya` is the SDK alone (the runtime, pipeline and test tools are extras).

setuptools deprecated `project.license` as a TOML table and stops building such projects
after 2027-02-18; an SPDX expression with `license-files` (PEP 639) is the lasting form.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUILD_METADATA = (
    "import sys\n"
    "from setuptools import build_meta\n"
    "print(build_meta.prepare_metadata_for_build_wheel(sys.argv[1]))\n"
)
SDK_REQUIREMENTS = {"grpcio", "grpcio-health-checking", "protobuf"}
RUNTIME_NAMES = {"torch", "transformers", "tokenizers", "fastapi", "uvicorn", "grpcio-reflection"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(the METADATA file, the build's log) as setuptools writes them for a wheel."""
    out = tmp_path_factory.mktemp("metadata")
    proc = subprocess.run(
        [sys.executable, "-W", "always", "-c", BUILD_METADATA, str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    return next(out.glob("*.dist-info/METADATA")).read_text(encoding="utf-8"), log


def requires(metadata: str) -> dict[str | None, list[str]]:
    """Requires-Dist lines by extra (None: the base install)."""
    by_extra: dict[str | None, list[str]] = {}
    for line in metadata.splitlines():
        if line.startswith("Requires-Dist: "):
            requirement = line.removeprefix("Requires-Dist: ")
            extra = re.search(r"""extra == ["']([^"']+)["']""", requirement)
            by_extra.setdefault(extra and extra.group(1), []).append(requirement)
    return by_extra


def name(requirement: str) -> str:
    return re.split(r"[\s;<>=!~\[]", requirement, maxsplit=1)[0].lower()


def test_metadata_builds_with_an_spdx_license_and_no_deprecation_warning(built) -> None:
    metadata, log = built
    assert "deprecat" not in log.lower(), log
    assert "License-Expression: Apache-2.0" in metadata
    assert "License-File: LICENSE" in metadata
    assert (REPO / "LICENSE").read_text(encoding="utf-8").lstrip().startswith("Apache License")


def test_the_base_install_is_the_sdk_alone(built) -> None:
    base = {name(r) for r in requires(built[0])[None]}
    assert base == SDK_REQUIREMENTS


def test_the_extras_add_the_runtime_the_pipeline_and_the_tools(built) -> None:
    extras = requires(built[0])
    runtime = {name(r) for r in extras["runtime"]}
    assert runtime >= RUNTIME_NAMES
    torch_linux = [r for r in extras["runtime"] if name(r) == "torch" and "linux" in r]
    assert torch_linux and torch_linux[0].startswith("torch==2.13.0;")
    assert any(r.startswith("kakeya[runtime]") for r in extras["evidence"])
    assert "papermill" in {name(r) for r in extras["evidence"]}
    assert any(r.startswith("kakeya[evidence]") for r in extras["test"])
    assert {"jupyterlab", "jupyter-server"} <= {name(r) for r in extras["notebook"]}
    assert any(r.startswith("kakeya[notebook]") for r in extras["test"])
    assert {"mypy", "types-protobuf", "grpc-stubs"} <= {name(r) for r in extras["test"]}
    assert any(r.startswith("kakeya[test]") for r in extras["dev"])
