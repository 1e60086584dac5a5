"""`kakeya-runtime`'s flags reach the frozen configs built at the edge."""

from __future__ import annotations

from inference_engine.cli import build_parser
from inference_engine.server.serve import server_config


def test_reflection_is_on_unless_turned_off() -> None:
    parser = build_parser()
    assert server_config(parser.parse_args(["serve"])).reflection is True
    assert server_config(parser.parse_args(["serve", "--no-reflection"])).reflection is False


def test_per_identity_flags_and_a_named_token_file_reach_the_configs(tmp_path) -> None:
    from inference_engine.server.serve import runtime_config
    from inference_engine.tenancy import TenancyConfig

    tokens = tmp_path / "tokens"
    tokens.write_text("alice:tok-a\nbob:tok-b\n")
    flags = [
        "serve",
        "--token-file",
        str(tokens),
        "--max-concurrent-per-identity",
        "2",
        "--tokens-per-minute-per-identity",
        "9000",
        "--max-session-bytes",
        "1000000",
    ]
    args = build_parser().parse_args(flags)
    server = server_config(args)
    assert server.token is None and dict(server.tokens) == {"alice": "tok-a", "bob": "tok-b"}
    runtime = runtime_config(args, len(server.tokens))
    assert runtime.tenancy == TenancyConfig(
        identities=2, max_concurrent_per_identity=2, tokens_per_minute_per_identity=9000
    )
    assert runtime.store.max_session_bytes == 1_000_000
    plain = runtime_config(build_parser().parse_args(["serve"]))
    assert plain.tenancy == TenancyConfig()
