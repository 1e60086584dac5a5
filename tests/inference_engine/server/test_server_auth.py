"""Bearer-token parsing and comparison; the token never appears in a repr."""

from __future__ import annotations

import pytest

from inference_engine.server.auth import (
    BearerAuthInterceptor,
    authorized,
    bearer_token,
    token_matches,
)
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


def test_token_never_in_repr() -> None:
    config = ServerConfig(token="very-secret-token")
    assert "very-secret-token" not in repr(config)
    assert config.auth_enabled and not ServerConfig().auth_enabled
    assert "very-secret-token" not in repr(BearerAuthInterceptor("very-secret-token"))


def test_default_bind_is_loopback() -> None:
    assert ServerConfig().host == "127.0.0.1"
