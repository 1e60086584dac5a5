"""Optional bearer-token auth for both surfaces: constant-time compare, token never logged.

The surfaces check it first, before they read or decode a request. The gRPC health
service is exempt so that probes need no secret; it reveals nothing but "serving". On
HTTP `/healthz` is exempt for the same reason.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

AUTH_HEADER = "authorization"
BEARER = "bearer "


def bearer_token(header_value: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value, else `None`."""
    if not header_value or not header_value.lower().startswith(BEARER):
        return None
    return header_value[len(BEARER) :].strip()


def token_matches(presented: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented token against the expected one."""
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def authorized(header_value: str | None, expected: str | None) -> bool:
    """True when auth is off, or the header carries the expected bearer token."""
    if not expected:
        return True
    return token_matches(bearer_token(header_value), expected)


def metadata_value(metadata: Iterable[tuple[str, str | bytes]] | None, key: str) -> str | None:
    """The first value of `key` in gRPC metadata (bytes decoded leniently), else `None`."""
    for name, value in metadata or ():
        if name == key:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return None
