"""Bearer-token parsing, comparison and sources (flag, file, environment); never in a repr."""

from __future__ import annotations

import pytest

from inference_engine.server.auth import authorized, bearer_token, metadata_value, token_matches
from inference_engine.server.config import TOKEN_ENV, ServerConfig, resolve_token


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("", None), (None, None)],
)
def test_bearer_token_parses_only_bearer_headers(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_token_comparison() -> None:
    assert token_matches("s3cret", "s3cret")
    assert not token_matches("s3cre", "s3cret")
    assert not token_matches(None, "s3cret")
    assert not token_matches("ß3cret", "s3cret")


def test_authorized_when_auth_off_or_token_right() -> None:
    assert authorized(None, None)
    assert authorized("Bearer x", "x")
    assert not authorized(None, "x")
    assert not authorized("Bearer y", "x")


def test_token_from_flag_then_environment() -> None:
    assert resolve_token("flag", {TOKEN_ENV: "env"}) == "flag"
    assert resolve_token(None, {TOKEN_ENV: "env"}) == "env"
    assert resolve_token(None, {TOKEN_ENV: ""}) is None
    assert resolve_token(None, {}) is None


def test_a_token_file_comes_first_and_is_stripped(tmp_path) -> None:
    path = tmp_path / "token"
    path.write_text("  file-token\n")
    assert resolve_token("flag", {TOKEN_ENV: "env"}, token_file=str(path)) == "file-token"
    path.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        resolve_token(None, {}, token_file=str(path))
    with pytest.raises(ValueError, match="cannot read"):
        resolve_token(None, {}, token_file=str(tmp_path / "missing"))
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match="cannot read") as raised:
        resolve_token(None, {}, token_file=str(path))
    assert "\\xff" not in str(raised.value)


def test_metadata_values_decode_leniently() -> None:
    metadata = (("x", "1"), ("authorization", b"Bearer \xffz"))
    assert metadata_value(metadata, "authorization") == "Bearer \ufffdz"
    assert metadata_value(None, "authorization") is None


def test_token_never_in_repr() -> None:
    config = ServerConfig(token="very-secret-token")
    assert "very-secret-token" not in repr(config)
    assert config.auth_enabled and not ServerConfig().auth_enabled


def test_default_bind_is_loopback() -> None:
    assert ServerConfig().host == "127.0.0.1"


def test_named_tokens_identify_their_caller_and_anything_else_is_refused() -> None:
    from inference_engine.server.auth import Authenticator
    from inference_engine.tenancy import Identity

    auth = Authenticator.of(None, (("alice", "tok-a"), ("bob", "tok-b")))
    assert auth.identify("Bearer tok-a", "ipv4:127.0.0.1:1") == Identity.for_token("alice")
    assert auth.identify("Bearer tok-b", None) == Identity.for_token("bob")
    assert auth.identify("Bearer tok-c", None) is None
    assert auth.identify(None, None) is None


def test_without_auth_the_caller_is_its_peer_host() -> None:
    from inference_engine.server.auth import Authenticator
    from inference_engine.tenancy import Identity

    auth = Authenticator.of(None)
    assert not auth.enabled
    assert auth.identify(None, "ipv4:127.0.0.1:5555") == Identity("peer:127.0.0.1")


def test_a_single_token_is_the_default_identity() -> None:
    from inference_engine.server.auth import Authenticator
    from inference_engine.tenancy import Identity

    assert Authenticator.of("x").identify("Bearer x", None) == Identity.for_token("default")


def test_token_files_give_named_tokens_or_the_old_single_token(tmp_path) -> None:
    from inference_engine.server.config import resolve_tokens

    single = tmp_path / "one"
    single.write_text("only-token\n")
    assert resolve_tokens(None, {}, str(single)) == ("only-token", ())
    named = tmp_path / "many"
    named.write_text("alice:tok-a\nbob:tok-b\n")
    token, pairs = resolve_tokens(None, {}, str(named))
    assert token is None and pairs == (("alice", "tok-a"), ("bob", "tok-b"))
    assert "tok-a" not in repr(ServerConfig(tokens=pairs))
    assert ServerConfig(tokens=pairs).auth_enabled
