"""Find the evidence to reproduce: an evidence.json, a run directory or an artifact zip."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from kakeya_evidence.reproduce.errors import CannotReproduce

__all__ = ["load_evidence"]

_MAX_ZIP_EVIDENCE_BYTES = 64 * 1024 * 1024


def load_evidence(path: Path | str) -> dict[str, Any]:
    """The evidence dict behind PATH (a file, a directory holding one, or a zip).

    Raises:
        CannotReproduce: Nothing readable is there, or it records no commit.
    """
    source = Path(path)
    if source.is_dir():
        found = sorted(source.rglob("evidence.json"), key=lambda p: len(p.parts))
        if not found:
            raise CannotReproduce(f"no evidence.json in {source}")
        text = found[0].read_text(encoding="utf-8")
    elif zipfile.is_zipfile(source):
        text = _from_zip(source)
    elif source.is_file():
        text = source.read_text(encoding="utf-8")
    else:
        raise CannotReproduce(f"{source} is not an evidence.json, a run directory or a zip")
    try:
        evidence = json.loads(text)
    except ValueError as exc:
        raise CannotReproduce(f"{source}: not JSON ({exc})") from exc
    if not isinstance(evidence, dict) or not isinstance(evidence.get("provenance"), dict):
        raise CannotReproduce(f"{source}: not an evidence.json (no provenance)")
    if not evidence["provenance"].get("commit"):
        raise CannotReproduce(f"{source}: the evidence records no commit")
    return evidence


def _from_zip(source: Path) -> str:
    with zipfile.ZipFile(source) as archive:
        names = sorted(
            (n for n in archive.namelist() if Path(n).name == "evidence.json"),
            key=lambda n: n.count("/"),
        )
        if not names:
            raise CannotReproduce(f"no evidence.json in {source}")
        info = archive.getinfo(names[0])
        if info.file_size > _MAX_ZIP_EVIDENCE_BYTES:
            raise CannotReproduce(f"{source}: {names[0]} is {info.file_size} bytes, too large")
        return archive.read(info).decode("utf-8")
