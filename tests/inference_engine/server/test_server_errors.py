"""One table maps every runtime error code to a gRPC and an HTTP status."""

from __future__ import annotations

import grpc
import pytest

from inference_engine import errors as core
from inference_engine.server.errors import (
    STATUS_TABLE,
    InternalFault,
    grpc_status,
    http_status,
    openai_error,
)

DESIGN_TABLE = {
    core.ErrorCode.INVALID_ARGUMENT: (grpc.StatusCode.INVALID_ARGUMENT, {400, 422}),
    core.ErrorCode.NOT_FOUND: (grpc.StatusCode.NOT_FOUND, {404}),
    core.ErrorCode.RESOURCE_EXHAUSTED: (grpc.StatusCode.RESOURCE_EXHAUSTED, {429, 503}),
    core.ErrorCode.FAILED_PRECONDITION: (grpc.StatusCode.FAILED_PRECONDITION, {409}),
    core.ErrorCode.UNAUTHENTICATED: (grpc.StatusCode.UNAUTHENTICATED, {401}),
    core.ErrorCode.DEADLINE_EXCEEDED: (grpc.StatusCode.DEADLINE_EXCEEDED, {504}),
    core.ErrorCode.UNAVAILABLE: (grpc.StatusCode.UNAVAILABLE, {503}),
}


def fault_classes() -> list[type[core.RuntimeFault]]:
    found, todo = [], [core.RuntimeFault]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def make(cls: type[core.RuntimeFault]) -> core.RuntimeFault:
    if cls is InternalFault:
        return cls()
    if issubclass(cls, core.InvalidArgument):
        return cls("max_tokens", "must be >= 1")
    if issubclass(cls, core.InvariantViolation):
        return cls("inv1", "lengths differ")
    if issubclass(cls, core.ModelNotCached):
        return cls("kakeya/tiny-qwen3")
    if issubclass(cls, core.ReaderStalled):
        return cls(30.0)
    return cls("boom")


def test_every_error_code_has_exactly_the_design_row() -> None:
    assert set(STATUS_TABLE) == set(core.ErrorCode)
    for code, (grpc_code, http_codes) in DESIGN_TABLE.items():
        assert STATUS_TABLE[code].grpc_code == grpc_code
        assert STATUS_TABLE[code].http_status in http_codes


@pytest.mark.parametrize("cls", fault_classes(), ids=lambda c: c.__name__)
def test_every_fault_class_maps_and_never_to_unknown(cls: type[core.RuntimeFault]) -> None:
    fault = make(cls)
    assert grpc_status(fault) != grpc.StatusCode.UNKNOWN
    internal = fault.code is core.ErrorCode.INTERNAL
    assert (grpc_status(fault) == grpc.StatusCode.INTERNAL) == internal
    assert 400 <= http_status(fault) < 600
    body = openai_error(fault)["error"]
    assert body["message"] == fault.message and body["code"] == fault.code.value


def test_invalid_argument_envelope_names_the_field() -> None:
    body = openai_error(core.InvalidArgument("temperature", "must be finite"))["error"]
    assert body["param"] == "temperature"
    assert body["type"] == "invalid_request_error"
