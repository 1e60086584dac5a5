"""Compare an evidence run against a baseline evidence.json: test status changes and perf deltas.

Perf deltas flag a regression only when the change is worse than the measured
noise: the sum of both runs' spreads (``<group>_spread`` in bench.json). Without
a measured spread the noise floor is ``DEFAULT_NOISE_FRACTION`` of the baseline.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DEFAULT_NOISE_FRACTION",
    "compare",
    "compare_perf",
    "compare_tests",
    "metric_direction",
    "perf_metrics",
]

DEFAULT_NOISE_FRACTION = 0.10
_FAILING = frozenset({"failed", "error"})
# (group, direction): +1 when higher is better, -1 when lower is better.
_PERF_GROUPS = (("decode_tok_s", 1), ("ttft_s", -1))


def compare_tests(
    current: list[dict[str, Any]], baseline: list[dict[str, Any]]
) -> dict[str, list[str]]:
    """Classify each test's status change against the baseline.

    Args:
        current: This run's tests (dicts with nodeid and outcome).
        baseline: The baseline run's tests.

    Returns:
        Node id lists: new_failures, fixed, still_failing, added, removed, flaky, and
        new_tests_failing (tests absent from the baseline that fail: new failures too,
        as a reviewer counts them).
    """
    now, before = _outcomes(current), _outcomes(baseline)
    both = [n for n in now if n in before]
    new_failing = [n for n in now if n not in before and now[n] in _FAILING]
    broken = [n for n in both if now[n] in _FAILING and before[n] not in _FAILING]
    return {
        "new_failures": broken + new_failing,
        "new_tests_failing": new_failing,
        "fixed": [n for n in both if now[n] not in _FAILING and before[n] in _FAILING],
        "still_failing": [n for n in both if now[n] in _FAILING and before[n] in _FAILING],
        "added": [n for n in now if n not in before],
        "removed": [n for n in before if n not in now],
        "flaky": [n for n in now if now[n] == "flaky"],
    }


def metric_direction(metric: str) -> int:
    """+1 when a higher value of the metric is better, -1 when lower is better."""
    group = metric.split(".", 1)[0]
    return next((direction for name, direction in _PERF_GROUPS if name == group), -1)


def perf_metrics(perf: dict[str, Any]) -> dict[str, tuple[float, float | None, int]]:
    """Flatten a bench.json into {metric: (value, spread or None, direction)}.

    Malformed parts (a group that is not a mapping, a value that is not a number) are
    left out: baselines and history files come from elsewhere.

    Args:
        perf: bench.json contents.

    Returns:
        Metrics such as ``decode_tok_s.runtime`` and ``long_session.ratio_last_first.incremental``.
    """
    metrics: dict[str, tuple[float, float | None, int]] = {}
    for group, direction in _PERF_GROUPS:
        spreads = _mapping(perf.get(f"{group}_spread"))
        for key, value in _mapping(perf.get(group)).items():
            if _is_number(value):
                metrics[f"{group}.{key}"] = (float(value), _number(spreads.get(key)), direction)
    ratios = _mapping(_mapping(perf.get("long_session")).get("ratio_last_first"))
    for key, value in ratios.items():
        if _is_number(value):
            metrics[f"long_session.ratio_last_first.{key}"] = (float(value), None, -1)
    return metrics


def compare_perf(current: dict[str, Any], baseline: dict[str, Any]) -> list[dict[str, Any]]:
    """Build the perf delta table.

    Args:
        current: This run's bench.json contents.
        baseline: The baseline's bench.json contents.

    Returns:
        Rows: metric, baseline, current, delta, delta_pct, noise, regression, improvement.
    """
    now, before = perf_metrics(current), perf_metrics(baseline)
    rows = []
    for metric in [m for m in now if m in before]:
        value, spread, direction = now[metric]
        base, base_spread, _ = before[metric]
        noise = _noise(base, spread, base_spread)
        delta = value - base
        rows.append(
            {
                "metric": metric,
                "baseline": base,
                "current": value,
                "delta": delta,
                "delta_pct": (100.0 * delta / base) if base else None,
                "noise": noise,
                "regression": direction * delta < -noise,
                "improvement": direction * delta > noise,
            }
        )
    return rows


def compare(evidence: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """Compare a whole evidence dict with a baseline evidence dict.

    Args:
        evidence: This run's evidence.
        baseline: A baseline evidence.json's contents.

    Returns:
        The ``baseline`` section of evidence.json.
    """
    perf_now, perf_before = _mapping(evidence.get("perf")), _mapping(baseline.get("perf"))
    tests_before = baseline.get("tests")
    return {
        "verdict": baseline.get("verdict"),
        "commit": _mapping(baseline.get("provenance")).get("commit"),
        "tests": compare_tests(
            evidence.get("tests") or [], tests_before if isinstance(tests_before, list) else []
        ),
        "perf": compare_perf(perf_now, perf_before) if perf_now and perf_before else [],
    }


def _outcomes(tests: list[Any]) -> dict[str, str]:
    # A baseline comes from elsewhere: entries without a node id are skipped, not fatal.
    return {
        str(t["nodeid"]): str(t.get("outcome", ""))
        for t in tests
        if isinstance(t, dict) and t.get("nodeid")
    }


def _noise(base: float, spread: float | None, base_spread: float | None) -> float:
    if spread is None and base_spread is None:
        return abs(base) * DEFAULT_NOISE_FRACTION
    return (spread or 0.0) + (base_spread or 0.0)


def _number(value: Any) -> float | None:
    return float(value) if _is_number(value) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
