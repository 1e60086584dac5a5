"""`kakeya-runtime serve` as a real subprocess: ports, SDK and HTTP traffic, clean SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import httpx
import pytest
from test_grpc_reflection import reflected_pool

import kakeya

REPO = Path(__file__).resolve().parents[2]
TOKEN = "cli-s3cret-token"


@pytest.fixture
def serve_process(model_config):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "KAKEYA_TOKEN": TOKEN}
    command = [
        sys.executable, "-m", "inference_engine.cli", "serve",
        "--model", model_config.model_id, "--device", model_config.device,
        "--grpc-port", "0", "--http-port", "0", "--window", "60", "--max-concurrent", "2",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    yield process
    if process.poll() is None:
        process.kill()
        process.wait(30)


def read_addresses(process: subprocess.Popen) -> tuple[str, str, list[str]]:
    """Read serve's start-up lines, through the last one it prints before it waits.

    Stopping earlier would leave lines in the pipe reader's buffer, where `communicate`
    (which reads the file descriptor itself) never sees them.
    """
    lines: list[str] = []
    while not lines or not lines[-1].startswith("decode batches of up to "):
        line = process.stdout.readline()
        assert line, f"serve exited early: {process.stderr.read()}"
        lines.append(line)
    addresses = {line.split(" listening on ")[0]: line.split()[-1] for line in lines}
    return addresses["grpc"], addresses["http"], lines


def test_serve_end_to_end_then_sigterm(serve_process) -> None:
    timer = threading.Timer(120, serve_process.kill)  # a hung start must not hang the suite
    timer.start()
    try:
        grpc_address, http_url, lines = read_addresses(serve_process)
    finally:
        timer.cancel()
    assert grpc_address.startswith("127.0.0.1:") and http_url.startswith("http://127.0.0.1:")
    with grpc.insecure_channel(grpc_address) as channel:  # reflection is on by default
        assert "kakeya.v1.RuntimeService" in reflected_pool(channel)[0]
    with kakeya.Client(grpc_address, token=TOKEN, timeout=60) as client:
        assert client.healthy()
        with client.create_session() as session:
            session.append(list(range(10, 40)))
            assert len(list(session.generate(4))) == 4
        in_flight = client.create_session()
        in_flight.append(list(range(10, 40)))
        generation = in_flight.generate(4000)
        tokens = iter(generation)
        next(tokens)
        with httpx.Client(base_url=http_url, timeout=60) as http:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            assert http.get("/v1/models", headers=headers).status_code == 200
            assert http.get("/v1/models").status_code == 401
        serve_process.send_signal(signal.SIGTERM)
        try:
            for _ in tokens:
                pass
            assert generation.stop_reason is kakeya.StopReason.SHUTDOWN
        except kakeya.RuntimeUnavailableError:
            pass  # the stream ended with UNAVAILABLE: also a clear status
    stdout, stderr = serve_process.communicate(timeout=60)
    assert serve_process.returncode == 0, stderr
    output = "".join(lines) + stdout + stderr
    assert "stopped" in stdout
    assert "decode batches of up to 2 sessions, " in output  # --max-concurrent 2, and padding
    assert TOKEN not in output
