"""Host facts: processor, memory, OS, Python, library versions, accelerators, disk."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from kakeya_evidence.stages.files import write_stage

__all__ = ["collect_host_facts", "package_version", "run_host_check"]

STAGE = "host_check"
_PROBE = (
    "import json, torch\n"
    "mps = getattr(torch.backends, 'mps', None)\n"
    "print(json.dumps({'cuda': torch.cuda.is_available(),"
    " 'cuda_devices': torch.cuda.device_count(),"
    " 'mps': bool(mps and mps.is_available())}))\n"
)


def package_version(name: str) -> str | None:
    """Return an installed distribution's version, or None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def collect_host_facts(
    disk_path: Path | str = ".", probe_timeout_s: float = 120.0
) -> dict[str, Any]:
    """Collect the facts a reviewer needs to judge where the evidence came from.

    Args:
        disk_path: A path on the disk whose free space matters (the output directory).
        probe_timeout_s: Limit for the torch accelerator probe subprocess.

    Returns:
        A JSON-serialisable dict; facts that cannot be read are None, never an exception.
    """
    return {
        "chip": _chip_brand(),
        "machine": platform.machine(),
        "cpu_cores_logical": os.cpu_count(),
        "cpu_cores_physical": _physical_cores(),
        **_memory(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "torch": package_version("torch"),
        "transformers": package_version("transformers"),
        **_accelerators(probe_timeout_s),
        "disk_free_bytes": _disk_free(disk_path),
    }


def run_host_check(output_dir: Path | str) -> dict[str, Any]:
    """Collect host facts and write stages/host_check.json.

    Args:
        output_dir: The evidence directory.

    Returns:
        The host facts.
    """
    started = time.monotonic()
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    facts = collect_host_facts(output_dir)
    stage = {"status": "ok", "reason": "", "duration_s": round(time.monotonic() - started, 3)}
    write_stage(output_dir, STAGE, {**stage, "host": facts})
    return facts


def _chip_brand() -> str | None:
    if sys.platform == "darwin":
        return _command_output(["sysctl", "-n", "machdep.cpu.brand_string"])
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _physical_cores() -> int | None:
    try:
        import psutil

        return psutil.cpu_count(logical=False)
    except ImportError:
        return None


def _memory() -> dict[str, Any]:
    try:
        import psutil
    except ImportError:
        return {"memory_total_bytes": None, "memory_available_bytes": None}
    vm, swap = psutil.virtual_memory(), psutil.swap_memory()
    return {
        "memory_total_bytes": vm.total,
        "memory_available_bytes": vm.available,
        "memory_used_percent": vm.percent,
        "swap_used_bytes": swap.used,
        "memory_pressure": _memory_pressure(vm.percent),
    }


def _memory_pressure(used_percent: float) -> str:
    # macOS reports its own level; elsewhere, PSI when the kernel has it, else used percent.
    if sys.platform == "darwin":
        text = _command_output(["memory_pressure", "-Q"]) or ""
        for line in text.splitlines():
            if "free percentage" in line:
                return line.strip()
    try:
        some = Path("/proc/pressure/memory").read_text().splitlines()[0]
        return f"psi {some}"
    except (OSError, IndexError):
        return "high" if used_percent > 90 else "normal"


def _accelerators(timeout_s: float) -> dict[str, Any]:
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        return {**json.loads(proc.stdout.strip().splitlines()[-1]), "probe_error": None}
    except (subprocess.TimeoutExpired, OSError, ValueError, IndexError) as exc:
        return {"cuda": None, "cuda_devices": None, "mps": None, "probe_error": str(exc)[:300]}


def _disk_free(path: Path | str) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def _command_output(argv: list[str]) -> str | None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None
