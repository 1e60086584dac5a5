"""The report's figures, each drawn once per content.

A run writes the report twice: notebook 03 writes it, then the runner writes it again with
the appendix and the report stage's own status. The figures show the same data both times,
and drawing them is most of a render's time, so each PNG is kept in the evidence directory
under a hash of what it shows (its inputs and the plotting code) and reused when the hash
matches. The cache is an optimisation only: unreadable, foreign or stale entries are drawn
again, and a cache that cannot be written costs nothing but time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kakeya_evidence.common.schema import TestRow
from kakeya_evidence.report import plots

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["CACHE_FILE", "FigureSpec", "draw_images", "figure_specs"]

CACHE_FILE = Path("stages") / "figures.json"
_PNG_URI = re.compile(r"data:image/png;base64,[A-Za-z0-9+/]*={0,2}")
_CODE = hashlib.sha256(Path(plots.__file__).read_bytes()).hexdigest()
_MATPLOTLIB = metadata.version("matplotlib")


@dataclass(frozen=True)
class FigureSpec:
    """One figure: its name in the report, the plot function and what it is drawn from."""

    name: str
    plot: Callable[..., Figure]
    inputs: tuple[Any, ...]

    def key(self) -> str:
        """A hash of everything the PNG depends on (reprs of dataclasses and dicts are exact)."""
        parts = (self.name, self.plot.__qualname__, _CODE, _MATPLOTLIB, self.inputs)
        return hashlib.sha256(repr(parts).encode("utf-8", "replace")).hexdigest()


def figure_specs(evidence: dict[str, Any], rows: list[TestRow]) -> list[FigureSpec]:
    """Every figure the evidence supports (each only when it has data)."""
    specs = []
    if rows:
        specs.append(FigureSpec("modules", plots.plot_module_outcomes, (rows,)))
        specs.append(FigureSpec("slowest", plots.plot_slowest_tests, (rows,)))
    if plots.timeline_lanes(rows):
        specs.append(FigureSpec("timeline", plots.plot_timeline, (rows,)))
    history = evidence.get("history") or {}
    if len(history.get("runs") or []) > 1:
        specs.append(FigureSpec("trends", plots.plot_trends, (history["runs"],)))
    perf = evidence.get("perf")
    if perf:
        specs.append(FigureSpec("turn_latency", plots.plot_turn_latency, (perf,)))
        specs.append(FigureSpec("kv_bytes", plots.plot_kv_bytes, (perf,)))
        specs.append(FigureSpec("throughput", plots.plot_throughput, (perf,)))
        if perf.get("concurrency"):
            specs.append(FigureSpec("concurrency", plots.plot_concurrency, (perf,)))
    return specs


def draw_images(out: Path, specs: list[FigureSpec]) -> tuple[dict[str, str], dict[str, Figure]]:
    """PNG data URIs for the specs, drawing only those the cache in ``out`` does not hold.

    Returns:
        The data URI of every spec, and the figures drawn in this call.
    """
    cached = _read_cache(out / CACHE_FILE)
    images: dict[str, str] = {}
    drawn: dict[str, Figure] = {}
    keys = {}
    for spec in specs:
        keys[spec.name] = key = spec.key()
        if key in cached:
            images[spec.name] = cached[key]
            continue
        drawn[spec.name] = figure = spec.plot(*spec.inputs)
        images[spec.name] = plots.figure_to_data_uri(figure)
    if drawn:
        _write_cache(out / CACHE_FILE, {keys[name]: uri for name, uri in images.items()})
    return images, drawn


def _read_cache(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    # Only well-formed PNG data URIs: whatever the file holds goes into the page as a src.
    return {
        k: v for k, v in data.items() if isinstance(v, str) and _PNG_URI.fullmatch(v) is not None
    }


def _write_cache(path: Path, entries: dict[str, str]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(entries), encoding="utf-8")
        temporary.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
