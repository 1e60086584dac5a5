"""Points 4 and 5: bytes that are no request, and identifiers of absurd length.

Random bytes to every RuntimeService method are INVALID_ARGUMENT with no traceback on
stderr; with auth on, a caller without a token gets UNAUTHENTICATED for them (the token
is checked before the bytes are decoded), and such noise is counted in
`request_errors{code="UNAUTHENTICATED"}` without a log line per call. Session ids and
labels have length limits (INVALID_ARGUMENT, also for a 1 MB id, which used to come back
whole and burst the trailers into RESOURCE_EXHAUSTED), and errors quote a client's string
only as a short prefix.
"""

from __future__ import annotations

import logging
import random

import grpc
import pytest
from reliability_support import metric

import kakeya
from kakeya.v1 import runtime_pb2 as pb
from kakeya.v1 import runtime_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration

SERVICE = "/kakeya.v1.RuntimeService/"
UNARY = ("CreateSession", "AppendTokens", "GetSessionInfo", "CloseSession")
SHORT_DETAILS = 200


def noise(seed: int, size: int) -> bytes:
    """Random bytes that cannot parse: field number 0 is never valid in protobuf."""
    return b"\x00" + random.Random(seed).randbytes(size)


def send_noise(channel: grpc.Channel, method: str, payload: bytes, metadata=()) -> grpc.RpcError:
    if method == "Generate":
        call = channel.unary_stream(SERVICE + method)
        with pytest.raises(grpc.RpcError) as raised:
            list(call(payload, metadata=metadata))
    else:
        call = channel.unary_unary(SERVICE + method)
        with pytest.raises(grpc.RpcError) as raised:
            call(payload, metadata=metadata)
    return raised.value


@pytest.mark.parametrize("method", [*UNARY, "Generate"])
def test_random_bytes_are_invalid_argument_without_a_traceback(
    serve_runtime, method, capfd, caplog
) -> None:
    caplog.set_level(logging.INFO)
    server = serve_runtime(http=False)
    with grpc.insecure_channel(server.grpc_address) as channel:
        for seed, size in enumerate((1, 16, 700, 64 * 1024)):
            error = send_noise(channel, method, noise(seed, size))
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (size, error.details())
            assert len(error.details()) < SHORT_DETAILS
        stub = pb_grpc.RuntimeServiceStub(channel)
        assert stub.CreateSession(pb.CreateSessionRequest()).session.session_id  # serving
    err = capfd.readouterr().err
    assert "Traceback" not in err and len(err) < 200, err[-500:]
    assert [r.getMessage() for r in caplog.records if r.name != "httpx"] == []
    assert (
        metric(server.engine, "request_errors_total", surface="grpc", code="INVALID_ARGUMENT") == 4
    )
    assert metric(server.engine, "session_active") == 1


def test_without_a_token_noise_is_unauthenticated_counted_and_never_logged(
    serve_runtime, capfd, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    server = serve_runtime(token="noise-token", http=False)
    calls = 0
    with grpc.insecure_channel(server.grpc_address) as channel:
        for method in (*UNARY, "Generate"):
            for seed in range(10):
                error = send_noise(channel, method, noise(seed, 300))
                assert error.code() == grpc.StatusCode.UNAUTHENTICATED
                calls += 1
        wrong = (("authorization", "Bearer not-it"),)
        error = send_noise(channel, "AppendTokens", noise(99, 300), wrong)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        calls += 1
        right = (("authorization", "Bearer noise-token"),)
        error = send_noise(channel, "AppendTokens", noise(99, 300), right)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # past auth: now decoded
    counted = metric(server.engine, "request_errors_total", surface="grpc", code="UNAUTHENTICATED")
    assert counted == calls
    err = capfd.readouterr().err
    assert "Traceback" not in err and len(err) < 200, err[-500:]
    logged = [r for r in caplog.records if r.levelno >= logging.INFO or "auth" in r.getMessage()]
    assert logged == []


# -- identifiers ---------------------------------------------------------------------------


def test_huge_session_ids_are_invalid_argument_with_short_details(runtime) -> None:
    with grpc.insecure_channel(runtime.grpc_address) as channel:
        stub = pb_grpc.RuntimeServiceStub(channel)
        for size in (65, 10_000, 1_000_000):
            sid = "sess_" + "A" * size
            calls = {
                "append": lambda s=sid: stub.AppendTokens(
                    pb.AppendTokensRequest(session_id=s, token_ids=[5])
                ),
                "info": lambda s=sid: stub.GetSessionInfo(pb.GetSessionInfoRequest(session_id=s)),
                "close": lambda s=sid: stub.CloseSession(pb.CloseSessionRequest(session_id=s)),
                "generate": lambda s=sid: list(
                    stub.Generate(pb.GenerateRequest(session_id=s, max_tokens=2))
                ),
            }
            for name, call in calls.items():
                with pytest.raises(grpc.RpcError) as raised:
                    call()
                code, details = raised.value.code(), raised.value.details() or ""
                assert code == grpc.StatusCode.INVALID_ARGUMENT, (name, size, code)
                assert "session_id" in details and len(details) < SHORT_DETAILS, (name, size)


def test_unknown_ids_are_quoted_as_a_short_prefix(runtime) -> None:
    with kakeya.Client(runtime.grpc_address, timeout=60) as client:
        unknown = "sess_" + "Z" * 55  # within the length limit, but not an id we issued
        with pytest.raises(kakeya.SessionNotFoundError) as raised:
            client.session(unknown).info()
        assert len(raised.value.message) < 100 and unknown not in raised.value.message


def test_labels_have_a_length_limit(runtime) -> None:
    limit = runtime.engine.config.limits.max_label_chars
    with kakeya.Client(runtime.grpc_address, timeout=60) as client:
        with client.create_session(label="L" * limit) as session:
            assert session.info().label == "L" * limit
        for size in (limit + 1, 1_000_000):
            with pytest.raises(kakeya.InvalidArgumentError) as raised:
                client.create_session(label="L" * size)
            assert len(raised.value.message) < SHORT_DETAILS
    assert metric(runtime.engine, "session_active") == 0
