"""Every gRPC status maps to a typed `KakeyaError`; the rows of docs/protocol.md map exactly."""

from __future__ import annotations

import grpc
import pytest

import kakeya.errors as errors
from inference_engine import errors as core
from inference_engine.server.errors import STATUS_TABLE

DESIGN_ROWS = {
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: errors.SessionNotFoundError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.ResourceExhaustedError,
    grpc.StatusCode.FAILED_PRECONDITION: errors.FailedPreconditionError,
    grpc.StatusCode.UNAUTHENTICATED: errors.UnauthenticatedError,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.DeadlineExceededError,
    grpc.StatusCode.UNAVAILABLE: errors.RuntimeUnavailableError,
    grpc.StatusCode.INTERNAL: errors.InternalError,
}


@pytest.mark.parametrize("code", [c for c in grpc.StatusCode if c != grpc.StatusCode.OK])
def test_every_status_maps_to_a_kakeya_error(code: grpc.StatusCode) -> None:
    error = errors.from_status(code, "details")
    assert isinstance(error, errors.KakeyaError)
    assert type(error) is not errors.KakeyaError
    assert error.code == code.name and error.message == "details"


@pytest.mark.parametrize("code", list(core.ErrorCode), ids=lambda c: c.name)
def test_every_status_the_server_sends_maps_to_its_design_row(code: core.ErrorCode) -> None:
    grpc_code = STATUS_TABLE[code].grpc_code
    assert errors.STATUS_TO_ERROR[grpc_code] is DESIGN_ROWS[grpc_code]


def test_locally_closed_is_a_not_found() -> None:
    assert issubclass(errors.SessionClosedError, errors.SessionNotFoundError)


class FakeRpcError(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.NOT_FOUND

    def details(self) -> str:
        return "session s1 not found"


def test_from_rpc_error_keeps_details() -> None:
    error = errors.from_rpc_error(FakeRpcError())
    assert isinstance(error, errors.SessionNotFoundError)
    assert str(error) == "session s1 not found"
