"""Which extras of the `kakeya` distribution are installed, for the commands that need one.

`pip install kakeya` installs the SDK alone; `kakeya-runtime` needs `kakeya[runtime]` and
`kakeya-evidence` needs `kakeya[evidence]`. Each command checks its extra first, against
the installed distribution's own metadata (pyproject.toml stays the one list), and exits 2
naming the extra to install, instead of failing on an ImportError deep inside. Standard
library only: it runs before anything of the runtime is imported.
"""

from __future__ import annotations

import re
from importlib import metadata

DISTRIBUTION = "kakeya"
_REQUIREMENT = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")
_EXTRA_MARKER = re.compile(r"""\bextra\s*==\s*["']([^"']+)["']""")


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def missing_requirements(extra: str, distribution: str = DISTRIBUTION) -> list[str]:
    """The distributions `distribution[extra]` needs that are not installed, sorted.

    Extras of the distribution itself (`kakeya[runtime]` inside `kakeya[evidence]`) are
    followed. Names only: platform markers are not evaluated (a requirement pinned per
    platform, as torch, is one name). Empty when `distribution` is not installed at all
    (a source tree on `sys.path`): there is no metadata to check against.
    """
    try:
        requirements = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:
        return []
    missing: set[str] = set()
    for requirement in requirements:
        marker = _EXTRA_MARKER.search(requirement)
        parsed = _REQUIREMENT.match(requirement)
        if marker is None or marker.group(1) != extra or parsed is None:
            continue
        name, nested = parsed.group(1), parsed.group(2) or ""
        if _normalized(name) == _normalized(distribution):
            for inner in filter(None, (part.strip() for part in nested.split(","))):
                if inner != extra:
                    missing.update(missing_requirements(inner, distribution))
        elif not _installed(name):
            missing.add(name)
    return sorted(missing)


def missing_extra_message(command: str, extra: str) -> str | None:
    """What `command` prints when `kakeya[extra]` is not installed; None when it is."""
    missing = missing_requirements(extra)
    if not missing:
        return None
    return (
        f"{command}: this needs the kakeya[{extra}] extra, which is not installed "
        f"(missing: {', '.join(missing)}); install kakeya[{extra}]: "
        f"pip install 'kakeya[{extra}]'"
    )
