"""Model cache: check with ``kakeya-runtime prewarm --check``, prewarm on a miss, time a load.

A miss that cannot be filled (HF_HUB_OFFLINE=1 for a model that must be downloaded)
fails fast with a message naming the exact prewarm command.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kakeya_evidence.common.files import write_stage
from kakeya_evidence.common.params import DEFAULT_MODEL_ID, STAGE_TIMEOUT_S, check_number
from kakeya_evidence.common.schema import StageStatus
from kakeya_evidence.errors import CacheMissError, ParameterError, StageError

__all__ = ["CacheConfig", "check_cache", "parse_ok_line", "prewarm_command", "run_cache_stage"]

STAGE = "cache_prewarm"
EMBEDDED_PREFIX = "kakeya/"
# One interpreter runs `kakeya-runtime prewarm --check` and then times a load, so torch and
# transformers are imported once (the check alone costs a few seconds of imports).
_CHECK_SNIPPET = """
import contextlib, io, sys, time
from inference_engine.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(["prewarm", "--model", sys.argv[1], "--check"])
print(out.getvalue(), end="", flush=True)
path = next((p[5:] for p in out.getvalue().split() if p.startswith("path=")), "")
if code == 0 and sys.argv[2] == "1" and path:
    from transformers import AutoModelForCausalLM
    start = time.perf_counter()
    AutoModelForCausalLM.from_pretrained(path)
    print(f"load_s={time.perf_counter() - start:.4f}")
sys.exit(code)
"""


@dataclass(frozen=True)
class CacheConfig:
    """What the cache stage checks.

    Attributes:
        model: Model id.
        prewarm: Fill the cache on a miss (embedded presets build offline).
        measure_load: Time ``from_pretrained`` in a subprocess.
        timeout_s: Limit for each subprocess.
    """

    model: str = field(default=DEFAULT_MODEL_ID, metadata={"help": "model id"})
    prewarm: bool = field(
        default=True, metadata={"help": "fill the cache on a miss (--no-prewarm: fail instead)"}
    )
    # the suite reports the load it does anyway
    measure_load: bool = field(
        default=False,
        metadata={
            "help": "also time from_pretrained in the cache stage",
            "aliases": ("--load-time",),
        },
    )
    timeout_s: float = field(
        default=STAGE_TIMEOUT_S,
        metadata={"help": "limit for each cache-stage subprocess, s", "flag": "--cache-timeout-s"},
    )

    def __post_init__(self) -> None:
        if not (isinstance(self.model, str) and self.model.strip()):
            raise ParameterError("model must be a non-empty model id")
        check_number("timeout_s", self.timeout_s)


def prewarm_command(model: str) -> str:
    """Return the command a user runs to put model into the cache."""
    return f"kakeya-runtime prewarm --model {model}"


def parse_ok_line(text: str) -> dict[str, Any] | None:
    """Parse ``ok <id> revision=<rev> path=<dir> size_bytes=<n>``; None when absent."""
    for line in text.splitlines():
        parts = line.strip().split()
        if len(parts) >= 2 and parts[0] == "ok":
            fields: dict[str, Any] = {"id": parts[1]}
            for part in parts[2:]:
                key, _, value = part.partition("=")
                fields[key] = int(value) if key == "size_bytes" and value.isdigit() else value
            return fields
    return None


def check_cache(config: CacheConfig) -> dict[str, Any]:
    """Check the cache, prewarm on a miss when allowed, and time a load.

    Args:
        config: The cache configuration.

    Returns:
        Cache facts: id, revision, path, size_bytes, prewarmed, load_s.

    Raises:
        CacheMissError: The model is not cached and cannot be fetched here.
        StageError: The prewarm command failed or could not run.
    """
    facts = _check(config, config.measure_load)
    if facts is not None:
        return {**facts, "prewarmed": False}
    if not _can_fill(config):
        raise CacheMissError(_miss_message(config.model), stage=STAGE)
    _run([sys.executable, "-m", "inference_engine.cli", "prewarm", "--model", config.model], config)
    facts = _check(config, config.measure_load)
    if facts is None:
        raise StageError(f"{config.model} is still missing after prewarm", stage=STAGE)
    return {**facts, "prewarmed": True}


def run_cache_stage(output_dir: Path | str, config: CacheConfig) -> dict[str, Any]:
    """Run check_cache and write stages/cache_prewarm.json, also when it fails.

    Args:
        output_dir: The evidence directory.
        config: The cache configuration.

    Returns:
        The cache facts.

    Raises:
        StageError: As check_cache, after the stage file is written.
    """
    started = time.monotonic()
    try:
        facts = check_cache(config)
    except StageError as exc:
        _write(output_dir, StageStatus.FAILED, exc.reason, started, {"id": config.model})
        raise
    _write(output_dir, StageStatus.OK, "", started, facts)
    return facts


def _write(output_dir: Path | str, status: str, reason: str, started: float, facts: dict) -> None:
    duration = round(time.monotonic() - started, 3)
    write_stage(
        output_dir,
        STAGE,
        {"status": status, "reason": reason, "duration_s": duration, "cache": facts},
    )


def _can_fill(config: CacheConfig) -> bool:
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    return config.prewarm and (config.model.startswith(EMBEDDED_PREFIX) or not offline)


def _miss_message(model: str) -> str:
    home = os.environ.get("HF_HOME") or "~/.cache/huggingface"
    return (
        f"model {model} is not in the Hugging Face cache ({home}) and HF_HUB_OFFLINE=1 "
        f"forbids a download; run: {prewarm_command(model)}"
    )


def _check(config: CacheConfig, measure_load: bool) -> dict[str, Any] | None:
    argv = [sys.executable, "-c", _CHECK_SNIPPET, config.model, "1" if measure_load else "0"]
    proc = _run(argv, config, allowed=(0, 1))
    if proc.returncode != 0:
        return None
    facts = parse_ok_line(proc.stdout)
    if facts is None:
        raise StageError(f"prewarm --check printed no ok line: {proc.stdout[:200]}", stage=STAGE)
    load = [line for line in proc.stdout.splitlines() if line.startswith("load_s=")]
    return {**facts, "load_s": float(load[0].split("=", 1)[1]) if load else None}


def _run(
    argv: list[str], config: CacheConfig, allowed: tuple[int, ...] = (0,)
) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=config.timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise StageError(f"prewarm timed out after {config.timeout_s:g}s", stage=STAGE) from exc
    if proc.returncode not in allowed:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise StageError(f"prewarm exited {proc.returncode}: {detail[0][:300]}", stage=STAGE)
    return proc
