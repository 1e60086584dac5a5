"""The llama.cpp worker: one GGUF file loaded once, generations on request, one JSON line each.

Run by the bench as a script, ``PYTHON llama_worker.py FILE.gguf --threads 2 --n-ctx N``, with
whichever interpreter has llama-cpp-python (this one by default, another venv's with
``--peer-python``); it imports the standard library, llama_cpp and numpy only, never this
project. It answers a hello line (versions, llama.cpp's system info), then per request line:

- ``{"op": "decode", "prompt": [...], "max_tokens": G}``: one stream through the high-level
  API a user calls, ``Llama.generate`` with greedy sampling, state reset first (no prefix
  reuse between repeats); the reply holds each token's arrival and the token ids.
- ``{"op": "logits", "prompt": [...]}``: the logits after the prompt (a check of the
  conversion against HF's, finer than greedy tokens when the top candidates nearly tie).
- ``{"op": "batch", "prompts": [[...], ...], "max_tokens": G}``: n sequences in one llama.cpp
  context (``n_seq_max = n``) driven with the low-level ``llama_batch``: one ``llama_decode``
  prefills every prompt, then each step decodes one token of every sequence together (what
  llama.cpp's own batched examples and its server do); greedy argmax of each row's logits.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

DECODE_CHUNK = 512  # llama.cpp's physical batch (n_ubatch)
OPENMP_ENV = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "OMP_NUM_THREADS")
CTX_ALIGN = 256  # llama.cpp pads a context to this; each sequence gets n_ctx / n_seq_max


def _greedy_stream(llm: Any, prompt: list[int], max_tokens: int) -> dict[str, Any]:
    llm.reset()  # n_tokens = 0: generate() then re-evaluates the whole prompt
    stamps: list[float] = []
    ids: list[int] = []
    start = time.perf_counter()
    for token in llm.generate(prompt, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0):
        stamps.append(time.perf_counter() - start)
        ids.append(int(token))
        if len(ids) >= max_tokens:
            break
    return {"ttft_s": stamps[0], "stamps_s": stamps, "token_ids": ids}


class _Batched:
    """A context of n sequences on the worker's model, kept while n and sizes stay the same."""

    def __init__(self, llama_cpp: Any, model: Any, threads: int) -> None:
        self.lib, self.model, self.threads = llama_cpp, model, threads
        self.ctx: Any = None
        self.key: tuple[int, int, int] = (0, 0, 0)

    def context(self, n: int, n_ctx: int, n_batch: int) -> Any:
        if self.ctx is not None and self.key == (n, n_ctx, n_batch):
            return self.ctx
        self.close()
        params = self.lib.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_seq_max = n_ctx, n_batch, n
        params.n_ubatch = min(n_batch, DECODE_CHUNK)
        params.n_threads = params.n_threads_batch = self.threads
        # as the high-level Llama(flash_attn=False) the single stream uses
        params.flash_attn_type = self.lib.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self.ctx = self.lib.llama_init_from_model(self.model, params)
        if not self.ctx:
            raise RuntimeError(f"llama_init_from_model failed for n_seq_max={n}, n_ctx={n_ctx}")
        self.key = (n, n_ctx, n_batch)
        return self.ctx

    def close(self) -> None:
        if self.ctx is not None:
            self.lib.llama_free(self.ctx)
            self.ctx = None


def _fill(batch: Any, entries: Sequence[tuple[int, int, int, bool]]) -> None:
    """(token, position, sequence, wants logits) per entry."""
    for i, (token, pos, seq, logits) in enumerate(entries):
        batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
        batch.seq_id[i][0], batch.logits[i] = seq, int(logits)
    batch.n_tokens = len(entries)


def _argmax_rows(lib: Any, np: Any, ctx: Any, rows: Sequence[int], n_vocab: int) -> list[int]:
    picks = []
    for row in rows:
        logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(ctx, row), shape=(n_vocab,))
        picks.append(int(logits.argmax()))
    return picks


def _sequences(
    state: _Batched, np: Any, n_vocab: int, prompts: list[list[int]], max_tokens: int
) -> dict[str, Any]:
    lib, n = state.lib, len(prompts)
    total = sum(len(p) for p in prompts)
    per_seq = -(-(max(len(p) for p in prompts) + max_tokens + 1) // CTX_ALIGN) * CTX_ALIGN
    ctx = state.context(n, n * per_seq, max(total, n))
    lib.llama_memory_clear(lib.llama_get_memory(ctx), True)
    batch = lib.llama_batch_init(max(total, n), 0, 1)
    stamps: list[list[float]] = [[] for _ in prompts]
    ids: list[list[int]] = [[] for _ in prompts]
    try:
        start = time.perf_counter()
        entries = [
            (tok, pos, seq, pos == len(p) - 1)
            for seq, p in enumerate(prompts)
            for pos, tok in enumerate(p)
        ]
        _fill(batch, entries)
        rows = [i for i, entry in enumerate(entries) if entry[3]]  # [n] last prompt tokens
        for step in range(max_tokens):
            if lib.llama_decode(ctx, batch) != 0:
                raise RuntimeError(f"llama_decode failed at step {step}")
            tokens = _argmax_rows(lib, np, ctx, rows, n_vocab)
            now = time.perf_counter() - start
            for seq in range(n):
                stamps[seq].append(now)
                ids[seq].append(tokens[seq])
            _fill(batch, [(tokens[s], len(prompts[s]) + step, s, True) for s in range(n)])
            rows = list(range(n))
    finally:
        lib.llama_batch_free(batch)
    return {"stamps_s": stamps, "token_ids": ids}


def _last_logits(state: _Batched, np: Any, n_vocab: int, prompt: list[int]) -> dict[str, Any]:
    """The logits after the prompt's last token, float32 little-endian, base64 (one prefill)."""
    lib = state.lib
    ctx = state.context(1, -(-(len(prompt) + 1) // CTX_ALIGN) * CTX_ALIGN, len(prompt))
    lib.llama_memory_clear(lib.llama_get_memory(ctx), True)
    batch = lib.llama_batch_init(len(prompt), 0, 1)
    try:
        _fill(batch, [(t, pos, 0, pos == len(prompt) - 1) for pos, t in enumerate(prompt)])
        if lib.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed on the prompt")
        row = lib.llama_get_logits_ith(ctx, len(prompt) - 1)
        logits = np.ctypeslib.as_array(row, shape=(n_vocab,)).astype("<f4")
    finally:
        lib.llama_batch_free(batch)
    return {"logits_f32_b64": base64.b64encode(logits.tobytes()).decode("ascii")}


def main(argv: Sequence[str] | None = None) -> int:
    """Load the GGUF file, print the hello line, answer request lines until stdin closes."""
    parser = argparse.ArgumentParser(prog="llama_worker.py")
    parser.add_argument("gguf")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-ctx", type=int, default=512, help="context of the single stream")
    args = parser.parse_args(argv)
    try:  # by name: the package is optional, and it ships no type information
        llama_cpp = importlib.import_module("llama_cpp")
        np = importlib.import_module("numpy")
    except ImportError as error:
        print(json.dumps({"error": f"not installed: {error}"}), flush=True)
        return 3
    llm = llama_cpp.Llama(
        model_path=args.gguf,
        n_ctx=args.n_ctx,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        verbose=False,
    )
    n_vocab = llm.n_vocab()
    state = _Batched(llama_cpp, llm.model, args.threads)
    hello = {
        "llama_cpp_python": llama_cpp.__version__,
        "system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip(),
        "n_vocab": n_vocab,
        "threads": args.threads,
        "flash_attn": False,
        # llama.cpp's threads are OpenMP's here: the spin policy it inherited matters
        "openmp_env": {k: os.environ.get(k) for k in OPENMP_ENV},
    }
    print(json.dumps(hello), flush=True)
    for line in sys.stdin:
        try:
            request = json.loads(line)
            if request["op"] == "decode":
                reply = _greedy_stream(llm, request["prompt"], request["max_tokens"])
            elif request["op"] == "logits":
                reply = _last_logits(state, np, n_vocab, request["prompt"])
            elif request["op"] == "batch":
                reply = _sequences(state, np, n_vocab, request["prompts"], request["max_tokens"])
            else:
                raise ValueError(f"unknown op {request['op']!r}")
        except Exception as error:  # reported to the parent, which raises it there
            reply = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(reply), flush=True)
    state.close()
    llm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
