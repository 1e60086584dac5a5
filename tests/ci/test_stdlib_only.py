"""The GitHub-hosted jobs run kakeya_evidence.github without the project's dependencies."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import kakeya_evidence.github

ROOT = Path(__file__).resolve().parents[2]
# -S: no site-packages, so any third-party import fails as on a bare runner.
_PROBE = """
import importlib, json, sys
sys.path.insert(0, sys.argv[1])
for name in json.loads(sys.argv[2]):
    importlib.import_module(name)
top = {m.split(".")[0] for m in sys.modules}
print(json.dumps(sorted(t for t in top - {"__main__"} if t not in sys.stdlib_module_names)))
"""


def modules() -> list[str]:
    found = pkgutil.iter_modules(kakeya_evidence.github.__path__, "kakeya_evidence.github.")
    return sorted(m.name for m in found if not m.name.endswith("__main__"))


def test_every_github_module_imports_with_the_standard_library_alone():
    names = modules()
    assert "kakeya_evidence.github.publish" in names and len(names) >= 9
    argv = [sys.executable, "-S", "-c", _PROBE, str(ROOT), json.dumps(names)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == ["kakeya_evidence"]


def test_the_entry_points_run_without_site_packages():
    script = [sys.executable, "-S", str(ROOT / "scripts" / "ci_github.py"), "publish", "--help"]
    proc = subprocess.run(script, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "--report-url" in proc.stdout
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    module = [sys.executable, "-S", "-m", "kakeya_evidence.github", "gate", "--help"]
    proc = subprocess.run(module, capture_output=True, text=True, timeout=60, env=env, cwd="/")
    assert proc.returncode == 0, proc.stderr
