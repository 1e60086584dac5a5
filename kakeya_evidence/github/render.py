"""Markdown for the PR comment, the check run and the job summary, built from evidence.json.

Every string that came from a test (node ids, messages, stage reasons, gate
details) goes into a code span: GitHub renders no HTML, links or @mentions there.
Table cells also escape ``|``. Lists are clipped with a note naming how many
more the report holds, and :func:`fit` keeps a whole text under a size limit
counted in UTF-16 code units, the unit that a 65,536-character limit counts in
the browser, which is never fewer than Python's code points.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FAILING_OUTCOMES",
    "MARKER",
    "Links",
    "Verdict",
    "code",
    "decide_verdict",
    "fit",
    "link",
    "plain_url",
    "render_cancelled",
    "render_evidence",
    "render_no_evidence",
    "render_not_run",
    "render_pending",
    "suite_changes",
    "utf8_len",
    "utf16_len",
]

MARKER = "<!-- kakeya-evidence -->"
FAILING_OUTCOMES = ("failed", "error")
CHANGE_KINDS = (
    ("new_failures", "New failures"),
    ("fixed", "Fixed"),
    ("still_failing", "Still failing"),
    ("flaky", "Flaky"),
    ("added", "Added"),
    ("removed", "Removed"),
)
COUNT_ORDER = ("failed", "error", "passed", "flaky", "skipped", "xfailed", "xpassed", "not_run")
FIT_NOTE = "\n\n_Cut to fit GitHub's size limit; the report has everything._\n"
_URL_RE = re.compile(r"^https?://[^\s()<>\[\]`]+$")
_MAX_CELL_CHARS = 200


@dataclass(frozen=True)
class Links:
    """Where the text points: the tested commit, the workflow run and the report."""

    sha: str
    run_url: str | None = None
    report_url: str | None = None

    @property
    def short_sha(self) -> str:
        """The 7-character short form GitHub shows."""
        return self.sha[:7]


@dataclass(frozen=True)
class Verdict:
    """The check run's conclusion and one-line title for one evidence file."""

    conclusion: str
    title: str


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units (an emoji counts 2, as in a browser)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def fit(
    text: str, max_units: int, note: str = FIT_NOTE, measure: Callable[[str], int] = utf16_len
) -> str:
    """Cut ``text`` on a line boundary so that it, plus ``note``, stays within ``max_units``.

    Args:
        text: The Markdown.
        max_units: The limit, in the units ``measure`` counts (UTF-16 units by default;
            pass ``utf8_len`` for a limit in bytes).
        note: Appended when something was cut.
        measure: How to count.

    Raises:
        ValueError: ``max_units`` cannot even hold the note.
    """
    if measure(text) <= max_units:
        return text
    budget = max_units - measure(note)
    if budget <= 0:
        raise ValueError(f"max_units must exceed the note's {measure(note)} units")
    kept, used = [], 0
    for line in text.splitlines(keepends=True):
        size = measure(line)
        if used + size > budget:
            break
        kept.append(line)
        used += size
    return "".join(kept) + note


def utf8_len(text: str) -> int:
    """Length in UTF-8 bytes."""
    return len(text.encode("utf-8", "surrogatepass"))


def code(value: Any, max_chars: int = _MAX_CELL_CHARS, table: bool = False) -> str:
    """Wrap untrusted text in an inline code span that nothing inside can close."""
    text = " ".join(str(value).split())
    if len(text) > max_chars:
        text = text[: max_chars - 1] + "…"
    if table:
        text = text.replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def plain_url(url: str | None) -> str | None:
    """``url`` when it is a plain http(s) URL (no spaces, brackets or quotes), else None."""
    return url if url and _URL_RE.match(url) else None


def link(label: str, url: str | None) -> str:
    """A Markdown link, or the bare label when the URL is absent or not a plain http(s) URL."""
    return f"[{label}]({url})" if plain_url(url) else label


def decide_verdict(evidence: Mapping[str, Any], partial: str = "") -> Verdict:
    """Map evidence to a check conclusion: success only for exit code 0 of a whole run.

    Args:
        evidence: evidence.json.
        partial: Why the run covers only part of the suite (pytest arguments, a shard);
            a passing partial run concludes ``neutral``, never ``success``.
    """
    exit_code = evidence.get("exit_code")
    counts = _counts(evidence)
    failed_gates = [g for g in _gates(evidence) if not g.get("passed")]
    changes = "".join(f", {note}" for note in suite_changes(evidence))
    if exit_code == 0:
        extra = f", {counts['flaky']} flaky" if counts.get("flaky") else ""
        passed = f"{counts.get('passed', 0)} passed{extra}{changes}"
        if partial:
            return Verdict("neutral", f"partial run ({_plain(partial, 80)}): {passed}")
        return Verdict("success", f"passed: {passed}")
    if exit_code == 1:
        parts = [f"{counts.get(k, 0)} {k}" for k in FAILING_OUTCOMES if counts.get(k)]
        if failed_gates:
            parts.append(f"{len(failed_gates)} gate(s) not met")
        prefix = f"partial run ({_plain(partial, 80)}) " if partial else ""
        return Verdict(
            "failure", prefix + "failed: " + (", ".join(parts) or "see the report") + changes
        )
    bad = next((s for s in _stages(evidence) if s.get("status") != "ok"), None)
    where = f"stage {bad.get('name')} {bad.get('status')}" if bad else f"exit code {exit_code!r}"
    return Verdict("failure", f"error: {_plain(where, 120)}")


def suite_changes(evidence: Mapping[str, Any]) -> list[str]:
    """ "57 tests removed", "2 tests added": the suite's change against main's baseline."""
    base = evidence.get("baseline")
    tests = _mapping(base.get("tests")) if isinstance(base, Mapping) else {}
    notes = []
    for key in ("removed", "added"):
        count = len(tests.get(key) or [])
        if count:
            notes.append(f"{count} test{'s' if count != 1 else ''} {key}")
    return notes


def render_evidence(
    evidence: Mapping[str, Any],
    links: Links,
    max_items: int = 20,
    heading: str = "##",
    verdict: Verdict | None = None,
) -> str:
    """The Markdown for one evidence file: verdict, counts, baseline, perf, failures."""
    verdict = verdict or decide_verdict(evidence)
    word = {"success": "PASSED", "neutral": "PARTIAL RUN"}.get(
        verdict.conclusion, verdict.title.split(":", 1)[0].upper()
    )
    if verdict.title.startswith("partial run") and verdict.conclusion == "failure":
        word = "PARTIAL RUN, FAILED"
    changes = suite_changes(evidence)
    lines = [
        f"{heading} Mac M4 evidence for `{links.short_sha}`: {word}",
        "",
        _counts_line(evidence) + "".join(f" · **{note}**" for note in changes),
        "",
        *([f"Check: {code(verdict.title, 300)}", ""] if verdict.conclusion != "success" else []),
        " · ".join(
            [link("**Open the report**", links.report_url), link("workflow run", links.run_url)]
        )
        + f" · commit `{links.sha}`",
        "",
        *_problems(evidence),
        *_flaky(evidence, max_items),
        *_baseline(evidence, max_items, heading),
        *_perf(evidence, heading),
        *_failures(evidence, max_items, heading),
        _footer(evidence),
    ]
    return "\n".join(lines) + "\n"


def render_no_evidence(links: Links, why: str, heading: str = "##") -> str:
    """The Markdown when the run produced no evidence for this commit."""
    return (
        f"{heading} Mac M4 evidence for `{links.short_sha}`: NO EVIDENCE\n\n"
        f"The run produced no evidence for commit `{links.sha}`: {code(why, 300)}.\n\n"
        f"{link('workflow run', links.run_url)} (its log shows what happened). "
        "Earlier results in this thread are about other commits.\n"
    )


def render_pending(links: Links, heading: str = "##") -> str:
    """The Markdown while the Mac run for this commit has not published yet."""
    return (
        f"{heading} Mac M4 evidence pending for `{links.short_sha}`\n\n"
        f"The Mac M4 run for commit `{links.sha}` has started; this comment is rewritten "
        f"when it publishes. Earlier verdicts in this thread were about other commits.\n\n"
        f"{link('workflow run', links.run_url)}\n"
    )


def render_cancelled(links: Links, why: str, heading: str = "##") -> str:
    """The Markdown when the run was cancelled (a newer push superseded it) before evidence."""
    return (
        f"{heading} Mac M4 evidence for `{links.short_sha}`: CANCELLED\n\n"
        f"The run for commit `{links.sha}` was cancelled before it produced evidence: "
        f"{code(why, 300)}. A newer run, if any, publishes its own result.\n\n"
        f"{link('workflow run', links.run_url)}\n"
    )


def render_not_run(links: Links, reason: str, heading: str = "##") -> str:
    """The Markdown when the gate decided not to run the Mac job for this commit."""
    return (
        f"{heading} Mac M4 evidence for `{links.short_sha}`: NOT RUN\n\n"
        f"{code(reason, 400)}\n\n{link('workflow run', links.run_url)}\n"
    )


def _counts(evidence: Mapping[str, Any]) -> dict[str, int]:
    counts = evidence.get("counts") or {}
    return {k: int(v) for k, v in counts.items() if isinstance(v, int) and not isinstance(v, bool)}


def _stages(evidence: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in evidence.get("stages") or [] if isinstance(s, Mapping)]


def _gates(evidence: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [g for g in evidence.get("gates") or [] if isinstance(g, Mapping)]


def _tests(evidence: Mapping[str, Any], outcomes: Sequence[str]) -> list[Mapping[str, Any]]:
    rows = [t for t in evidence.get("tests") or [] if isinstance(t, Mapping)]
    return [t for t in rows if t.get("outcome") in outcomes]


def _plain(text: Any, max_chars: int) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= max_chars else flat[: max_chars - 1] + "…"


def _counts_line(evidence: Mapping[str, Any]) -> str:
    counts = _counts(evidence)
    parts = [f"**{counts[k]} {k.replace('_', ' ')}**" for k in COUNT_ORDER if counts.get(k)]
    return " · ".join(parts) or "No tests ran."


def _problems(evidence: Mapping[str, Any]) -> list[str]:
    lines = []
    for stage in _stages(evidence):
        if stage.get("status") != "ok":
            lines.append(
                f"- Stage {code(stage.get('name'), 60)} {code(stage.get('status'), 20)}: "
                f"{code(stage.get('reason') or 'no reason recorded', 300)}"
            )
    for gate in _gates(evidence):
        if not gate.get("passed"):
            lines.append(f"- Gate {code(gate.get('name'), 80)} not met: {code(gate.get('detail'))}")
    return [*lines, ""] if lines else []


def _flaky(evidence: Mapping[str, Any], max_items: int) -> list[str]:
    flaky = [t.get("nodeid") for t in _tests(evidence, ("flaky",))]
    if not flaky:
        return []
    return [f"**Flaky** (failed, then passed on a re-run): {_names(flaky, max_items)}", ""]


def _baseline(evidence: Mapping[str, Any], max_items: int, heading: str) -> list[str]:
    base = evidence.get("baseline")
    if not isinstance(base, Mapping):
        return ["_No baseline from main to compare with._", ""]
    commit = str(base.get("commit") or "")[:7] or "unknown commit"
    lines = [f"{heading}# Against main ({code(commit, 16)})", ""]
    tests = _mapping(base.get("tests"))
    rows = [(label, list(tests.get(key) or [])) for key, label in CHANGE_KINDS]
    if not any(ids for _, ids in rows):
        return [*lines, "No test changed status.", ""]
    lines += ["| change | tests |", "| --- | --- |"]
    lines += [
        f"| {label} ({len(ids)}) | {_names(ids, max_items, True)} |" for label, ids in rows if ids
    ]
    return [*lines, ""]


def _perf(evidence: Mapping[str, Any], heading: str) -> list[str]:
    base = evidence.get("baseline")
    rows = base.get("perf") if isinstance(base, Mapping) else None
    if not rows:
        return []
    worse = [r for r in rows if isinstance(r, Mapping) and r.get("regression")]
    if not worse:
        return [f"No performance regression beyond noise ({len(rows)} metrics compared).", ""]
    lines = [f"{heading}# Performance regressions", ""]
    lines += ["| metric | main | this commit | change |", "| --- | --- | --- | --- |"]
    for row in worse:
        pct = row.get("delta_pct")
        change = f"{pct:+.1f}%" if isinstance(pct, int | float) else _number(row.get("delta"))
        lines.append(
            f"| {code(row.get('metric'), 80, True)} | {_number(row.get('baseline'))} "
            f"| {_number(row.get('current'))} | {change} |"
        )
    return [*lines, ""]


def _failures(evidence: Mapping[str, Any], max_items: int, heading: str) -> list[str]:
    failing = _tests(evidence, FAILING_OUTCOMES)
    if not failing:
        return []
    lines = [f"{heading}# Failing tests ({len(failing)})", ""]
    lines += ["| test | outcome | first error line |", "| --- | --- | --- |"]
    for test in failing[:max_items]:
        message = ": ".join(filter(None, [test.get("exception"), test.get("message")])) or "-"
        lines.append(
            f"| {code(test.get('nodeid'), 160, True)} | {code(test.get('outcome'), 10, True)} "
            f"| {code(message, 200, True)} |"
        )
    if len(failing) > max_items:
        lines.append(f"\n…and {len(failing) - max_items} more in the report.")
    return [*lines, ""]


def _footer(evidence: Mapping[str, Any]) -> str:
    model = _mapping(evidence.get("model"))
    where = f"{code(model.get('id') or '?', 80)} on {code(model.get('device') or '?', 20)}"
    if model.get("dtype"):
        where += f" ({code(model.get('dtype'), 20)})"
    return f"<sub>Model {where}. Generated {code(evidence.get('generated_at') or '?', 40)}.</sub>"


def _names(ids: Sequence[Any], max_items: int, table: bool = False) -> str:
    shown = ", ".join(code(i, 160, table) for i in ids[:max_items])
    more = len(ids) - max_items
    return shown + (f" …and {more} more" if more > 0 else "")


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else "-"


def _mapping(value: Any) -> Mapping[str, Any]:
    """`value` when it is a JSON object, else an empty one (evidence from anywhere)."""
    return value if isinstance(value, Mapping) else {}
