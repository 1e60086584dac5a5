"""Device and dtype choice: `auto` picks mps, then cuda, then cpu.

dtype `auto` picks bfloat16 on mps and cuda, and on cpu only where the processor
computes bfloat16 natively (AVX512-BF16 or AMX on x86, Apple Silicon); elsewhere
bfloat16 is emulated and slower than float32, so float32 wins.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

import torch

from inference_engine.device_names import check_device_name, check_dtype_name
from inference_engine.errors import InvalidArgument

# x86 flags (AVX512-BF16, AMX) and the aarch64 feature name for native bf16 arithmetic.
_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
_CPUINFO = Path("/proc/cpuinfo")


def resolve_device(name: str) -> torch.device:
    """Turn a device name into an available `torch.device`.

    Args:
        name: `auto`, `cpu`, `cuda`, `cuda:N` or `mps` (case-insensitive).

    Returns:
        The device; `auto` prefers mps, then cuda, then cpu.

    Raises:
        InvalidArgument: `device` is unknown or not available on this machine.
    """
    kind, index = check_device_name(name)
    if kind == "auto":
        return _auto_device()
    if kind == "cuda":
        return _cuda_device(index)
    if kind == "mps" and not torch.backends.mps.is_available():
        raise InvalidArgument("device", "mps requested but torch.backends.mps is not available")
    return torch.device(kind)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """Turn a dtype name into a `torch.dtype` for `device`.

    Args:
        name: `auto`, `float32`/`fp32`, `bfloat16`/`bf16` or `float16`/`fp16`.
        device: the device the model will run on (decides `auto`).

    Returns:
        The dtype; `auto` is bfloat16 on mps and cuda, and on cpu when
        `cpu_computes_bf16()`, else float32.

    Raises:
        InvalidArgument: `dtype` is unknown.
    """
    key = check_dtype_name(name)
    if key == "auto":
        return _auto_dtype(device)
    dtype: torch.dtype = getattr(torch, key)
    return dtype


@functools.cache
def cpu_computes_bf16() -> bool:
    """Whether this processor does bfloat16 arithmetic natively.

    Linux: `/proc/cpuinfo` lists avx512_bf16 or amx_bf16 (x86) or bf16 (aarch64).
    macOS on arm64 (Apple Silicon): True. Anything else: False.
    """
    system, machine = platform.system(), platform.machine().lower()
    if system == "Darwin":
        return machine == "arm64"
    if system == "Linux":
        try:
            return cpuinfo_has_bf16(_CPUINFO.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            return False
    return False


def cpuinfo_has_bf16(cpuinfo: str) -> bool:
    """Whether a `/proc/cpuinfo` text lists a native-bf16 flag on any `flags`/`Features` line."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        is_flags = sep and key.strip().lower() in ("flags", "features")
        if is_flags and _BF16_CPU_FLAGS.intersection(value.split()):
            return True
    return False


def dtype_name(dtype: torch.dtype) -> str:
    """The short name of a dtype: `bfloat16`, `float32`, `float16`."""
    return str(dtype).removeprefix("torch.")


def _auto_device() -> torch.device:
    if torch.backends.mps.is_available():
        return torch.device("mps")
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def _cuda_device(index: int | None) -> torch.device:
    if not torch.cuda.is_available():
        raise InvalidArgument("device", "cuda requested but torch.cuda.is_available() is False")
    if index is None:
        return torch.device("cuda")
    count = torch.cuda.device_count()
    if index >= count:
        raise InvalidArgument("device", f"cuda:{index} requested but only {count} device(s) exist")
    return torch.device("cuda", index)


def _auto_dtype(device: torch.device) -> torch.dtype:
    if device.type in ("cuda", "mps"):
        return torch.bfloat16
    return torch.bfloat16 if cpu_computes_bf16() else torch.float32
