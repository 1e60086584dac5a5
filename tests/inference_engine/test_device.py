"""Device and dtype resolution."""

from __future__ import annotations

import platform

import pytest
import torch

from inference_engine import device as device_module
from inference_engine.device import (
    cpu_computes_bf16,
    cpuinfo_has_bf16,
    dtype_name,
    resolve_device,
    resolve_dtype,
)
from inference_engine.errors import InvalidArgument

CPU = torch.device("cpu")


def test_cpu_resolves_to_cpu() -> None:
    assert resolve_device("cpu") == CPU
    assert resolve_device(" CPU ") == CPU


def test_auto_prefers_mps_then_cuda_then_cpu() -> None:
    expected = (
        "mps"
        if torch.backends.mps.is_available()
        else "cuda"
        if torch.cuda.is_available()
        else "cpu"
    )
    assert resolve_device("auto").type == expected


@pytest.mark.parametrize("name", ["tpu", "gpu", "cuda:x", "cpu:1", "mps:0", ""])
def test_unknown_device_names_the_field(name: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        resolve_device(name)
    assert info.value.field == "device"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_unavailable_cuda_is_invalid(name: str) -> None:
    with pytest.raises(InvalidArgument, match="cuda"):
        resolve_device(name)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="needs a machine without MPS")
def test_unavailable_mps_is_invalid() -> None:
    with pytest.raises(InvalidArgument, match="mps"):
        resolve_device("mps")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_index_past_the_last_device_is_invalid() -> None:
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(InvalidArgument, match="only"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.parametrize(
    ("name", "dtype"),
    [
        ("float32", torch.float32),
        ("fp32", torch.float32),
        ("bfloat16", torch.bfloat16),
        ("BF16", torch.bfloat16),
        ("float16", torch.float16),
        ("fp16", torch.float16),
    ],
)
def test_named_dtypes(name: str, dtype: torch.dtype) -> None:
    assert resolve_dtype(name, CPU) is dtype


@pytest.mark.parametrize("name", ["int8", "float64", "half-ish", ""])
def test_unknown_dtype_names_the_field(name: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        resolve_dtype(name, CPU)
    assert info.value.field == "dtype"


@pytest.mark.parametrize("kind", ["cuda", "mps"])
def test_auto_dtype_is_bf16_on_accelerators(kind: str) -> None:
    # torch.device objects can be made for devices this machine lacks.
    assert resolve_dtype("auto", torch.device(kind)) is torch.bfloat16


@pytest.mark.parametrize(("native", "dtype"), [(True, torch.bfloat16), (False, torch.float32)])
def test_auto_dtype_on_cpu_follows_the_processor(
    monkeypatch: pytest.MonkeyPatch, native: bool, dtype: torch.dtype
) -> None:
    monkeypatch.setattr(device_module, "cpu_computes_bf16", lambda: native)
    assert resolve_dtype("auto", CPU) is dtype


def test_auto_dtype_on_this_cpu_matches_its_flags() -> None:
    expected = torch.bfloat16 if cpu_computes_bf16() else torch.float32
    assert resolve_dtype("auto", CPU) is expected


def test_cpuinfo_flags_decide_bf16() -> None:
    x86 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f amx_bf16 amx_tile\n"
    assert cpuinfo_has_bf16(x86)
    assert cpuinfo_has_bf16("flags : sse2 avx512_bf16\n")
    assert cpuinfo_has_bf16("Features\t: fp asimd bf16 i8mm\n")
    assert not cpuinfo_has_bf16("flags\t\t: fpu sse2 avx2 avx512f\n")
    assert not cpuinfo_has_bf16("model name : amx_bf16 lookalike\n")
    assert not cpuinfo_has_bf16("")


@pytest.mark.skipif(platform.system() != "Linux", reason="reads /proc/cpuinfo")
def test_cpu_computes_bf16_reads_proc_cpuinfo() -> None:
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        assert cpu_computes_bf16() is cpuinfo_has_bf16(handle.read())


@pytest.mark.parametrize(
    ("dtype", "name"),
    [(torch.bfloat16, "bfloat16"), (torch.float32, "float32"), (torch.float16, "float16")],
)
def test_dtype_name(dtype: torch.dtype, name: str) -> None:
    assert dtype_name(dtype) == name
    assert resolve_dtype(name, CPU) is dtype
