"""The App's token with the standard library: PEM parsing and RS256 checked by openssl."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import fake_github_actions as actions
import pytest
from fake_github import REPO

from kakeya_evidence.github.app_auth import (
    AppCredentials,
    app_jwt,
    installation_token,
    load_private_key,
    sign_rs256,
)
from kakeya_evidence.github.client import GitHubApiError, GitHubClient

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
APP_ID = 424242


def openssl(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One key made by `openssl genrsa`, as PKCS#8 and PKCS#1 PEM, and its public key."""
    root = tmp_path_factory.mktemp("rsa")
    paths = {name: root / f"{name}.pem" for name in ("pkcs8", "pkcs1", "public")}
    assert openssl("genrsa", "-out", str(paths["pkcs8"]), "2048").returncode == 0
    openssl("rsa", "-in", str(paths["pkcs8"]), "-traditional", "-out", str(paths["pkcs1"]))
    openssl("rsa", "-in", str(paths["pkcs8"]), "-pubout", "-out", str(paths["public"]))
    assert paths["pkcs1"].read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")
    return paths


def modulus(keys: dict[str, Path]) -> int:
    out = openssl("rsa", "-in", str(keys["pkcs8"]), "-noout", "-modulus").stdout.decode()
    return int(out.strip().split("=", 1)[1], 16)


def verify(keys: dict[str, Path], tmp_path: Path, message: bytes, signature: bytes) -> bool:
    (tmp_path / "msg").write_bytes(message)
    (tmp_path / "sig").write_bytes(signature)
    proc = openssl(
        "dgst", "-sha256", "-verify", str(keys["public"]), "-signature",
        str(tmp_path / "sig"), str(tmp_path / "msg"),
    )  # fmt: skip
    return proc.returncode == 0 and b"Verified OK" in proc.stdout


@pytest.mark.parametrize("form", ["pkcs8", "pkcs1"])
def test_signatures_verify_with_openssl(keys, tmp_path, form):
    key = load_private_key(keys[form].read_text())
    assert key.n == modulus(keys) and key.e == 65537
    for message in (b"", b"header.payload", bytes(range(256)) * 40):
        assert verify(keys, tmp_path, message, sign_rs256(key, message))
    assert not verify(keys, tmp_path, b"other", sign_rs256(key, b"header.payload"))


def test_the_jwt_is_rs256_and_verifies_with_openssl(keys, tmp_path):
    token = app_jwt(str(APP_ID), load_private_key(keys["pkcs8"].read_text()), now=1_000_000)
    head, body, sig = token.split(".")
    pad = lambda part: base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))  # noqa: E731
    assert json.loads(pad(head)) == {"alg": "RS256", "typ": "JWT"}
    claims = json.loads(pad(body))
    assert claims["iss"] == APP_ID and claims["exp"] - claims["iat"] <= 600
    assert claims["iat"] < 1_000_000 < claims["exp"]
    assert verify(keys, tmp_path, f"{head}.{body}".encode(), pad(sig))


@pytest.mark.parametrize(
    "pem",
    [
        "not a key",
        "-----BEGIN RSA PRIVATE KEY-----\n!!!!\n-----END RSA PRIVATE KEY-----",
        "-----BEGIN RSA PRIVATE KEY-----\nMAMCAQA=\n-----END RSA PRIVATE KEY-----",
    ],
)
def test_a_bad_key_is_refused_with_a_message(pem):
    with pytest.raises(ValueError):
        load_private_key(pem)


def test_the_key_never_shows_in_a_repr(keys):
    key = load_private_key(keys["pkcs8"].read_text())
    assert str(key.d) not in repr(key) and repr(key) == "RsaKey(2048 bits)"
    creds = AppCredentials(str(APP_ID), keys["pkcs8"].read_text())
    assert "PRIVATE" not in repr(creds)


def test_a_secret_pasted_with_literal_newlines_still_loads(keys):
    flat = keys["pkcs1"].read_text().replace("\n", "\\n")
    assert load_private_key(flat).n == modulus(keys)


def test_the_installation_token_is_minted_against_the_fake(fake, keys):
    actions.add_app(fake, APP_ID, "kakeya-evidence", modulus(keys))
    client = GitHubClient(fake.base_url, None)
    token = installation_token(client, REPO, AppCredentials(str(APP_ID), keys["pkcs8"].read_text()))
    assert token.login == "kakeya-evidence[bot]" and token.app_slug == "kakeya-evidence"
    identity = fake.identities[token.token]
    assert identity["repositories"] == ["kakeya"]  # limited to this repository
    assert identity["permissions"] == {
        "checks": "write", "pull_requests": "write", "metadata": "read",
    }  # fmt: skip
    mint = [r for r in fake.requests if r.path.endswith("/access_tokens")]
    assert len(mint) == 1 and mint[0].authorization.count(".") == 2  # the JWT


def test_a_jwt_signed_by_another_key_is_refused(fake, keys, tmp_path):
    other = tmp_path / "other.pem"
    openssl("genrsa", "-out", str(other), "2048")
    actions.add_app(fake, APP_ID, "kakeya-evidence", modulus(keys))
    client = GitHubClient(fake.base_url, None)
    with pytest.raises(GitHubApiError) as caught:
        installation_token(client, REPO, AppCredentials(str(APP_ID), other.read_text()))
    assert caught.value.status == 401
