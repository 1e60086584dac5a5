"""The pipeline's defaults, defined once, and the checks every config dataclass shares.

The model id is the runtime's (``inference_engine.config``): the pipeline may import the
runtime, never the reverse. The device and dtype names are checked by the runtime's own
validator, so a name one accepts the other accepts too.
"""

from __future__ import annotations

import math
from typing import Any

from inference_engine.config import DEFAULT_MODEL_ID
from inference_engine.device_names import check_device_name, check_dtype_name
from inference_engine.errors import InvalidArgument
from kakeya_evidence.errors import ParameterError

__all__ = [
    "DEFAULT_MODEL_ID",
    "DEFAULT_OUTPUT_DIR",
    "DEFAULT_TESTS",
    "STAGE_TIMEOUT_S",
    "TEST_TIMEOUT_S",
    "check_device",
    "check_dtype",
    "check_number",
]

DEFAULT_OUTPUT_DIR = "evidence"
DEFAULT_TESTS = "tests/integration"
STAGE_TIMEOUT_S = 3600.0  # each stage (notebook), and each subprocess of the cache stage
TEST_TIMEOUT_S = 300.0  # each test (pytest-timeout)


def check_number(name: str, value: Any, *, minimum: float = 0.0, inclusive: bool = False) -> None:
    """Check that value is a finite number above minimum (or at it, when inclusive).

    Raises:
        ParameterError: It is not, naming the field and the bound.
    """
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and math.isfinite(value) and (value >= minimum if inclusive else value > minimum):
        return
    bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
    unit = " seconds" if name.endswith("_s") else ""
    raise ParameterError(f"{name} must be a number {bound}{unit}, got {value!r}")


def check_device(value: str) -> None:
    """Check a device name as the runtime would (auto, cpu, cuda, cuda:N, mps).

    Raises:
        ParameterError: The runtime would refuse it.
    """
    try:
        check_device_name(value)
    except InvalidArgument as exc:
        raise ParameterError(str(exc)) from exc


def check_dtype(value: str) -> None:
    """Check a dtype name as the runtime would.

    Raises:
        ParameterError: The runtime would refuse it.
    """
    try:
        check_dtype_name(value)
    except InvalidArgument as exc:
        raise ParameterError(str(exc)) from exc
