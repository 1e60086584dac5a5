"""`kakeya-runtime`'s flags reach the frozen configs built at the edge."""

from __future__ import annotations

from inference_engine.cli import build_parser
from inference_engine.server.serve import server_config


def test_reflection_is_on_unless_turned_off() -> None:
    parser = build_parser()
    assert server_config(parser.parse_args(["serve"])).reflection is True
    assert server_config(parser.parse_args(["serve", "--no-reflection"])).reflection is False
