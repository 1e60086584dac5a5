"""Small display helpers for the notebooks (escaped HTML tables, no logic)."""

from __future__ import annotations

import html
from typing import Any

__all__ = [
    "categories_table",
    "facts_table",
    "figure_images",
    "gates_table",
    "stage_table",
    "tests_table",
]


def facts_table(facts: dict[str, Any]) -> Any:
    """A two-column table of key/value facts as an IPython HTML object."""
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in facts.items()
    )
    return _html(f"<table>{rows}</table>")


def tests_table(tests: list[Any], outcomes: tuple[str, ...] = ()) -> Any:
    """A table of test rows (TestRow objects or dicts), optionally filtered by outcome."""
    rows = []
    for test in tests:
        data = test if isinstance(test, dict) else test.to_dict()
        if outcomes and data["outcome"] not in outcomes:
            continue
        cells = (data["nodeid"], data["outcome"], f"{data['duration_s']:.3f}", data["message"])
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    head = "<tr><th>test</th><th>outcome</th><th>duration (s)</th><th>message</th></tr>"
    return _html(f"<table>{head}{''.join(rows)}</table>")


def stage_table(evidence: dict[str, Any]) -> Any:
    """The evidence's verdict, counts and stage table."""
    rows = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(str(s.get(k)))}</td>" for k in ("name", "status", "reason"))
        + "</tr>"
        for s in evidence.get("stages") or []
    )
    counts = html.escape(", ".join(f"{k} {v}" for k, v in (evidence.get("counts") or {}).items()))
    verdict = html.escape(str(evidence.get("verdict", "")).upper())
    return _html(f"<h3>{verdict}</h3><p>{counts}</p><table>{rows}</table>")


def gates_table(evidence: dict[str, Any]) -> Any:
    """The quality gates: name, passed or FAILED, detail."""
    rows = "".join(
        f"<tr><td>{html.escape(str(g.get('name')))}</td>"
        f"<td>{'passed' if g.get('passed') else '<b>FAILED</b>'}</td>"
        f"<td>{html.escape(str(g.get('detail')))}</td></tr>"
        for g in evidence.get("gates") or []
    )
    return _html(f"<table><tr><th>gate</th><th>result</th><th>detail</th></tr>{rows}</table>")


def categories_table(evidence: dict[str, Any], limit: int = 20) -> Any:
    """The largest failure categories: count, signature and up to three member tests."""
    rows = "".join(
        f"<tr><td>{c['count']}</td><td><code>{html.escape(c['signature'])}</code></td>"
        f"<td>{html.escape(', '.join(c['nodeids'][:3]))}</td></tr>"
        for c in (evidence.get("categories") or [])[:limit]
    )
    head = "<tr><th>count</th><th>signature</th><th>tests</th></tr>"
    return _html(f"<table>{head}{rows}</table>" if rows else "<p>No failing tests.</p>")


def figure_images(images: dict[str, str]) -> list[Any]:
    """The report's figures as IPython PNG images, from the PNG data URIs it already rendered.

    A bare Figure has no inline display outside pyplot, and drawing each one again would
    cost the report stage a second of rendering.
    """
    import base64

    from IPython.display import Image

    return [
        Image(data=base64.b64decode(uri.split(",", 1)[1]), format="png") for uri in images.values()
    ]


def _html(text: str) -> Any:
    from IPython.display import HTML

    return HTML(text)
