"""Frozen configuration for the serving surfaces (gRPC, HTTP shim), built once at the edge."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

TOKEN_ENV = "KAKEYA_TOKEN"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class ServerConfig:
    """Where and how the surfaces listen.

    Ports: 0 picks a free port; `http_port` -1 disables the HTTP shim. `token` switches
    bearer-token auth on for both surfaces (`None`: off); it is kept out of `repr`.
    """

    host: str = LOOPBACK
    grpc_port: int = 50051
    http_port: int = 8000
    token: str | None = field(default=None, repr=False)
    max_request_bytes: int = 4 * 1024 * 1024
    max_http_body_bytes: int = 1024 * 1024
    http_default_max_tokens: int = 256
    shutdown_grace_s: float = 5.0

    @property
    def auth_enabled(self) -> bool:
        return bool(self.token)


def resolve_token(flag: str | None, environ: dict[str, str] | None = None) -> str | None:
    """The bearer token from the flag, else from `KAKEYA_TOKEN`; `None` (auth off) when unset."""
    if flag:
        return flag
    env = os.environ if environ is None else environ
    return env.get(TOKEN_ENV) or None
