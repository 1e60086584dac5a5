"""The reproduction's one error: it could not run (exit 2), a branch of EvidenceError::

EvidenceError (kakeya_evidence.errors)
 +-- CannotReproduce   no evidence, a dirty original, a missing commit, no venv, no run
"""

from __future__ import annotations

from kakeya_evidence.errors import EvidenceError

__all__ = ["CannotReproduce"]


class CannotReproduce(EvidenceError):
    """The reproduction could not run; the reason says what is missing (exit code 2)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, stage="reproduce")
