"""Write JUnit XML from the record's rows, for runs where pytest never wrote its own.

After a crash or a stage timeout pytest's ``--junitxml`` file is missing; tools that read
JUnit still get every test that ran, the one that was running (an error) and those that
never ran (skipped, type ``not_run``). Names follow pytest's own scheme (dotted classname).
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from kakeya_evidence.common.schema import TestRow

__all__ = ["junit_names", "write_junit"]

_NOT_XML = re.compile("[\ufffe\uffff]")  # valid UTF-8, yet not allowed in XML 1.0


def junit_names(nodeid: str) -> tuple[str, str]:
    """(classname, name) as pytest's junitxml writes them for a node id."""
    path, bracket, params = nodeid.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    return ".".join(names[:-1]), names[-1]


def write_junit(results: list[TestRow], path: Path) -> Path:
    """Write results as one JUnit test suite, atomically.

    Args:
        results: The rows (texts already safe).
        path: The file to write.

    Returns:
        The path written.
    """
    kinds = Counter(_kind(r.outcome) for r in results)
    root = ET.Element("testsuites")
    suite = ET.SubElement(
        root,
        "testsuite",
        name="pytest",
        tests=str(len(results)),
        failures=str(kinds["failure"]),
        errors=str(kinds["error"]),
        skipped=str(kinds["skipped"]),
        time=f"{sum(r.duration_s for r in results):.3f}",
    )
    for result in results:
        _add_case(suite, result)
    tmp = path.with_name(path.name + ".tmp")
    ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)
    os.replace(tmp, path)
    return path


def _add_case(suite: ET.Element, result: TestRow) -> None:
    classname, name = junit_names(result.nodeid)
    case = ET.SubElement(
        suite,
        "testcase",
        classname=_xml(classname),
        name=_xml(name),
        time=f"{result.duration_s:.3f}",
    )
    kind = _kind(result.outcome)
    if kind:
        child = ET.SubElement(case, kind, message=_xml(result.message))
        if result.outcome in ("xfailed", "not_run"):
            child.set("type", "pytest.xfail" if result.outcome == "xfailed" else "not_run")
        child.text = _xml(result.traceback) or None
    for tag, text in (("system-out", result.stdout), ("system-err", result.stderr)):
        if text:
            ET.SubElement(case, tag).text = _xml(text)


def _kind(outcome: str) -> str:
    return {
        "failed": "failure",
        "error": "error",
        "skipped": "skipped",
        "xfailed": "skipped",
        "not_run": "skipped",
    }.get(outcome, "")


def _xml(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)
