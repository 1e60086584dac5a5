"""The SDK client process that `SdkProcess` starts: one JSON line in, one out per request.

It imports the SDK and the measuring functions only (no torch, no runtime); its first
line lists the modules it had to import.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any

from kakeya_evidence.bench.concurrency import measure_sdk_batch
from kakeya_evidence.bench.runs import measure_sdk
from kakeya_evidence.bench.sdk_process import CLIENT_TIMEOUT_S

__all__ = ["main"]


def _serve(client: Any, request: dict[str, Any]) -> dict[str, Any]:
    op, tokens, batch = request["op"], request["max_tokens"], request["batch"]
    if op == "decode":
        return dataclasses.asdict(measure_sdk(client, request["prompt"], tokens, batch))
    if op == "batch":
        return dataclasses.asdict(measure_sdk_batch(client, request["prompts"], tokens, batch))
    raise ValueError(f"unknown op {op!r}")


def main(argv: Sequence[str] | None = None) -> int:
    """The child: answer one JSON line per request line until stdin closes."""
    import kakeya

    (address,) = sys.argv[1:] if argv is None else argv
    with kakeya.Client(address, timeout=CLIENT_TIMEOUT_S) as client:
        print(json.dumps({"modules": sorted(sys.modules)}), flush=True)
        for line in sys.stdin:
            try:
                reply = _serve(client, json.loads(line))
            except Exception as error:  # reported to the parent, which raises it there
                reply = {"error": f"{type(error).__name__}: {error}"}
            print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
