"""llama.cpp beside the runtime: GGUF conversion, one worker per GGUF type, bench.json rows.

`LlamaCppPeer` is what `bench.run` drives, in four steps: `start` (is llama_cpp importable
by the peer interpreter? then the converter from the sdist, one GGUF file per type, one
long-lived `llama_worker` process per file), `decode_variants` and `sweep_variants` (callables
that `runs.measure_interleaved` rotates with the runtime's and HF's variants, so every engine
meets the same drift), and `section` (bench.json's ``peers["llama.cpp"]``). When llama_cpp
cannot be imported, or the converter is missing, nothing is measured and every row says why
(``status``: "not installed", "no converter", "failed"); the bench runs on regardless.
"""

from __future__ import annotations

import base64
import contextlib
import json
import select
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from kakeya_evidence.bench.peers import LLAMA_CPP
from kakeya_evidence.bench.peers.gguf_convert import (
    GGUF_TYPES,
    ConverterUnavailable,
    GgufFile,
    default_cache_dir,
    ensure_gguf,
    extract_converter,
    find_sdist,
    sdist_version,
)
from kakeya_evidence.bench.stats import (
    BatchSample,
    DecodeSample,
    decode_rate,
    paired_ratio,
    quantile,
    steady_rate,
)

__all__ = [
    "GOAL_RUNTIME_OVER_LLAMA",
    "LLAMA_CPP",
    "LlamaCppConfig",
    "LlamaCppPeer",
    "LlamaWorker",
    "PeerStatus",
    "add_peer_rates",
    "compare_logits",
    "probe_llama_cpp",
    "variant_name",
]

WORKER_SCRIPT = Path(__file__).with_name("llama_worker.py")
PROBE_TIMEOUT_S = 120.0
CALL_TIMEOUT_S = 900.0  # one generation in the worker; past it the worker counts as hung
STDERR_TAIL_CHARS = 2000
GOAL_RUNTIME_OVER_LLAMA = 1.0  # issue 24: the runtime at llama.cpp's speed, single and n=8
_GOAL_TYPE = "BF16"  # the goals compare like with like: bf16 weights on both sides


class PeerStatus(StrEnum):
    """What a peer row says: measured, or why not."""

    OK = "ok"
    NOT_INSTALLED = "not installed"
    NO_CONVERTER = "no converter"
    FAILED = "failed"


@dataclass(frozen=True)
class LlamaCppConfig:
    """How the llama.cpp peer runs (built from the bench's ``peer_*`` fields)."""

    gguf_types: tuple[str, ...] = tuple(GGUF_TYPES)
    threads: int = 2
    python: str = ""  # the interpreter with llama_cpp; "" is this one
    sdist: str = ""  # the llama-cpp-python sdist; "" finds one (see gguf_convert.find_sdist)
    cache_dir: str = ""  # converter and GGUF files; "" is gguf_convert.default_cache_dir()

    @property
    def interpreter(self) -> str:
        return self.python or sys.executable

    @property
    def cache(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()


def variant_name(gguf_type: str) -> str:
    """The bench variant of one GGUF type: ``llama_cpp_bf16``, ``llama_cpp_q8_0``."""
    return f"llama_cpp_{gguf_type.lower()}"


def probe_llama_cpp(python: str) -> tuple[str | None, str]:
    """(llama_cpp's version, "") when `python` can import it, else (None, why not)."""
    code = "import llama_cpp; print(llama_cpp.__version__)"
    try:
        done = subprocess.run(
            [python, "-c", code], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"{python} cannot run: {error}"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return None, (
            f"llama_cpp cannot be imported by {python} ({last}); "
            "install the extra: pip install 'kakeya[peer-llama]'"
        )
    return done.stdout.strip(), ""


class LlamaWorker:
    """One `llama_worker` process with one GGUF file loaded; `close()` (or `with`) ends it.

    Raises:
        RuntimeError: (from the constructor and every call) the worker failed, died or hung.
    """

    def __init__(self, python: str, gguf: Path, threads: int, n_ctx: int) -> None:
        # a file, not a pipe: llama.cpp's chatty stderr cannot block on a pipe nobody reads
        self._stderr: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        command = [python, str(WORKER_SCRIPT), str(gguf), "--threads", str(threads)]
        self._proc = subprocess.Popen(
            [*command, "--n-ctx", str(n_ctx)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        try:
            self.hello = self._reply(PROBE_TIMEOUT_S)  # versions, system info, n_vocab
        except BaseException:
            self.close()
            raise

    def decode(self, prompt: list[int], max_tokens: int) -> DecodeSample:
        """One greedy stream (``Llama.generate``), timed in the worker."""
        reply = self._call({"op": "decode", "prompt": prompt, "max_tokens": max_tokens})
        return DecodeSample(reply["ttft_s"], tuple(reply["stamps_s"]), tuple(reply["token_ids"]))

    def batch(self, prompts: Sequence[list[int]], max_tokens: int) -> BatchSample:
        """n sequences decoding together in one context (``llama_batch``)."""
        return self.batch_with_ids(prompts, max_tokens)[0]

    def batch_with_ids(
        self, prompts: Sequence[list[int]], max_tokens: int
    ) -> tuple[BatchSample, list[list[int]]]:
        """`batch`, and each sequence's greedy token ids."""
        reply = self._call({"op": "batch", "prompts": list(prompts), "max_tokens": max_tokens})
        stamps = BatchSample(tuple(tuple(s) for s in reply["stamps_s"]))
        return stamps, [list(ids) for ids in reply["token_ids"]]

    def logits(self, prompt: list[int]) -> list[float]:
        """The logits after `prompt` (one prefill in a context of its own)."""
        reply = self._call({"op": "logits", "prompt": prompt})
        raw = base64.b64decode(reply["logits_f32_b64"])
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))

    def close(self) -> None:
        """Ends the worker (EOF on its stdin), waits for it, closes the pipes. Idempotent."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        with contextlib.suppress(BrokenPipeError, OSError):
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> LlamaWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            pass  # the worker is gone: _reply says why
        return self._reply(CALL_TIMEOUT_S)

    def _reply(self, timeout_s: float) -> dict[str, Any]:
        assert self._proc.stdout is not None
        # one request in flight and one line per reply: nothing waits in Python's buffer
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout_s)
        if not ready:
            self._proc.kill()
            raise RuntimeError(f"the llama.cpp worker gave no answer within {timeout_s:.0f}s")
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the llama.cpp worker died: {self._stderr_tail()}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"the llama.cpp worker failed: {reply['error']}")
        return reply

    def _stderr_tail(self) -> str:
        self._proc.wait(timeout=30)
        self._stderr.seek(0)
        return self._stderr.read()[-STDERR_TAIL_CHARS:] or f"exit code {self._proc.returncode}"


@dataclass
class _Variant:
    """One GGUF type: its file and worker once started, or why it is not measured."""

    gguf_type: str
    status: PeerStatus = PeerStatus.NOT_INSTALLED
    reason: str = ""
    file: GgufFile | None = None
    worker: LlamaWorker | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    logits_vs_hf: dict[str, Any] | None = None


class LlamaCppPeer:
    """llama.cpp, through llama-cpp-python, as the bench measures it (see the module doc)."""

    def __init__(
        self,
        config: LlamaCppConfig,
        model: str,
        revision: str,
        n_ctx: int,
        progress: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.config, self.model, self.revision, self.n_ctx = config, model, revision, n_ctx
        self.progress = progress
        self.status, self.reason = PeerStatus.NOT_INSTALLED, ""
        self.version: str | None = None
        self.converter: dict[str, Any] = {}
        self.variants = {t: _Variant(t) for t in config.gguf_types}

    def start(self) -> None:
        """Probe, convert, start the workers; afterwards `status` says what came of it."""
        self.version, self.reason = probe_llama_cpp(self.config.interpreter)
        if self.version is None:
            self._mark_all(PeerStatus.NOT_INSTALLED, self.reason)
            return
        try:
            sdist = find_sdist(self.config.sdist, self.config.cache, self.version)
            converter = extract_converter(sdist, self.config.cache)
        except ConverterUnavailable as error:
            self.status, self.reason = PeerStatus.NO_CONVERTER, str(error)
            self._mark_all(self.status, self.reason)
            return
        self.converter = {"sdist": str(sdist), "version": sdist_version(sdist)}
        for variant in self.variants.values():
            self._start_variant(variant, converter)
        measured = [v for v in self.variants.values() if v.status == PeerStatus.OK]
        self.status = PeerStatus.OK if measured else PeerStatus.FAILED
        if not measured:
            self.reason = "; ".join(v.reason for v in self.variants.values())

    def _start_variant(self, variant: _Variant, converter: Path) -> None:
        t = variant.gguf_type
        self.progress(f"llama.cpp {t}: GGUF for {self.model}@{self.revision[:12]}")
        try:
            variant.file = ensure_gguf(self.model, self.revision, t, converter, self.config.cache)
            self.converter.update(
                {k: variant.file.facts.get(k) for k in ("pre_tokenizer", "chkhsh", "mapped")}
            )
            variant.worker = LlamaWorker(
                self.config.interpreter, variant.file.path, self.config.threads, self.n_ctx
            )
        except (ConverterUnavailable, RuntimeError, OSError) as error:
            variant.status, variant.reason = PeerStatus.FAILED, str(error)
            return
        variant.status, variant.facts = PeerStatus.OK, dict(variant.worker.hello)

    def _mark_all(self, status: PeerStatus, reason: str) -> None:
        self.status = status
        for variant in self.variants.values():
            variant.status, variant.reason = status, reason

    def _workers(self) -> dict[str, LlamaWorker]:
        return {t: v.worker for t, v in self.variants.items() if v.worker is not None}

    def decode_variants(
        self, prompt: list[int], max_tokens: int
    ) -> dict[str, Callable[[], DecodeSample]]:
        """One single-stream variant per running worker."""
        return {
            variant_name(t): _bind(worker.decode, prompt, max_tokens)
            for t, worker in self._workers().items()
        }

    def sweep_variants(
        self, prompts: Sequence[list[int]], max_tokens: int
    ) -> dict[str, Callable[[], BatchSample]]:
        """One n-sequence variant per running worker."""
        return {
            variant_name(t): _bind(worker.batch, list(prompts), max_tokens)
            for t, worker in self._workers().items()
        }

    def compare_logits(self, model: Any, prompt: list[int]) -> None:
        """Each worker's logits after `prompt` against HF's `model` (in the bench's dtype).

        Greedy tokens of a random-weight model part at near-ties, so this records what the
        conversion check rests on: correlation over the vocabulary and top-10 overlap.
        """
        reference = _hf_logits(model, prompt)
        for variant in self.variants.values():
            if variant.worker is not None:
                variant.logits_vs_hf = compare_logits(variant.worker.logits(prompt), reference)

    def close(self) -> None:
        """End every worker."""
        for variant in self.variants.values():
            if variant.worker is not None:
                variant.worker.close()
                variant.worker = None

    def __enter__(self) -> LlamaCppPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def section(
        self, samples: Mapping[str, Sequence[DecodeSample]], rows: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """bench.json's ``peers["llama.cpp"]``: status, versions, one row per GGUF type."""
        return {
            "status": str(self.status),
            "reason": self.reason,
            "engine": "llama.cpp (llama-cpp-python)",
            "llama_cpp_python": self.version,
            "python": self.config.interpreter,
            "threads": self.config.threads,
            "converter": self.converter,
            "variants": {t: self._variant_row(v, samples, rows) for t, v in self.variants.items()},
        }

    def _variant_row(
        self,
        variant: _Variant,
        samples: Mapping[str, Sequence[DecodeSample]],
        rows: Sequence[Mapping[str, Any]],
    ) -> dict[str, Any]:
        row: dict[str, Any] = {"status": str(variant.status), "reason": variant.reason}
        if variant.status != PeerStatus.OK or variant.file is None:
            return row
        name = variant_name(variant.gguf_type)
        mine = samples.get(name) or []
        row.update(
            variant=name,
            gguf=str(variant.file.path),
            gguf_bytes=variant.file.size_bytes,
            convert_s=variant.file.convert_s,
            converted_now=not variant.file.cached,
            system_info=variant.facts.get("system_info"),
            flash_attn=variant.facts.get("flash_attn"),
            openmp_env=variant.facts.get("openmp_env"),
            runtime_over_peer=_paired(samples.get("runtime") or [], mine),
            tokens_matching_hf_generate=_matching(mine, samples.get("hf_generate") or []),
            tokens_matching_runtime=_matching(mine, samples.get("runtime") or []),
            tokens_compared=len(mine[0].token_ids) if mine else 0,
            logits_vs_hf=variant.logits_vs_hf,
            batch_tok_s={str(r["n"]): r.get(f"{name}_tok_s") for r in rows},
        )
        return row

    def goals(
        self, section: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Issue 24's goals against llama.cpp BF16 (`met` None where it was not measured)."""
        name = variant_name(_GOAL_TYPE)
        bf16 = (section.get("variants") or {}).get(_GOAL_TYPE) or {}
        eight = next((r for r in rows if r.get("n") == 8), {})
        batch8 = _ratio(eight.get("runtime_tok_s"), eight.get(f"{name}_tok_s"))
        return {
            f"runtime_over_{name}": _goal(bf16.get("runtime_over_peer")),
            f"batch8_over_{name}": _goal(batch8),
        }


def _hf_logits(model: Any, prompt: list[int]) -> list[float]:
    import torch

    device = next(model.parameters()).device
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([prompt], device=device), logits_to_keep=1)
    return [float(x) for x in out.logits[0, -1].float().tolist()]  # [V]


def compare_logits(peer: Sequence[float], reference: Sequence[float]) -> dict[str, Any]:
    """Pearson correlation, top-10 overlap, top-1 agreement and largest difference."""
    n = min(len(peer), len(reference))  # a GGUF vocabulary is the config's, as HF's logits
    a, b = list(peer[:n]), list(reference[:n])
    mean_a, mean_b = sum(a) / n, sum(b) / n
    cov = sum((x - mean_a) * (y - mean_b) for x, y in zip(a, b, strict=True))
    var_a = sum((x - mean_a) ** 2 for x in a)
    var_b = sum((y - mean_b) ** 2 for y in b)
    top_a = sorted(range(n), key=lambda i: -a[i])[:10]
    top_b = sorted(range(n), key=lambda i: -b[i])[:10]
    return {
        "correlation": cov / (var_a * var_b) ** 0.5 if var_a and var_b else None,
        "top10_overlap": len(set(top_a) & set(top_b)),
        "top1_equal": top_a[0] == top_b[0],
        "max_abs_diff": max(abs(x - y) for x, y in zip(a, b, strict=True)),
        "vocab": n,
    }


def _bind(call: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    return lambda: call(*args)


def _paired(runtime: Sequence[DecodeSample], peer: Sequence[DecodeSample]) -> float | None:
    return paired_ratio(
        [decode_rate(s.stamps_s) for s in runtime], [decode_rate(s.stamps_s) for s in peer]
    )


def _matching(a: Sequence[DecodeSample], b: Sequence[DecodeSample]) -> int | None:
    """Leading greedy tokens of the first samples that agree (a check of the conversion)."""
    if not a or not b:
        return None
    count = 0
    for x, y in zip(a[0].token_ids, b[0].token_ids, strict=False):
        if x != y:
            break
        count += 1
    return count


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return None if numerator is None or not denominator else numerator / denominator


def _goal(value: float | None) -> dict[str, Any]:
    met = None if value is None else value >= GOAL_RUNTIME_OVER_LLAMA
    return {"value": value, "target": f">= {GOAL_RUNTIME_OVER_LLAMA}", "met": met}


def add_peer_rates(row: dict[str, Any], samples: Mapping[str, Sequence[BatchSample]]) -> None:
    """Put each llama.cpp variant's median aggregate rate into a concurrency row."""
    for name, runs in samples.items():
        if name.startswith("llama_cpp_") and runs:
            row[f"{name}_tok_s"] = quantile([steady_rate(s) for s in runs], 0.5)
