"""Frozen configuration for the serving surfaces (gRPC, HTTP shim), built once at the edge."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from inference_engine.tenancy import DEFAULT_TOKEN_NAME, parse_token_lines

TOKEN_ENV = "KAKEYA_TOKEN"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class ServerConfig:
    """Where and how the surfaces listen, and the shim's bounds on a request.

    Ports: 0 picks a free port; `http_port` -1 disables the HTTP shim. `token` switches
    bearer-token auth on for both surfaces (`None`: off); it is kept out of `repr`.
    The HTTP bounds apply before any work: a request line over `max_http_line_bytes` is
    414, a request head over `max_http_head_bytes` 431, a head not complete within
    `http_header_timeout_s` 408; a prompt over `max_prompt_chars` characters is refused
    before it is templated or tokenized. `tokens` are named bearer tokens, each its own
    identity (`tenancy`), accepted beside `token` (named `default`). `reflection`
    registers gRPC server reflection.
    """

    host: str = LOOPBACK
    grpc_port: int = 50051
    http_port: int = 8000
    token: str | None = field(default=None, repr=False)
    tokens: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # (name, token) pairs
    max_request_bytes: int = 4 * 1024 * 1024
    max_http_body_bytes: int = 1024 * 1024
    max_http_line_bytes: int = 8 * 1024
    max_http_head_bytes: int = 16 * 1024
    http_header_timeout_s: float = 10.0
    max_prompt_chars: int = 64 * 1024
    http_default_max_tokens: int = 256
    shutdown_grace_s: float = 5.0
    reflection: bool = True

    @property
    def auth_enabled(self) -> bool:
        return bool(self.token or self.tokens)


def resolve_token(
    flag: str | None, environ: dict[str, str] | None = None, token_file: str | None = None
) -> str | None:
    """The bearer token from `--token-file`, else the flag, else `KAKEYA_TOKEN`; else `None`.

    A file keeps the token out of the process list (where a flag shows).

    Raises:
        ValueError: the token file cannot be read or holds no token.
    """
    if token_file:
        return read_token_file(token_file)
    if flag:
        return flag
    env = os.environ if environ is None else environ
    return env.get(TOKEN_ENV) or None


def read_token_file(path: str) -> str:
    """The token in `path`: its content without surrounding whitespace.

    Raises:
        ValueError: unreadable, not UTF-8, or empty.
    """
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read the token file {path}: {type(error).__name__}") from error
    if not token:
        raise ValueError(f"the token file {path} is empty")
    return token


def resolve_tokens(
    flag: str | None, environ: dict[str, str] | None = None, token_file: str | None = None
) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """`(token, named tokens)` for `ServerConfig`: a token file of `name:token` lines gives
    named tokens; one holding a single token (the old format), the flag or `KAKEYA_TOKEN`
    give `token` (its identity is `token:default`).

    Raises:
        ValueError: the token file cannot be read, is empty, or is malformed.
    """
    if not token_file:
        return resolve_token(flag, environ), ()
    table = parse_token_lines(read_token_file(token_file), f"token file {token_file}")
    if list(table.values()) == [DEFAULT_TOKEN_NAME]:
        return next(iter(table)), ()
    return None, tuple((name, token) for token, name in table.items())
