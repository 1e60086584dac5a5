"""Point 9, the rest: shutdown is its own answer, and the token can stay out of `ps`.

Once shutdown has begun, CreateSession and AppendTokens (and the shim) answer UNAVAILABLE
while reads and closes still work, and a generation it cuts ends with stop reason SHUTDOWN,
not CANCELLED. `serve --token-file` keeps the token out of the process list; a bad token
file stops `serve` before the model loads.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import httpx
import pytest
from reliability_support import REPO

import kakeya
from kakeya.v1 import runtime_pb2 as pb
from kakeya.v1 import runtime_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration

PROMPT = list(range(10, 40))


def test_create_and_append_are_unavailable_once_shutdown_began(runtime) -> None:
    engine = runtime.engine
    with kakeya.Client(runtime.grpc_address, timeout=60) as client:
        session = client.create_session()
        session.append(PROMPT)
        engine.shutdown()  # `serve` does this first on SIGTERM, before the servers stop
        with pytest.raises(kakeya.RuntimeUnavailableError):
            client.create_session()
        with pytest.raises(kakeya.RuntimeUnavailableError):
            session.append([5])
        with pytest.raises(kakeya.RuntimeUnavailableError):
            list(session.generate(2))
        assert session.info().history_tokens == len(PROMPT)  # reads still answer
        session.close()
    body = {"model": engine.model_id, "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(f"{runtime.http_url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "UNAVAILABLE"


def test_a_generation_cut_by_shutdown_says_so_on_the_wire(runtime) -> None:
    with grpc.insecure_channel(runtime.grpc_address) as channel:
        stub = pb_grpc.RuntimeServiceStub(channel)
        sid = stub.CreateSession(pb.CreateSessionRequest()).session.session_id
        stub.AppendTokens(pb.AppendTokensRequest(session_id=sid, token_ids=PROMPT))
        events = stub.Generate(pb.GenerateRequest(session_id=sid, max_tokens=4000))
        assert next(events).WhichOneof("event") == "token"
        threading.Thread(target=runtime.engine.shutdown).start()
        done = [e.done for e in events if e.WhichOneof("event") == "done"]
    assert len(done) == 1 and done[0].stop_reason == pb.STOP_REASON_SHUTDOWN
    assert done[0].generated_tokens < 4000


# -- the token ----------------------------------------------------------------------------


def serve_command(model_config, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "inference_engine.cli", "serve",
        "--model", model_config.model_id, "--device", model_config.device,
        "--grpc-port", "0", "--http-port", "-1", *extra,
    ]  # fmt: skip


def test_token_file_keeps_the_token_out_of_the_process_list(model_config, tmp_path) -> None:
    token = "file-held-" + os.urandom(8).hex()
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("KAKEYA_TOKEN", None)
    process = subprocess.Popen(
        serve_command(model_config, "--token-file", str(token_file)),
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    killer = threading.Timer(120, process.kill)  # a hung start must not hang the suite
    killer.start()
    try:
        line = process.stdout.readline()
        assert line.startswith("grpc listening on "), line + process.stderr.read()
        address = line.split()[-1]
        banner = [line]  # through its last line: communicate() cannot see what readline buffered
        while not banner[-1].startswith("decode batches of up to "):
            banner.append(process.stdout.readline())
            assert banner[-1], process.stderr.read()
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        assert token.encode() not in cmdline and str(token_file).encode() in cmdline
        with kakeya.Client(address, token=token, timeout=60) as client:
            assert client.create_session().session_id
        with (
            kakeya.Client(address, token=token + "x", timeout=60) as client,
            pytest.raises(kakeya.UnauthenticatedError),
        ):
            client.create_session()
    finally:
        killer.cancel()
        process.terminate()
        out, err = process.communicate(timeout=60)
    assert token not in "".join(banner) + out + err


def test_a_bad_token_file_fails_before_the_model_loads(model_config, tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for path in (empty, tmp_path / "missing"):
        result = subprocess.run(
            serve_command(model_config, "--token-file", str(path)),
            cwd=REPO, capture_output=True, text=True, timeout=120,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )  # fmt: skip
        assert result.returncode == 2 and "token file" in result.stderr, result.stderr[-300:]
        assert "listening" not in result.stdout
