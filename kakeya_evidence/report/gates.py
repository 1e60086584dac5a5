"""Quality gates: rules over the evidence that decide, with the tests, the verdict.

Each gate gives ``{name, passed, detail}``. A gate that cannot be evaluated (no
baseline, no perf figures) passes and says why in its detail. Defaults: no new
failures against the baseline; no regression of runtime decode tokens/s beyond the
measured noise; a bound on the suite's duration when one is given.

The perf gate trusts the measured noise only up to ``perf_noise_cap_pct`` of the
baseline: a run whose spread is itself huge must not wave a 90 % drop through.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from kakeya_evidence.errors import ParameterError
from kakeya_evidence.report.baseline import metric_direction

__all__ = [
    "DEFAULT_PERF_METRICS",
    "GATE_MAX_SUITE",
    "GATE_NEW_FAILURES",
    "GateConfig",
    "evaluate_gates",
]

GATE_NEW_FAILURES = "no_new_failures"
GATE_MAX_SUITE = "max_suite_s"
DEFAULT_PERF_METRICS = ("decode_tok_s.runtime",)
DEFAULT_NOISE_CAP_PCT = 50.0


def _names(text: str) -> tuple[str, ...]:
    """Comma-separated metric names, as a flag gives them."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


@dataclass(frozen=True)
class GateConfig:
    """Which gates run and their bounds (built once at the CLI or notebook edge).

    Attributes:
        new_failures: Fail when a test fails now but did not in the baseline.
        perf: Fail when a perf metric regressed beyond its noise against the baseline.
        perf_metrics: The metrics the perf gate watches (``group.key`` as in bench.json).
        perf_noise_cap_pct: The most noise (percent of the baseline value) the gate accepts.
        max_suite_s: Fail when the suite stage took longer (None: no bound).

    Raises:
        ParameterError: A bound is not a finite positive number.
    """

    new_failures: bool = field(
        default=True,
        metadata={
            "help": "gate: no test fails that passed in the baseline",
            "flag": "--gate-new-failures",
        },
    )
    perf: bool = field(
        default=True,
        metadata={
            "help": "gate: runtime decode tokens/s does not regress beyond its noise",
            "flag": "--gate-perf",
        },
    )
    perf_metrics: tuple[str, ...] = field(
        default=DEFAULT_PERF_METRICS,
        metadata={
            "help": "gate: the metrics the perf gate watches (group.key,...)",
            "type": _names,
        },
    )
    perf_noise_cap_pct: float = field(
        default=DEFAULT_NOISE_CAP_PCT,
        metadata={"help": "gate: the most noise (%% of the baseline) the perf gate accepts"},
    )
    max_suite_s: float | None = field(
        default=None, metadata={"help": "gate: the suite's longest duration (s)"}
    )

    def __post_init__(self) -> None:
        if isinstance(self.perf_metrics, list):  # from a notebook's (JSON) parameters
            object.__setattr__(self, "perf_metrics", tuple(self.perf_metrics))
        cap = self.perf_noise_cap_pct
        if not (_finite(cap) and 0 < cap <= 100):
            raise ParameterError(f"perf_noise_cap_pct must be in (0, 100], got {cap!r}")
        bound = self.max_suite_s
        if bound is not None and not (_finite(bound) and bound > 0):
            raise ParameterError(f"max_suite_s must be a number > 0 seconds, got {bound!r}")
        if not all(isinstance(m, str) and m for m in self.perf_metrics):
            raise ParameterError(f"perf_metrics must be metric names, got {self.perf_metrics!r}")


def evaluate_gates(evidence: dict[str, Any], config: GateConfig) -> list[dict[str, Any]]:
    """Evaluate every configured gate against the evidence (baseline section included).

    Args:
        evidence: The evidence dict, after the baseline comparison.
        config: The gates to run.

    Returns:
        ``gates`` for evidence.json, in a fixed order.
    """
    gates = []
    if config.new_failures:
        gates.append(_new_failures_gate(evidence.get("baseline")))
    if config.perf:
        gates += [_perf_gate(evidence, metric, config) for metric in config.perf_metrics]
    if config.max_suite_s is not None:
        gates.append(_suite_time_gate(evidence, config.max_suite_s))
    return gates


def _new_failures_gate(baseline: dict[str, Any] | None) -> dict[str, Any]:
    if not baseline:
        return _gate(GATE_NEW_FAILURES, True, "not evaluated: no baseline given")
    new = list((baseline.get("tests") or {}).get("new_failures") or [])
    if not new:
        return _gate(GATE_NEW_FAILURES, True, "no test fails that passed in the baseline")
    shown = ", ".join(new[:3]) + (f" and {len(new) - 3} more" if len(new) > 3 else "")
    return _gate(GATE_NEW_FAILURES, False, f"{len(new)} new failing test(s): {shown}")


def _perf_gate(evidence: dict[str, Any], metric: str, config: GateConfig) -> dict[str, Any]:
    name = f"perf:{metric}"
    rows = (evidence.get("baseline") or {}).get("perf") or []
    row = next((r for r in rows if r.get("metric") == metric), None)
    if row is None:
        why = "no baseline given" if not evidence.get("baseline") else f"{metric} not in both runs"
        return _gate(name, True, f"not evaluated: {why}")
    base, current = float(row["baseline"]), float(row["current"])
    noise = min(float(row.get("noise") or 0.0), abs(base) * config.perf_noise_cap_pct / 100)
    direction = metric_direction(metric)
    worse = direction * (current - base) < -noise
    pct = f"{100 * (current - base) / base:+.1f} %" if base else "n/a"
    detail = f"{current:.4g} against {base:.4g} ({pct}; noise {noise:.3g})"
    return _gate(name, not worse, ("regressed: " if worse else "within noise: ") + detail)


def _suite_time_gate(evidence: dict[str, Any], bound_s: float) -> dict[str, Any]:
    stages: list[dict[str, Any]] = evidence.get("stages") or []
    stage = next((s for s in stages if s["name"] == "integration_suite"), {})
    took = stage.get("duration_s")
    if took is None:
        took = evidence.get("pytest_wall_s")
    if took is None:
        return _gate(GATE_MAX_SUITE, True, "not evaluated: the suite did not run")
    passed = float(took) <= bound_s
    return _gate(GATE_MAX_SUITE, passed, f"suite took {float(took):.1f} s, bound {bound_s:g} s")


def _gate(name: str, passed: bool, detail: str) -> dict[str, Any]:
    return {"name": name, "passed": passed, "detail": detail}


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
