"""The bench's SDK client process: a separate process, the SDK only, real measurements."""

from __future__ import annotations

import os
import signal

import pytest

from inference_engine.session.events import GenerationParams, TokenEvent
from kakeya_evidence.bench.sdk_process import SdkProcess

PROMPT = [5, 17, 3, 99, 42, 7, 250, 11]
RUNTIME_MODULES = ("torch", "transformers", "inference_engine")


def test_the_client_process_measures_the_sdk_without_the_runtime(serve_runtime) -> None:
    server = serve_runtime(http=False)
    sid = server.engine.create_session().session_id
    server.engine.append(sid, PROMPT)
    events = server.engine.generate(sid, GenerationParams(max_tokens=6))
    expected = tuple(e.token_id for e in events if isinstance(e, TokenEvent))
    with SdkProcess(server.grpc_address) as client:
        loaded = set(client.hello["modules"])
        assert "kakeya" in loaded and "grpc" in loaded
        assert not loaded & set(RUNTIME_MODULES)
        batched = client.decode(PROMPT, 6)
        per_token = client.decode(PROMPT, 6, batch_tokens=False)
        together = client.batch([PROMPT, PROMPT[:4]], 5)
    assert batched.token_ids == per_token.token_ids == expected
    assert 0 < batched.ttft_s == batched.stamps_s[0] <= batched.stamps_s[-1]
    assert [len(stamps) for stamps in together.stamps_s] == [5, 5]


def test_a_failed_measurement_raises_with_the_clients_message(serve_runtime) -> None:
    server = serve_runtime(http=False)
    vocab = server.engine.vocab_size
    with SdkProcess(server.grpc_address) as client:
        with pytest.raises(RuntimeError, match="InvalidArgumentError"):
            client.decode([vocab + 5], 3)  # a token id outside the vocabulary
        assert len(client.decode(PROMPT, 3).token_ids) == 3  # the process serves on


def test_a_client_process_that_dies_is_an_error_not_a_hang(serve_runtime) -> None:
    server = serve_runtime(http=False)
    client = SdkProcess(server.grpc_address)
    try:
        os.kill(client._proc.pid, signal.SIGKILL)
        with pytest.raises(RuntimeError, match="died"):
            client.decode(PROMPT, 3)
    finally:
        client.close()
