"""The peer engines of bench.json (``peers``) as one table beside the runtime's own row.

One row for the Kakeya runtime, then one per peer engine and GGUF type: single-stream decode
tokens/s, the runtime's rate over the row's (paired within each repeat of the run), the
aggregate tokens/s at each n of the concurrency sweep, and how many greedy tokens agree with
HF's `generate()` and how the logits after the prompt compare with HF's (correlation over
the vocabulary, top-10 overlap): checks that the conversion is right. A peer that was not
measured shows its status and why ("not installed" when the extra is absent).
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_REASON_CHARS", "peer_table"]

MAX_REASON_CHARS = 300  # a failed conversion's reason ends with its log; the page shows a line


def peer_table(perf: dict[str, Any]) -> dict[str, Any]:
    """``{"ns": [...], "rows": [...]}``; no rows when the bench ran without ``--peer``."""
    peers = perf.get("peers") or {}
    ns = [row.get("n") for row in perf.get("concurrency") or []]
    if not peers:
        return {"ns": ns, "rows": []}
    decode = perf.get("decode_tok_s") or {}
    runtime = {
        "engine": "Kakeya runtime",
        "status": "ok",
        "reason": "",
        "decode_tok_s": decode.get("runtime"),
        "runtime_over_peer": 1.0,
        "batch_tok_s": [row.get("runtime_tok_s") for row in perf.get("concurrency") or []],
        "tokens": "",
        "logits": "",
    }
    rows = [runtime]
    for engine, peer in peers.items():
        for gguf_type, variant in (peer.get("variants") or {}).items():
            rows.append(_variant_row(f"{engine} {gguf_type}", variant, decode, ns))
    return {"ns": ns, "rows": rows}


def _variant_row(
    engine: str, variant: dict[str, Any], decode: dict[str, Any], ns: list[Any]
) -> dict[str, Any]:
    batch = variant.get("batch_tok_s") or {}
    matching, compared = variant.get("tokens_matching_hf_generate"), variant.get("tokens_compared")
    reason = str(variant.get("reason") or "").strip().splitlines()
    return {
        "engine": engine,
        "status": variant.get("status") or "",
        "reason": reason[0][:MAX_REASON_CHARS] if reason else "",
        "decode_tok_s": decode.get(variant.get("variant") or ""),
        "runtime_over_peer": variant.get("runtime_over_peer"),
        "batch_tok_s": [batch.get(str(n)) for n in ns],
        "tokens": f"{matching} / {compared}" if matching is not None else "",
        "logits": _logits_cell(variant.get("logits_vs_hf")),
    }


def _logits_cell(check: dict[str, Any] | None) -> str:
    """ "0.9957, 9 / 10": correlation with HF's logits after the prompt, top-10 overlap."""
    if not check or check.get("correlation") is None:
        return ""
    return f"{check['correlation']:.4f}, {check.get('top10_overlap')} / 10"
