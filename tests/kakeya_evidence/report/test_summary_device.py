"""summary.md: the model line never calls an unknown device resolved."""

from __future__ import annotations

from kakeya_evidence.report.summary import model_line


def test_an_unknown_device_is_not_shown_as_resolved():
    model = {"id": "m", "device": "gpu", "device_requested": "gpu", "dtype_requested": "auto"}
    assert model_line(model).startswith("m on gpu (not resolved: the model was not loaded)")


def test_a_resolved_device_is_shown_with_what_was_requested():
    model = {"id": "m", "device": "cpu", "device_requested": "auto", "dtype": "bfloat16"}
    assert model_line(model) == "m on cpu (requested auto), dtype bfloat16"
