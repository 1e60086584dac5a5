"""A GitHub App's installation token, standard library only: PEM -> RS256 JWT -> token.

Why an App: every workflow of the repository can give ``GITHUB_TOKEN`` ``checks:
write``, and all those check runs come from the one "GitHub Actions" app, so branch
protection cannot tell main's "Mac M4 evidence" from one a branch workflow posted.
A check run created with the installation token of the project's own App carries
that App, and a ruleset can require the check *from that App*. Its private key lives
in an environment that only main may deploy to, so only main's workflow holds it.

The standard library has no RSA, so this module signs itself: it reads the PEM
(PKCS#1 ``RSA PRIVATE KEY`` or PKCS#8 ``PRIVATE KEY``) with a small DER reader and
signs with RSASSA-PKCS1-v1_5 over SHA-256 (RFC 8017 §8.2), using the CRT and checking
the signature with the public exponent before it leaves (no faulty signature, which
could leak the key, is ever sent). tests check it against ``openssl dgst -verify``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
from dataclasses import dataclass

from kakeya_evidence.github.client import GitHubClient

__all__ = [
    "AppCredentials",
    "AppToken",
    "RsaKey",
    "app_jwt",
    "installation_token",
    "load_private_key",
    "sign_rs256",
]

# DER of the DigestInfo AlgorithmIdentifier for SHA-256 (RFC 8017 §9.2, note 1).
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
RSA_ENCRYPTION_OID = bytes.fromhex("2a864886f70d010101")  # 1.2.840.113549.1.1.1
JWT_LIFETIME_S = 540  # GitHub allows at most 10 minutes
JWT_BACKDATE_S = 60  # tolerate clock drift, as GitHub's documentation advises
# What publish needs and nothing more.
TOKEN_PERMISSIONS = {"checks": "write", "pull_requests": "write", "metadata": "read"}
_PEM_RE = re.compile(
    r"-----BEGIN (RSA PRIVATE KEY|PRIVATE KEY)-----\s*(.+?)\s*-----END \1-----", re.S
)


@dataclass(frozen=True)
class RsaKey:
    """An RSA private key (the PKCS#1 fields)."""

    n: int
    e: int
    d: int
    p: int
    q: int
    dp: int
    dq: int
    qinv: int

    def __repr__(self) -> str:  # never the private numbers in a log or a traceback
        return f"RsaKey({self.n.bit_length()} bits)"

    @property
    def size_bytes(self) -> int:
        """The modulus length in bytes (a signature's length)."""
        return (self.n.bit_length() + 7) // 8


@dataclass(frozen=True)
class AppCredentials:
    """The App's id (or client id) and private key, from the environment."""

    app_id: str
    private_key_pem: str

    def __repr__(self) -> str:
        return f"AppCredentials(app_id={self.app_id!r})"


@dataclass(frozen=True)
class AppToken:
    """An installation token, and the login its comments and check runs carry."""

    token: str
    login: str
    app_slug: str

    def __repr__(self) -> str:
        return f"AppToken(login={self.login!r})"


def load_private_key(pem: str) -> RsaKey:
    """Parse a PEM RSA private key (PKCS#1 or PKCS#8).

    Raises:
        ValueError: It is not a PEM RSA private key this reader understands.
    """
    match = _PEM_RE.search(pem.replace("\\n", "\n"))  # secrets pasted with literal \n
    if not match:
        raise ValueError("not a PEM RSA private key (BEGIN RSA PRIVATE KEY or PRIVATE KEY)")
    try:
        der = base64.b64decode("".join(match.group(2).split()), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"the PEM body is not base64: {exc}") from None
    if match.group(1) == "PRIVATE KEY":
        der = _pkcs8_inner(der)
    return _pkcs1_key(der)


def sign_rs256(key: RsaKey, message: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 with SHA-256 over ``message``.

    Raises:
        ValueError: The key is too short for the encoding, or the signature fails
            its own check (a broken key).
    """
    k = key.size_bytes
    t = SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
    if k < len(t) + 11:
        raise ValueError("RSA key too short for a SHA-256 signature")
    em = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    m = int.from_bytes(em, "big")
    s1, s2 = pow(m, key.dp, key.p), pow(m, key.dq, key.q)
    s = s2 + key.q * ((key.qinv * (s1 - s2)) % key.p)  # Garner's CRT recombination
    if pow(s, key.e, key.n) != m:
        raise ValueError("the RSA key is inconsistent: its signature does not verify")
    return s.to_bytes(k, "big")


def app_jwt(app_id: str, key: RsaKey, now: float | None = None) -> str:
    """The App's JSON Web Token (RS256), valid for nine minutes."""
    issued = int(now if now is not None else time.time()) - JWT_BACKDATE_S
    header = {"alg": "RS256", "typ": "JWT"}
    # GitHub takes the App id (a number) or its client id (a string) as the issuer.
    issuer: int | str = int(app_id) if app_id.isdigit() else app_id
    payload = {"iat": issued, "exp": issued + JWT_BACKDATE_S + JWT_LIFETIME_S, "iss": issuer}
    signing_input = _b64url(_json(header)) + "." + _b64url(_json(payload))
    return signing_input + "." + _b64url(sign_rs256(key, signing_input.encode("ascii")))


def installation_token(
    client: GitHubClient, repo: str, credentials: AppCredentials, now: float | None = None
) -> AppToken:
    """Trade the App's JWT for an installation token limited to ``repo`` and publish's needs.

    Raises:
        ValueError: The private key cannot be read.
        GitHubApiError: The App is not installed on ``repo``, or a request failed.
        KeyError, TypeError: GitHub's answer lacks the expected fields.
    """
    jwt = app_jwt(credentials.app_id, load_private_key(credentials.private_key_pem), now)
    app = client.request("GET", "/app", token=jwt).data or {}
    installation = client.request("GET", f"/repos/{repo}/installation", token=jwt).data or {}
    body = {"repositories": [repo.split("/", 1)[1]], "permissions": TOKEN_PERMISSIONS}
    url = f"/app/installations/{int(installation['id'])}/access_tokens"
    minted = client.request("POST", url, body, token=jwt).data or {}
    slug = str(app["slug"])
    return AppToken(str(minted["token"]), f"{slug}[bot]", slug)


# ---------------------------------------------------------------------- DER


def _pkcs8_inner(der: bytes) -> bytes:
    """PrivateKeyInfo ::= SEQUENCE { version, AlgorithmIdentifier, OCTET STRING key }."""
    body = _expect(der, 0, 0x30)[0]
    _version, pos = _read_int(body, 0)
    algorithm, pos = _expect(body, pos, 0x30)
    oid = _expect(algorithm, 0, 0x06)[0]
    if oid != RSA_ENCRYPTION_OID:
        raise ValueError("the PKCS#8 key is not an RSA key")
    return _expect(body, pos, 0x04)[0]


def _pkcs1_key(der: bytes) -> RsaKey:
    """RSAPrivateKey ::= SEQUENCE { version, n, e, d, p, q, dp, dq, qinv }."""
    body = _expect(der, 0, 0x30)[0]
    values, pos = [], 0
    for _ in range(9):
        value, pos = _read_int(body, pos)
        values.append(value)
    version, n, e, d, p, q, dp, dq, qinv = values
    if version != 0:
        raise ValueError("only two-prime RSA keys (version 0) are supported")
    if p * q != n or n.bit_length() < 2048:
        raise ValueError("the RSA key is inconsistent or shorter than 2048 bits")
    return RsaKey(n, e, d, p, q, dp, dq, qinv)


def _expect(data: bytes, pos: int, tag: int) -> tuple[bytes, int]:
    found, value, end = _read_tlv(data, pos)
    if found != tag:
        raise ValueError(f"DER: expected tag 0x{tag:02x} at byte {pos}, got 0x{found:02x}")
    return value, end


def _read_int(data: bytes, pos: int) -> tuple[int, int]:
    value, end = _expect(data, pos, 0x02)
    return int.from_bytes(value, "big", signed=True), end


def _read_tlv(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """One DER tag-length-value at ``pos``: (tag, value, position after it)."""
    if pos + 2 > len(data):
        raise ValueError("DER: truncated")
    tag, length, pos = data[pos], data[pos + 1], pos + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise ValueError("DER: bad length")
        length, pos = int.from_bytes(data[pos : pos + count], "big"), pos + count
    if pos + length > len(data):
        raise ValueError("DER: value runs past the end")
    return tag, data[pos : pos + length], pos + length


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
