"""Annotations for failing tests: Checks API objects, or ``::error`` workflow commands.

The check run carries one annotation per failing test, whatever their number
(the API takes at most 50 per request; :mod:`~kakeya_evidence.github.checks`
sends them in batches). Workflow commands, used by the Linux gate whose token
cannot write checks, show only 10 errors per step, so :func:`workflow_commands`
prints at most that many and then says how many it left out.

The file comes from the test row's ``path`` (relative to pytest's rootdir, the
repository root in CI) or else from the node id, and the line from ``line``
where pytest knew it. A path that is absolute, leaves the repository or holds
control characters is never sent: GitHub would reject the whole batch.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "WORKFLOW_COMMAND_LIMIT",
    "Annotation",
    "annotations_for_tests",
    "escape_data",
    "escape_property",
    "safe_path",
    "to_checks_api",
    "workflow_commands",
]

WORKFLOW_COMMAND_LIMIT = 10  # GitHub shows 10 error annotations per step
MAX_MESSAGE_CHARS = 4000
MAX_TITLE_CHARS = 255
MAX_DETAILS_CHARS = 16_000
_LEVELS = {"failed": "failure", "error": "failure", "flaky": "warning"}


@dataclass(frozen=True)
class Annotation:
    """One annotation on a file line."""

    path: str
    line: int
    level: str  # notice | warning | failure (the Checks API's names)
    title: str
    message: str
    details: str = ""


def safe_path(path: Any) -> str | None:
    """Return a repository-relative POSIX path, or None for anything else."""
    if not isinstance(path, str) or not path or any(ch < " " for ch in path):
        return None
    if path.startswith(("/", "\\")) or "\\" in path or ":" in path.split("/", 1)[0]:
        return None
    norm = posixpath.normpath(path)
    if norm in {".", ".."} or norm.startswith("../"):
        return None
    return norm


def annotations_for_tests(evidence: Mapping[str, Any]) -> list[Annotation]:
    """One annotation per failing (failure level) or flaky (warning level) test row."""
    result = []
    for row in evidence.get("tests") or []:
        if not isinstance(row, Mapping) or row.get("outcome") not in _LEVELS:
            continue
        nodeid = str(row.get("nodeid") or "")
        path = safe_path(row.get("path")) or safe_path(nodeid.split("::", 1)[0])
        if path is None:
            continue
        line = row.get("line")
        message = ": ".join(
            filter(None, [str(row.get("exception") or ""), str(row.get("message") or "")])
        )
        result.append(
            Annotation(
                path=path,
                line=line
                if isinstance(line, int) and not isinstance(line, bool) and line > 0
                else 1,
                level=_LEVELS[str(row["outcome"])],
                title=_clip(f"{row['outcome']}: {nodeid}", MAX_TITLE_CHARS),
                message=_clip(message or str(row["outcome"]), MAX_MESSAGE_CHARS),
                details=_clip(str(row.get("traceback") or ""), MAX_DETAILS_CHARS),
            )
        )
    return result


def to_checks_api(annotation: Annotation) -> dict[str, Any]:
    """The Checks API's ``output.annotations[]`` object."""
    data: dict[str, Any] = {
        "path": annotation.path,
        "start_line": annotation.line,
        "end_line": annotation.line,
        "annotation_level": annotation.level,
        "title": annotation.title,
        "message": annotation.message,
    }
    if annotation.details:
        data["raw_details"] = annotation.details
    return data


def escape_data(text: str) -> str:
    """Escape a workflow-command message (``%``, CR, LF) per GitHub's rules."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow-command property value (data rules plus ``:`` and ``,``)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_commands(
    evidence: Mapping[str, Any], max_count: int = WORKFLOW_COMMAND_LIMIT
) -> list[str]:
    """``::error`` lines for stages not ok and failing tests, at most ``max_count``.

    When more problems exist, a last ``::warning`` line says how many were left out.
    """
    items = [_stage_command(s) for s in evidence.get("stages") or [] if _not_ok(s)]
    items += [_test_command(a) for a in annotations_for_tests(evidence) if a.level == "failure"]
    lines = items[:max_count]
    if len(items) > max_count:
        left = len(items) - max_count
        lines.append(
            f"::warning title=kakeya-evidence::{left} more failures not shown here "
            "(GitHub shows 10 per step); see the report"
        )
    return lines


def _not_ok(stage: Any) -> bool:
    return isinstance(stage, Mapping) and stage.get("status") != "ok"


def _stage_command(stage: Mapping[str, Any]) -> str:
    name, status = str(stage.get("name") or "stage"), str(stage.get("status") or "?")
    detail = str(stage.get("reason") or f"stage {name} {status}")
    return f"::error title={escape_property(f'stage {name}: {status}')}::{escape_data(detail)}"


def _test_command(annotation: Annotation) -> str:
    props = [
        f"file={escape_property(annotation.path)}",
        f"line={annotation.line}",
        f"title={escape_property(annotation.title)}",
    ]
    return f"::error {','.join(props)}::{escape_data(annotation.message)}"


def _clip(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"
