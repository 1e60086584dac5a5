"""Frozen configuration for the serving surfaces (gRPC, HTTP shim), built once at the edge."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

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
    before it is templated or tokenized. `reflection` registers gRPC server reflection.
    """

    host: str = field(default=LOOPBACK, metadata={"help": "bind address (default: loopback)"})
    grpc_port: int = field(default=50051, metadata={"help": "0 picks a free port"})
    http_port: int = field(default=8000, metadata={"help": "0 picks a free port; -1 disables"})
    # --token, --token-file (one of them) and --no-reflection: inference_engine/cli.py
    token: str | None = field(default=None, repr=False, metadata={"cli": False})
    max_request_bytes: int = field(default=4 * 1024 * 1024, metadata={"cli": False})
    max_http_body_bytes: int = field(default=1024 * 1024, metadata={"cli": False})
    max_http_line_bytes: int = field(default=8 * 1024, metadata={"cli": False})
    max_http_head_bytes: int = field(default=16 * 1024, metadata={"cli": False})
    http_header_timeout_s: float = field(default=10.0, metadata={"cli": False})
    max_prompt_chars: int = field(default=64 * 1024, metadata={"cli": False})
    http_default_max_tokens: int = field(default=256, metadata={"cli": False})
    shutdown_grace_s: float = field(default=5.0, metadata={"cli": False})
    reflection: bool = field(default=True, metadata={"cli": False})
    max_concurrent_rpcs: int = field(
        default=1024,
        metadata={
            "help": "RuntimeService calls in flight at once, in all; one more is answered "
            "RESOURCE_EXHAUSTED at once"
        },
    )
    max_concurrent_rpcs_per_peer: int = field(
        default=256,
        metadata={
            "help": "RuntimeService calls in flight at once on one client connection; one "
            "more is answered RESOURCE_EXHAUSTED at once"
        },
    )

    @property
    def auth_enabled(self) -> bool:
        return bool(self.token)


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
