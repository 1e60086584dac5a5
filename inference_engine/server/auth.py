"""Optional bearer-token auth for both surfaces: constant-time compare, token never logged.

The surfaces check it first, before they read or decode a request, and learn the caller's
identity from it (`Authenticator.identify`): the name of the token presented (several
named tokens: `--token-file` with one `name:token` per line; a single token is named
`default`), or, with auth off, the peer address. The gRPC health service is exempt so
that probes need no secret; it reveals nothing but "serving". On HTTP `/healthz` is
exempt for the same reason.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping

from inference_engine.tenancy import DEFAULT_TOKEN_NAME, Identity

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


class Authenticator:
    """The bearer tokens a server accepts, each with its identity's name."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        """`tokens`: `{token: name}`; empty turns auth off (callers are their peer address)."""
        self._tokens = [(token.encode("utf-8"), name) for token, name in tokens.items()]

    @classmethod
    def of(cls, token: str | None, named: Iterable[tuple[str, str]] = ()) -> Authenticator:
        """From a server's single `token` (named `default`) and its `(name, token)` pairs."""
        table = {secret: name for name, secret in named}
        if token:
            table[token] = DEFAULT_TOKEN_NAME
        return cls(table)

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def identify(self, header_value: str | None, peer: str | None) -> Identity | None:
        """The caller's identity, or None when auth is on and the token is missing or wrong.

        Every known token is compared (constant time each), whichever matches.
        """
        if not self._tokens:
            return Identity.for_peer(peer)
        presented = bearer_token(header_value)
        if presented is None:
            return None
        raw = presented.encode("utf-8")
        match: str | None = None
        for secret, name in self._tokens:
            if hmac.compare_digest(raw, secret):
                match = name
        return None if match is None else Identity.for_token(match)
