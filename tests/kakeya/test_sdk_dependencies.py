"""The SDK is the lowest layer: it imports neither the runtime nor torch, and it is typed.

Statically (every import statement under kakeya/, function bodies included) and in a fresh
interpreter (what `import kakeya` really loads); `mypy --strict kakeya/` stays clean.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SDK = REPO / "kakeya"
FORBIDDEN = ("inference_engine", "kakeya_evidence", "torch", "transformers", "tokenizers")


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def forbidden(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in FORBIDDEN}


def test_no_sdk_module_imports_the_runtime_or_torch() -> None:
    files = sorted(SDK.rglob("*.py")) + sorted(SDK.rglob("*.pyi"))
    assert len(files) >= 8
    found = {str(path.relative_to(REPO)): forbidden(imported_modules(path)) for path in files}
    assert {path: modules for path, modules in found.items() if modules} == {}


def test_importing_the_sdk_loads_neither_the_runtime_nor_torch() -> None:
    code = (
        "import json, sys\n"
        "import kakeya, kakeya.tokenization, kakeya.v1.runtime_pb2_grpc\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = set(json.loads(out.stdout))
    assert {"kakeya", "kakeya.v1.runtime_pb2", "grpc"} <= loaded
    assert forbidden(loaded) == set()


def test_the_sdk_is_marked_typed() -> None:
    assert (SDK / "py.typed").is_file()
    assert (SDK / "v1" / "runtime_pb2.pyi").is_file()
    assert (SDK / "v1" / "runtime_pb2_grpc.pyi").is_file()


@pytest.mark.slow
def test_mypy_strict_is_clean_on_the_sdk(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path), "kakeya/"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success: no issues found" in proc.stdout
