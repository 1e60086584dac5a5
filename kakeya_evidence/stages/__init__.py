"""The pipeline's stages: host check, model cache, the pytest suite (and its plugin,
result record and secret redaction). Each stage writes DIR/stages/<name>.json."""

from __future__ import annotations

from kakeya_evidence.common.files import STAGES, read_stage, stage_path, write_stage

__all__ = ["STAGES", "read_stage", "stage_path", "write_stage"]
