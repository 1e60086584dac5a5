"""Compare an evidence run against a baseline evidence.json: test status changes and perf deltas.

Perf deltas flag a regression only when the change is worse than the measured
noise: the sum of both runs' spreads (``<group>_spread`` in bench.json). Without
a measured spread the noise floor is ``DEFAULT_NOISE_FRACTION`` of the baseline.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_NOISE_FRACTION", "compare", "compare_perf", "compare_tests", "perf_metrics"]

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
        Node id lists: new_failures, fixed, still_failing, added, removed, flaky.
    """
    now = {t["nodeid"]: t.get("outcome", "") for t in current}
    before = {t["nodeid"]: t.get("outcome", "") for t in baseline}
    both = [n for n in now if n in before]
    return {
        "new_failures": [n for n in both if now[n] in _FAILING and before[n] not in _FAILING],
        "fixed": [n for n in both if now[n] not in _FAILING and before[n] in _FAILING],
        "still_failing": [n for n in both if now[n] in _FAILING and before[n] in _FAILING],
        "added": [n for n in now if n not in before],
        "removed": [n for n in before if n not in now],
        "flaky": [n for n in now if now[n] == "flaky"],
    }


def perf_metrics(perf: dict[str, Any]) -> dict[str, tuple[float, float | None, int]]:
    """Flatten a bench.json into {metric: (value, spread or None, direction)}.

    Args:
        perf: bench.json contents.

    Returns:
        Metrics such as ``decode_tok_s.runtime`` and ``long_session.ratio_last_first.incremental``.
    """
    metrics: dict[str, tuple[float, float | None, int]] = {}
    for group, direction in _PERF_GROUPS:
        spreads = perf.get(f"{group}_spread") or {}
        for key, value in (perf.get(group) or {}).items():
            if isinstance(value, int | float):
                spread = spreads.get(key)
                metrics[f"{group}.{key}"] = (float(value), _number(spread), direction)
    ratios = (perf.get("long_session") or {}).get("ratio_last_first") or {}
    for key, value in ratios.items():
        if isinstance(value, int | float):
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
    perf_now, perf_before = evidence.get("perf"), baseline.get("perf")
    return {
        "verdict": baseline.get("verdict"),
        "commit": (baseline.get("provenance") or {}).get("commit"),
        "tests": compare_tests(evidence.get("tests") or [], baseline.get("tests") or []),
        "perf": compare_perf(perf_now, perf_before) if perf_now and perf_before else [],
    }


def _noise(base: float, spread: float | None, base_spread: float | None) -> float:
    if spread is None and base_spread is None:
        return abs(base) * DEFAULT_NOISE_FRACTION
    return (spread or 0.0) + (base_spread or 0.0)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None
