"""The executed notebooks as HTML fragments for the report's appendix (nbconvert).

nbconvert's ``basic`` template renders cells only: no ``<head>``, no require.js or
MathJax from a CDN (the ``lab`` and ``classic`` templates load both), so the report
stays one file that fetches nothing. Output images are ``data:`` URIs already. The
fragments are then cleaned with an allowlist: no scripts, no event handlers, no
links or images that leave the file, and no ``id`` that could collide with the
report's own.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["NotebookHtml", "NotebookPrerender", "render_notebook", "render_notebooks"]

_TAGS = frozenset(
    {"div", "span", "pre", "code", "p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote"}
    | {"table", "thead", "tbody", "tr", "th", "td", "img", "em", "strong", "b", "i", "sub"}
    | {"ul", "ol", "li", "br", "hr", "sup"}
)
_ATTRIBUTES = frozenset({"class", "alt", "title"})


@dataclass(frozen=True)
class NotebookHtml:
    """One executed notebook, rendered (or why not)."""

    name: str
    html: str
    error: str = ""


def render_notebooks(paths: list[Path]) -> list[NotebookHtml]:
    """Render each executed notebook to a cleaned HTML fragment.

    A notebook that cannot be read or rendered gets an error line instead; the
    report never fails for its appendix.

    Args:
        paths: Executed notebooks, in the order the report shows them.

    Returns:
        One entry per path.
    """
    if not paths:
        return []
    exporter = _exporter()
    return [render_notebook(path, exporter) for path in paths]


def render_notebook(path: Path, exporter: Any) -> NotebookHtml:
    """Render one notebook with an nbconvert HTMLExporter (see _exporter)."""
    import bleach
    import nbformat

    try:
        notebook = nbformat.read(path, as_version=4)
        body, _ = exporter.from_notebook_node(notebook)
    except Exception as exc:  # any failure becomes a line in the appendix
        return NotebookHtml(path.name, "", f"{type(exc).__name__}: {exc}"[:500])
    clean = bleach.clean(body, tags=_TAGS, attributes=_allowed, protocols=["data"], strip=True)
    return NotebookHtml(path.name, clean)


class NotebookPrerender:
    """Renders executed notebooks on a background thread while the later stages run.

    nbconvert's import and first render take a second or more; done while the suite
    runs, they cost the run nothing. ``collect`` uses a render only when the file is
    still the one that was rendered (same size and modification time).
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="appendix")
        self._exporter: Any = None
        self._pending: dict[Path, tuple[tuple[int, int] | None, Future[NotebookHtml]]] = {}

    def submit(self, path: Path) -> None:
        """Start rendering path (an executed notebook that will not change again)."""
        if path.is_file():
            self._pending[path] = (_stamp(path), self._executor.submit(self._render, path))

    def collect(self, paths: list[Path]) -> list[NotebookHtml]:
        """The rendered notebooks, in order; any not rendered ahead (or changed since) now."""
        rendered = []
        for path in paths:
            stamp, future = self._pending.get(path, (None, None))
            if future is not None and stamp == _stamp(path):
                rendered.append(future.result())
            else:
                rendered += render_notebooks([path])
        return rendered

    def close(self) -> None:
        """Stop the thread; renders not started are dropped."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _render(self, path: Path) -> NotebookHtml:
        if self._exporter is None:  # built on the worker thread, used only there
            self._exporter = _exporter()
        return render_notebook(path, self._exporter)


def _exporter() -> Any:
    from nbconvert import HTMLExporter

    # nbconvert warns about images without alt text on its own logger; the report adds none
    quiet = logging.getLogger(__name__)
    quiet.setLevel(logging.ERROR)
    return HTMLExporter(template_name="basic", log=quiet)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_size, status.st_mtime_ns


def _allowed(tag: str, name: str, value: str) -> bool:
    if name in _ATTRIBUTES:
        return True
    return tag == "img" and name == "src" and value.startswith("data:image/")
