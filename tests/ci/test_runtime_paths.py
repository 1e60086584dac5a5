"""The one list of runtime paths: it covers what the suite loads, and drives all three users."""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kakeya_evidence.github.paths import (
    AUTO_LABEL,
    CODEOWNERS,
    LABELER_CONFIG,
    MAINTAINER_LABEL,
    RUNTIME_PATH_GLOBS,
    WORKFLOW,
    matches_runtime_path,
)

ROOT = Path(__file__).resolve().parents[2]
# Collect the integration suite in a fresh interpreter, then list every file it loaded:
# pytest's plugins (every conftest.py, tests/runtime_fixtures.py through pytest_plugins;
# several conftest modules share the name "conftest" in sys.modules, so ask pytest),
# every imported module, and pytest's configuration file.
_COLLECT = """
import json, sys
import pytest

class Loaded:
    files = []
    def pytest_collection_finish(self, session):
        plugins = session.config.pluginmanager.get_plugins()
        Loaded.files = [getattr(p, "__file__", None) for p in plugins]
        Loaded.files.append(str(session.config.inipath or ""))

code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "tests/integration"],
                   plugins=[Loaded()])
files = Loaded.files + [getattr(m, "__file__", None) for m in list(sys.modules.values())]
json.dump({"code": int(code), "files": [f for f in files if f]}, open(sys.argv[1], "w"))
"""


@pytest.fixture(scope="module")
def suite_files(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Repository files (relative, POSIX) that collecting tests/integration loads."""
    out = tmp_path_factory.mktemp("collect") / "files.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _COLLECT, str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    result = json.loads(out.read_text())
    assert result["code"] == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    venv = Path(sys.prefix).resolve()
    loaded = set()
    for name in result["files"]:
        path = Path(name).resolve()
        if path.is_relative_to(ROOT) and not path.is_relative_to(venv):
            loaded.add(path.relative_to(ROOT).as_posix())
    return loaded


def uncovered(files: set[str], globs: tuple[str, ...]) -> list[str]:
    return sorted(f for f in files if not matches_runtime_path(f, globs))


def test_the_paths_cover_every_file_the_integration_suite_loads(suite_files):
    """Fault 10: conftest.py and the runtime fixtures change the suite, so they start the run."""
    assert {"tests/conftest.py", "tests/runtime_fixtures.py", "pyproject.toml"} <= suite_files
    assert any(f.startswith("tests/integration/test_") for f in suite_files)
    assert any(f.startswith("inference_engine/") for f in suite_files)
    assert uncovered(suite_files, RUNTIME_PATH_GLOBS) == []


def test_the_coverage_check_catches_a_missing_fixture_path(suite_files):
    without = tuple(g for g in RUNTIME_PATH_GLOBS if g != "tests/runtime_fixtures.py")
    assert uncovered(suite_files, without) == ["tests/runtime_fixtures.py"]


def test_the_labeler_and_the_push_filter_are_written_from_the_list(cli):
    labeler = yaml.safe_load((ROOT / LABELER_CONFIG).read_text())
    assert list(labeler) == [AUTO_LABEL]  # the maintainer's label is never synced away
    globs = labeler[AUTO_LABEL][0]["changed-files"][0]["any-glob-to-any-file"]
    assert tuple(globs) == RUNTIME_PATH_GLOBS
    workflow = yaml.safe_load((ROOT / WORKFLOW).read_text())
    assert tuple(workflow[True]["push"]["paths"]) == RUNTIME_PATH_GLOBS  # YAML reads `on` as True
    assert cli(["sync-paths", "--check", "--root", str(ROOT)]) == (0, "")


def test_sync_paths_finds_and_repairs_drift(cli, tmp_path):
    for name in (LABELER_CONFIG, WORKFLOW, CODEOWNERS):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    text = (tmp_path / WORKFLOW).read_text()
    (tmp_path / WORKFLOW).write_text(text.replace('      - "tests/conftest.py"\n', ""))
    (tmp_path / LABELER_CONFIG).write_text(f"{MAINTAINER_LABEL}:\n  - changed-files: []\n")
    owners = (tmp_path / CODEOWNERS).read_text()
    (tmp_path / CODEOWNERS).write_text(owners.replace("conftest.py @", "conftest.py.bak @"))
    rc, out = cli(["sync-paths", "--check", "--root", str(tmp_path)])
    expected = ["differs:", LABELER_CONFIG, "differs:", WORKFLOW, "differs:", CODEOWNERS]
    assert (rc, out.split()) == (1, expected)
    assert cli(["sync-paths", "--root", str(tmp_path)])[0] == 0
    for name in (LABELER_CONFIG, WORKFLOW, CODEOWNERS):
        assert (tmp_path / name).read_text() == (ROOT / name).read_text()


def codeowners_patterns() -> list[str]:
    lines = (ROOT / CODEOWNERS).read_text().splitlines()
    return [line.split()[0] for line in lines if line.strip() and not line.startswith("#")]


def codeowned(path: str, patterns: list[str]) -> bool:
    """GitHub's CODEOWNERS matching for the three forms sync-paths writes."""
    name = path.rsplit("/", 1)[-1]
    for pattern in patterns:
        if pattern.endswith("/") and path.startswith(pattern[1:]):
            return True
        if pattern.startswith("/") and fnmatch.fnmatchcase(path, pattern[1:]):
            return True
        if "/" not in pattern and fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def test_codeowners_covers_every_runtime_path_and_the_trusted_ci_code(suite_files):
    """Every file that changes the Mac suite, or what publishes its check, has an owner."""
    patterns = codeowners_patterns()
    trusted = [
        ".github/workflows/integration.yaml", ".github/workflows/ci.yaml", "CODEOWNERS",
        "kakeya_evidence/github/publish.py", "scripts/ci_github.py", "scripts/ci_lint.sh",
        "docs/ops/mac-m4-runner-setup.md", "locks/macos-arm64.txt", "deep/dir/conftest.py",
    ]  # fmt: skip
    assert [f for f in sorted(suite_files) + trusted if not codeowned(f, patterns)] == []
    assert not codeowned("README.md", patterns)  # the check can fail


RUNTIME_CONFIG_FILES = (
    "conftest.py", "pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml", ".python-version",
    "uv.lock", "requirements-dev.txt", "constraints.txt",
)  # fmt: skip


@pytest.mark.parametrize("name", RUNTIME_CONFIG_FILES)
@pytest.mark.parametrize("where", ["", "tests/", "docs/deep/"])
def test_a_new_config_or_lock_file_anywhere_starts_the_mac_run(fake_pr_files, where, name):
    """pytest reads a new conftest.py or ini from any directory on its way to the tests."""
    assert fake_pr_files(where + name) == "true"


@pytest.mark.parametrize("name", ["locks/linux-cpu.txt", "locks/macos-arm64.txt"])
def test_the_lock_files_start_the_mac_run(fake_pr_files, name):
    assert fake_pr_files(name) == "true"


def test_sync_paths_needs_the_marker_block(cli, tmp_path):
    (tmp_path / WORKFLOW).parent.mkdir(parents=True)
    (tmp_path / WORKFLOW).write_text("on:\n  push:\n    paths: [x]\n")
    assert cli(["sync-paths", "--check", "--root", str(tmp_path)])[0] == 2


@pytest.mark.parametrize(
    "path, runtime",
    [
        ("proto/kakeya/v1/runtime.proto", True),
        ("tests/conftest.py", True),
        ("tests/integration/conftest.py", True),
        ("pyproject.toml", True),
        ("kakeyaX/thing.py", False),
        ("docs/pyproject.toml", True),
        ("tests/pytest.ini", True),
        ("a/b/.python-version", True),
        ("docs/conftest.py.txt", False),
        ("tests/kakeya_evidence/test_cli.py", False),
        ("README.md", False),
    ],
)
def test_runtime_path_matching(path, runtime):
    assert matches_runtime_path(path) is runtime


@pytest.fixture
def fake_pr_files(cli, tmp_path, monkeypatch):
    """Create a file in a scratch tree, offer the tree's files as a PR's changed files
    (the API's file list, served by a stub), and return the gate's ``run`` output."""
    import http.server
    import threading

    def decide(relative: str) -> str:
        tree = tmp_path / "tree"
        target = tree / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("# new\n")
        files = [p.relative_to(tree).as_posix() for p in sorted(tree.rglob("*")) if p.is_file()]
        body = json.dumps([{"filename": f, "status": "added"} for f in files]).encode()

        class Files(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                return

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            event = tmp_path / "event.json"
            pr = {"number": 3, "head": {"sha": "a" * 40, "repo": {"full_name": "o/r"}}}
            event.write_text(json.dumps({"action": "opened", "pull_request": pr}))
            monkeypatch.setenv("GITHUB_TOKEN", "t")
            monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
            api = f"http://127.0.0.1:{server.server_address[1]}"
            argv = ["gate", "--repo", "o/r", "--event-name", "pull_request_target"]
            rc, out = cli([*argv, "--event-path", str(event), "--api-url", api])
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
        assert rc == 0, out
        return dict(line.split("=", 1) for line in out.splitlines())["run"]

    return decide


def test_the_scratch_tree_check_can_fail(fake_pr_files):
    assert fake_pr_files("docs/notes.md") == "false"
