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
