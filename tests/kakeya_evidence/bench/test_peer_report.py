"""The report shows bench.json's peer rows beside the runtime (table and concurrency plot)."""

from __future__ import annotations

from typing import Any

from kakeya_evidence.report import plots
from kakeya_evidence.report.html import render_html
from kakeya_evidence.report.peers import peer_table


def _perf(status: str = "ok") -> dict[str, Any]:
    measured = {
        "status": "ok",
        "reason": "",
        "variant": "llama_cpp_bf16",
        "runtime_over_peer": 0.25,
        "tokens_matching_hf_generate": 9,
        "tokens_compared": 128,
        "logits_vs_hf": {"correlation": 0.99569, "top10_overlap": 9, "top1_equal": False},
        "batch_tok_s": {"1": 20.0, "8": 90.0},
    }
    absent = {"status": "not installed", "reason": "llama_cpp cannot be imported\nmore"}
    variants = {"BF16": measured, "Q8_0": absent} if status == "ok" else {"BF16": absent}
    return {
        "model": "kakeya/qwen3-0.6b-shaped",
        "decode_tok_s": {"runtime": 5.0, "llama_cpp_bf16": 20.0},
        "concurrency": [
            {"n": 1, "runtime_tok_s": 5.0, "itl_p50_s": 0.2, "llama_cpp_bf16_tok_s": 20.0},
            {"n": 8, "runtime_tok_s": 40.0, "itl_p50_s": 0.2, "llama_cpp_bf16_tok_s": 90.0},
        ],
        "peers": {"llama.cpp": {"status": status, "variants": variants}},
        "goals": {"runtime_over_llama_cpp_bf16": {"value": 0.25, "target": ">= 1.0", "met": False}},
    }


def test_the_peer_table_puts_the_runtime_first_and_says_why_a_peer_is_missing():
    table = peer_table(_perf())
    assert table["ns"] == [1, 8]
    runtime, bf16, q8 = table["rows"]
    assert (runtime["engine"], runtime["decode_tok_s"], runtime["batch_tok_s"]) == (
        "Kakeya runtime",
        5.0,
        [5.0, 40.0],
    )
    assert (bf16["engine"], bf16["decode_tok_s"], bf16["runtime_over_peer"]) == (
        "llama.cpp BF16",
        20.0,
        0.25,
    )
    assert bf16["batch_tok_s"] == [20.0, 90.0] and bf16["tokens"] == "9 / 128"
    assert bf16["logits"] == "0.9957, 9 / 10" and runtime["logits"] == ""
    assert (q8["status"], q8["reason"]) == ("not installed", "llama_cpp cannot be imported")
    assert q8["decode_tok_s"] is None and q8["batch_tok_s"] == [None, None]


def test_without_peers_there_is_no_table():
    perf = _perf()
    del perf["peers"]
    assert peer_table(perf)["rows"] == []
    assert 'id="peers"' not in render_html({"perf": perf}, [], {})


def test_the_report_shows_the_peer_rows_in_the_perf_section():
    html = render_html({"perf": _perf()}, [], {})
    start = html.index('id="peers"')
    table = html[start : html.index("</table>", start)]
    assert "<th>n=1 tok/s</th><th>n=8 tok/s</th>" in table
    assert "<td>llama.cpp BF16</td><td>ok</td><td>20.0</td><td>0.25</td><td>20.0</td>" in table
    assert "<td>not installed: llama_cpp cannot be imported</td>" in table
    assert "<td>9 / 128</td><td>0.9957, 9 / 10</td>" in table
    assert html.index('id="concurrency"') < start < html.index('id="perf-goals"')


def test_the_absent_peer_is_one_row_saying_not_installed():
    html = render_html({"perf": _perf("not installed")}, [], {})
    table = html[html.index('id="peers"') :]
    assert "<td>llama.cpp BF16</td><td>not installed: llama_cpp" in table


def test_the_concurrency_plot_draws_the_peer_beside_the_runtime():
    rate, _ = plots.plot_concurrency(_perf()).axes
    labels = [line.get_label() for line in rate.get_lines()]
    assert labels == ["runtime (in-process)", "llama.cpp BF16"]
    assert list(rate.get_lines()[1].get_ydata()) == [20.0, 90.0]
