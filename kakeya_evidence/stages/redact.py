"""Keep secrets out of evidence: whatever a test printed passes through here first.

The pytest subprocess needs the real environment (an auth test may use the token), so
the secrets are scrubbed from what it wrote before anything is parsed or copied.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

SECRET_ENV_VARS = (
    "KAKEYA_TOKEN",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "ACTIONS_RUNTIME_TOKEN",
)
REDACTED = "<redacted>"
_MIN_SECRET_CHARS = 6  # shorter values would redact ordinary words


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """The secret values present in `env` (default: this process), longest first."""
    env = os.environ if env is None else env
    values = {env[name] for name in SECRET_ENV_VARS if len(env.get(name, "")) >= _MIN_SECRET_CHARS}
    return sorted(values, key=len, reverse=True)


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """text with every secret replaced."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def redact_files(paths: Iterable[Path], secrets: list[str]) -> None:
    """Rewrite each existing file with every secret replaced, in place (.gz files too)."""
    if not secrets:
        return
    encoded = [(s.encode(), REDACTED.encode()) for s in secrets]
    for path in paths:
        if not path.is_file():
            continue
        packed = path.suffix == ".gz"
        try:
            data = original = gzip.decompress(path.read_bytes()) if packed else path.read_bytes()
        except (OSError, EOFError):
            path.unlink()  # unreadable, so it cannot be scrubbed: it must not stay
            continue
        for secret, mask in encoded:
            data = data.replace(secret, mask)
        if data != original:
            path.write_bytes(gzip.compress(data) if packed else data)
