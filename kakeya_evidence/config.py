"""One evidence run's configuration, composed of each stage's own frozen config.

``RunConfig`` holds what the run itself needs (output directory, notebooks, progress) and
one piece per stage: ``host`` (HostRequirements), ``cache`` (CacheConfig), ``suite``
(SuiteConfig) and ``report`` (ReportConfig with its GateConfig). Each piece owns its
defaults, help texts and validation; the ``kakeya-evidence`` flags are generated from
their fields (``inference_engine.cli_args``), and the runner hands each notebook its piece
as a dict, which the notebook's parameters cell holds the defaults of.

A flag name two pieces share is one option: ``--model`` sets the cache's and the suite's
model. The suite's ``stage_timeout_s`` bounds every stage's notebook.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any

from inference_engine.cli_args import config_fields, config_from_args, flag_dest
from kakeya_evidence.common.params import DEFAULT_OUTPUT_DIR
from kakeya_evidence.errors import ParameterError
from kakeya_evidence.report.writer import ReportConfig
from kakeya_evidence.stages.cache import CacheConfig
from kakeya_evidence.stages.host import HostRequirements
from kakeya_evidence.stages.suite import SuiteConfig

__all__ = [
    "LOCATION_FIELDS",
    "NOTEBOOK_PIECES",
    "RunConfig",
    "flat_parameters",
    "notebook_piece",
    "run_config",
]

# Each notebook's piece of the run: the parameters cell holds this dict's defaults.
NOTEBOOK_PIECES = {
    "host_check": "host",
    "cache_prewarm": "cache",
    "integration_suite": "suite",
    "results_report": "report",
}
# Fields a notebook takes on its own, relative to its folder (not part of the piece's dict).
LOCATION_FIELDS = {"suite": ("tests", "cwd", "output_dir")}


@dataclass(frozen=True)
class RunConfig:
    """Parameters of one evidence run (built once at the CLI edge).

    Raises:
        ParameterError: (from each piece) a parameter is out of its bounds, naming it.
    """

    output: str = field(default=DEFAULT_OUTPUT_DIR, metadata={"help": "evidence directory"})
    notebooks_dir: str = field(
        default="", metadata={"help": "run the notebooks of this folder (default: notebooks/)"}
    )
    quiet: bool = field(default=False, metadata={"help": "no progress lines"})
    host: HostRequirements = field(default_factory=HostRequirements)
    cache: CacheConfig = field(default_factory=CacheConfig)
    suite: SuiteConfig = field(default_factory=SuiteConfig)
    report: ReportConfig = field(default_factory=ReportConfig)


def run_config(values: Mapping[str, Any]) -> RunConfig:
    """Build a RunConfig from flat values named as the flags (``test_timeout_s``, ``model``).

    Raises:
        ParameterError: A name is not a flag of ``kakeya-evidence run``, or a value is out
            of its bounds.
    """
    known = {flag_dest(f) for f, _ in config_fields(RunConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ParameterError(f"unknown parameter(s): {', '.join(unknown)}")
    return config_from_args(RunConfig, argparse.Namespace(**values))


def flat_parameters(config: RunConfig) -> dict[str, Any]:
    """The run's parameters by flag name, as evidence.json records them."""
    flat: dict[str, Any] = {}
    _flatten(config, flat)
    flat["pytest_args"] = shlex.join(config.suite.pytest_args)  # one string, as typed
    return flat


def notebook_piece(config: RunConfig, stage: str) -> dict[str, Any]:
    """A stage's piece as its notebook takes it: JSON values, location fields left out."""
    name = NOTEBOOK_PIECES[stage]
    skip = LOCATION_FIELDS.get(name, ())
    piece = asdict(getattr(config, name))
    return {key: _json_value(value) for key, value in piece.items() if key not in skip}


def _flatten(config: Any, flat: dict[str, Any]) -> None:
    for item in fields(config):
        value = getattr(config, item.name)
        if is_dataclass(value):
            _flatten(value, flat)
        elif item.metadata.get("cli", True):
            flat.setdefault(flag_dest(item), _json_value(value))


def _json_value(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value
