"""Secrets from the environment never survive into evidence files."""

from __future__ import annotations

from pathlib import Path

from kakeya_evidence.stages.redact import REDACTED, redact_files, redact_text, secret_values


def test_secret_values_are_the_known_variables_longest_first():
    env = {"KAKEYA_TOKEN": "abcdefgh", "GITHUB_TOKEN": "ghs_0123456789", "HOME": "/root"}
    assert secret_values(env) == ["ghs_0123456789", "abcdefgh"]
    assert secret_values({"KAKEYA_TOKEN": "abc"}) == []  # too short to redact safely


def test_text_and_files_are_scrubbed_in_place(tmp_path: Path):
    secrets = ["s3cr3t-token"]
    assert redact_text("Bearer s3cr3t-token!", secrets) == f"Bearer {REDACTED}!"
    log = tmp_path / "log"
    log.write_bytes(b"x s3cr3t-token y\n")
    clean = tmp_path / "clean"
    clean.write_bytes(b"nothing here")
    redact_files([log, clean, tmp_path / "missing"], secrets)
    assert log.read_bytes() == f"x {REDACTED} y\n".encode()
    assert clean.read_bytes() == b"nothing here"
