"""Device and dtype names as users write them, checked without torch.

The one validator of ``--device`` and ``--dtype`` for the runtime (``device.py``, which then
asks torch what is available) and the evidence pipeline (which must not import torch to
check its parameters).
"""

from __future__ import annotations

import re

from inference_engine.errors import InvalidArgument

__all__ = ["DEVICE_KINDS", "DTYPE_NAMES", "check_device_name", "check_dtype_name"]

DEVICE_KINDS = ("cpu", "cuda", "mps")
# each name and the torch dtype it means (device.py maps them)
DTYPE_NAMES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
}
_DEVICE_PATTERN = re.compile(r"(cpu|cuda|mps)(?::(\d+))?")


def check_device_name(name: str) -> tuple[str, int | None]:
    """Parse `auto`, `cpu`, `cuda`, `cuda:N` or `mps` (case-insensitive, spaces ignored).

    Returns:
        The kind (`auto` included) and the index (None when none was given).

    Raises:
        InvalidArgument: The name is none of these, or an index follows cpu or mps.
    """
    key = name.strip().lower()
    if key == "auto":
        return key, None
    match = _DEVICE_PATTERN.fullmatch(key)
    if match is None:
        raise InvalidArgument(
            "device", f"unknown device {name!r}; expected auto, cpu, cuda, cuda:N or mps"
        )
    kind, index = match.group(1), match.group(2)
    if index is not None and kind != "cuda":
        raise InvalidArgument("device", f"{kind} takes no index, got {name!r}")
    return kind, None if index is None else int(index)


def check_dtype_name(name: str) -> str:
    """The canonical dtype name (`auto`, `float32`, `bfloat16`, `float16`) of a user's name.

    Raises:
        InvalidArgument: The name is unknown.
    """
    key = name.strip().lower()
    if key == "auto":
        return key
    if key not in DTYPE_NAMES:
        choices = ", ".join(["auto", *DTYPE_NAMES])
        raise InvalidArgument("dtype", f"unknown dtype {name!r}; expected one of {choices}")
    return DTYPE_NAMES[key]
