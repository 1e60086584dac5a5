"""The runtime paths: the one list that decides which changes need the Mac M4 run.

:data:`RUNTIME_PATH_GLOBS` drives four places, so they cannot drift apart:

- the gate (:func:`matches_runtime_path`, called by ``gate`` on a pull request's files);
- ``.github/labeler.yml``, which actions/labeler reads to sync :data:`AUTO_LABEL`;
- the ``push: paths:`` filter of ``.github/workflows/integration.yaml`` (main's baseline);
- ``CODEOWNERS``: every runtime path, plus the trusted CI code (:data:`TRUSTED_PATHS`),
  needs a code owner's review.

The YAML files and CODEOWNERS cannot import Python, so ``sync-paths`` writes the list
into them and ``sync-paths --check`` (run by tests/ci) fails when they differ. Globs
are ``dir/**`` (everything below dir), ``**/NAME`` (a file name, which may hold ``*``,
at any depth, the root included) or one exact file: the meaning actions/labeler
(minimatch), GitHub's path filters and CODEOWNERS give them.

What changes the Mac suite without touching runtime code is a runtime path too: any
``conftest.py`` and pytest configuration (``pytest.ini``, ``tox.ini``, ``setup.cfg``,
``pyproject.toml``), the interpreter pin (``.python-version``), and lock, requirements
and constraints files, wherever they are.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

__all__ = [
    "AUTO_LABEL",
    "CODEOWNERS",
    "CODE_OWNERS",
    "LABELER_CONFIG",
    "MAINTAINER_LABEL",
    "PUSH_PATHS_BEGIN",
    "PUSH_PATHS_END",
    "RUNTIME_PATH_GLOBS",
    "TRUSTED_PATHS",
    "WORKFLOW",
    "matches_runtime_path",
    "render_codeowners",
    "render_labeler_config",
    "render_push_paths",
    "sync_path_files",
]

# Set and removed by actions/labeler from the changed paths (information only:
# labels applied with GITHUB_TOKEN start no workflow run).
AUTO_LABEL = "runtime-change"
# Set by a maintainer by hand to ask for the Mac run; no automation ever removes it.
MAINTAINER_LABEL = "needs-mac-m4"
RUNTIME_PATH_GLOBS = (
    "inference_engine/**",
    "kakeya/**",
    "kakeya_evidence/**",
    "proto/**",
    "notebooks/**",
    "tests/integration/**",
    "tests/conftest.py",
    "tests/runtime_fixtures.py",
    "pyproject.toml",
    "scripts/ci_venv.sh",
    "scripts/ci_evidence.sh",
    ".github/workflows/integration.yaml",
    "locks/**",
    "**/conftest.py",
    "**/pytest.ini",
    "**/tox.ini",
    "**/setup.cfg",
    "**/pyproject.toml",
    "**/.python-version",
    "**/*.lock",
    "**/*requirements*.txt",
    "**/*constraints*.txt",
)
# Main's trusted CI code: not runtime paths (they do not change the suite), but a PR that
# edits them changes what publishes the check, so they need a code owner too.
TRUSTED_PATHS = (
    ".github/**",
    "kakeya_evidence/github/**",
    "scripts/ci_*",
    "docs/ops/**",
    "CODEOWNERS",
)
# The maintainers who own the paths above; sync-paths writes CODEOWNERS from this.
CODE_OWNERS = ("@kakeya/maintainers",)
CODEOWNERS = "CODEOWNERS"
LABELER_CONFIG = ".github/labeler.yml"
WORKFLOW = ".github/workflows/integration.yaml"
PUSH_PATHS_BEGIN = "# BEGIN runtime paths (sync-paths writes this block)"
PUSH_PATHS_END = "# END runtime paths"


def matches_runtime_path(path: str, globs: tuple[str, ...] = RUNTIME_PATH_GLOBS) -> bool:
    """Return True when ``path`` (repository-relative, ``/``-separated) is under a glob."""
    name = path.rsplit("/", 1)[-1]
    for glob in globs:
        if glob.endswith("/**") and path.startswith(glob[:-2]):
            return True
        if glob.startswith("**/") and fnmatch.fnmatchcase(name, glob[3:]):
            return True
        if path == glob:
            return True
    return False


def render_codeowners(
    globs: tuple[str, ...] = RUNTIME_PATH_GLOBS, owners: tuple[str, ...] = CODE_OWNERS
) -> str:
    """Return ``CODEOWNERS``: every runtime and trusted path owned by :data:`CODE_OWNERS`."""
    lines = [
        "# Written by `python3 scripts/ci_github.py sync-paths` from",
        "# kakeya_evidence/github/paths.py (RUNTIME_PATH_GLOBS, TRUSTED_PATHS, CODE_OWNERS);",
        "# edit the lists there. Every path that changes the Mac suite or what publishes",
        "# its check needs a code owner's review (branch protection: require code owners).",
        *(f"{_codeowners_pattern(glob)} {' '.join(owners)}" for glob in (*globs, *TRUSTED_PATHS)),
    ]
    return "\n".join(lines) + "\n"


def _codeowners_pattern(glob: str) -> str:
    """Our glob in CODEOWNERS syntax: ``/dir/`` below dir, ``name`` anywhere, ``/file``."""
    if glob.endswith("/**"):
        return "/" + glob[:-2]
    if glob.startswith("**/"):
        return glob[3:]
    return "/" + glob


def render_labeler_config(globs: tuple[str, ...] = RUNTIME_PATH_GLOBS) -> str:
    """Return ``.github/labeler.yml``: :data:`AUTO_LABEL` for any runtime path.

    The maintainer's label is deliberately absent: ``sync-labels`` only removes
    labels that the configuration names, so it never touches that one.
    """
    lines = [
        "# actions/labeler configuration for .github/workflows/auto-label-mac.yaml.",
        "# Written by `python3 scripts/ci_github.py sync-paths` from",
        "# kakeya_evidence/github/paths.py RUNTIME_PATH_GLOBS; edit the list there.",
        f"# Only {AUTO_LABEL} is named here, so sync-labels never removes the",
        f"# maintainer's {MAINTAINER_LABEL}.",
        f"{AUTO_LABEL}:",
        "  - changed-files:",
        "      - any-glob-to-any-file:",
        *(f"          - {_quote(glob)}" for glob in globs),
    ]
    return "\n".join(lines) + "\n"


def render_push_paths(workflow_text: str, globs: tuple[str, ...] = RUNTIME_PATH_GLOBS) -> str:
    """Return the workflow text with the lines between the push-path markers replaced.

    Raises:
        ValueError: The markers are missing, repeated or out of order.
    """
    lines = workflow_text.splitlines(keepends=True)
    begin = [i for i, line in enumerate(lines) if line.strip() == PUSH_PATHS_BEGIN]
    end = [i for i, line in enumerate(lines) if line.strip() == PUSH_PATHS_END]
    if len(begin) != 1 or len(end) != 1 or end[0] < begin[0]:
        raise ValueError(f"{WORKFLOW} needs one {PUSH_PATHS_BEGIN!r} ... {PUSH_PATHS_END!r} block")
    indent = lines[begin[0]][: len(lines[begin[0]]) - len(lines[begin[0]].lstrip())]
    block = [f"{indent}- {_quote(glob)}\n" for glob in globs]
    return "".join(lines[: begin[0] + 1] + block + lines[end[0] :])


def sync_path_files(root: Path, check: bool) -> list[str]:
    """Bring the labeler config and the push filter in line with the list.

    Args:
        root: The repository root.
        check: Only report; write nothing.

    Returns:
        The repository-relative files that differed (and were rewritten unless ``check``).

    Raises:
        OSError: A file cannot be read or written.
        ValueError: The workflow lacks its marker block.
    """
    wanted = {
        LABELER_CONFIG: render_labeler_config(),
        WORKFLOW: render_push_paths((root / WORKFLOW).read_text(encoding="utf-8")),
        CODEOWNERS: render_codeowners(),
    }
    changed = []
    for name, text in wanted.items():
        path = root / name
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            changed.append(name)
            if not check:
                path.write_text(text, encoding="utf-8")
    return changed


def _quote(glob: str) -> str:
    # A leading "." or "*" and the "**" suffix are fine unquoted in YAML, but quoting
    # every entry keeps the files uniform and safe for any future glob.
    return '"' + glob.replace("\\", "\\\\").replace('"', '\\"') + '"'
