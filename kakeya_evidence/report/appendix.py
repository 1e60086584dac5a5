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
from dataclasses import dataclass
from pathlib import Path

__all__ = ["NotebookHtml", "render_notebooks"]

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
    import bleach
    import nbformat
    from nbconvert import HTMLExporter

    # nbconvert warns about images without alt text on its own logger; the report adds none
    quiet = logging.getLogger(__name__)
    quiet.setLevel(logging.ERROR)
    exporter = HTMLExporter(template_name="basic", log=quiet)
    rendered = []
    for path in paths:
        try:
            notebook = nbformat.read(path, as_version=4)
            body, _ = exporter.from_notebook_node(notebook)
        except Exception as exc:  # any failure becomes a line in the appendix
            rendered.append(NotebookHtml(path.name, "", f"{type(exc).__name__}: {exc}"[:500]))
            continue
        clean = bleach.clean(body, tags=_TAGS, attributes=_allowed, protocols=["data"], strip=True)
        rendered.append(NotebookHtml(path.name, clean))
    return rendered


def _allowed(tag: str, name: str, value: str) -> bool:
    if name in _ATTRIBUTES:
        return True
    return tag == "img" and name == "src" and value.startswith("data:image/")
