"""The SDK measured as users run it: `kakeya.Client` in a client process of its own.

The bench process serves the engine over gRPC (`runs.sdk_client`) and drives this module's
child, `python -m kakeya_evidence.bench.sdk_process ADDRESS`, over its pipes: one JSON line
per measurement in, one JSON line with the token stamps out. The child imports the SDK
and the bench's measuring functions only (no torch, no runtime), so the client's work
competes with the server's for the cores, never for the server's GIL.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from typing import IO, Any

from kakeya_evidence.bench.stats import BatchSample, DecodeSample

__all__ = ["CLIENT_TIMEOUT_S", "SdkProcess"]

CLIENT_TIMEOUT_S = 600.0  # the child's deadline on every call: a hang becomes an error
STDERR_TAIL_CHARS = 2000


class SdkProcess:
    """A client process with one `kakeya.Client` to `address`; `close()` (or `with`) ends it.

    Raises:
        RuntimeError: (from the constructor and every call) the child failed or died.
    """

    def __init__(self, address: str) -> None:
        # a file, not a pipe: a chatty child cannot block on a full pipe nobody reads
        self._stderr: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "kakeya_evidence.bench.sdk_child", address],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        try:
            self.hello = self._reply()  # {"modules": [...]}: what the child had to import
        except BaseException:
            self.close()
            raise

    def decode(self, prompt: list[int], max_tokens: int, batch_tokens: bool = True) -> DecodeSample:
        """One generation in the child (`runs.measure_sdk`), timed where the tokens arrive."""
        reply = self._call(
            {"op": "decode", "prompt": prompt, "max_tokens": max_tokens, "batch": batch_tokens}
        )
        return DecodeSample(
            ttft_s=reply["ttft_s"],
            stamps_s=tuple(reply["stamps_s"]),
            token_ids=tuple(reply["token_ids"]),
        )

    def batch(
        self, prompts: Sequence[list[int]], max_tokens: int, batch_tokens: bool = True
    ) -> BatchSample:
        """n sessions generating at once in the child (`concurrency.measure_sdk_batch`)."""
        reply = self._call(
            {
                "op": "batch",
                "prompts": list(prompts),
                "max_tokens": max_tokens,
                "batch": batch_tokens,
            }
        )
        return BatchSample(tuple(tuple(session) for session in reply["stamps_s"]))

    def close(self) -> None:
        """Ends the child (EOF on its stdin), waits for it and closes the pipes. Idempotent."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        with contextlib.suppress(BrokenPipeError):  # the child may be gone already
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> SdkProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            pass  # the child is gone: _reply says why
        return self._reply()

    def _reply(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the SDK client process died: {self._stderr_tail()}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"the SDK client process failed: {reply['error']}")
        return reply

    def _stderr_tail(self) -> str:
        self._proc.wait(timeout=30)
        self._stderr.seek(0)
        return self._stderr.read()[-STDERR_TAIL_CHARS:] or f"exit code {self._proc.returncode}"
