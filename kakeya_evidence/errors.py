"""Errors raised by the evidence pipeline.

One root exception carries structured fields, so the runner can put the cause in
the stage table without parsing messages::

    EvidenceError            root: stage, reason, exit_code
     +-- ParameterError      invalid user input (unknown device, bad timeout, ...)
     +-- OutputDirError      the output directory cannot be written
     +-- StageError          a stage ran and ended not ok (failed, crashed, timeout)
          +-- CacheMissError the model is not in the HF cache (names the prewarm command)
"""

from __future__ import annotations

__all__ = ["CacheMissError", "EvidenceError", "OutputDirError", "ParameterError", "StageError"]


class EvidenceError(Exception):
    """Root of the pipeline's errors.

    Attributes:
        stage: The stage the error belongs to, or "" for the runner itself.
        reason: One line for the stage table.
        exit_code: The process exit code this error maps to (always 2: a stage could not run).
    """

    exit_code = 2

    def __init__(self, reason: str, *, stage: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.stage = stage


class ParameterError(EvidenceError):
    """A parameter is invalid; the message names the field and the bound."""


class OutputDirError(EvidenceError):
    """The output directory cannot be created or written."""


class StageError(EvidenceError):
    """A stage ended with a status other than ok.

    Attributes:
        status: The stage status (failed, crashed, timeout).
    """

    def __init__(self, reason: str, *, stage: str, status: str = "failed") -> None:
        super().__init__(reason, stage=stage)
        self.status = status


class CacheMissError(StageError):
    """The model is missing from the Hugging Face cache."""
