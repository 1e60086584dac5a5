"""Two latencies of a real `kakeya-runtime serve` process, measured from outside it.

    python scripts/measure_latency.py [--model ID] [--rounds N]

1. Keep-alive HTTP: N requests to `/healthz` on one connection, one at a time (a Nagle
   plus delayed-ACK stall shows as ~40 ms per request).
2. A gRPC `GetSessionInfo` probe, alone and while eight other processes each send a 1 MiB
   chat request to the shim (which must refuse them without stalling the shared loop).

Prints one JSON object. Run it on a quiet machine, once on the branch and once on its
baseline, and compare the two; the figures are not meant for a test assertion.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from inference_engine.config import DEFAULT_MODEL_ID

REPO = Path(__file__).resolve().parents[1]
UPLOADERS = 8
UPLOAD_CHARS = 1_000_000


def start_server(model: str) -> tuple[subprocess.Popen, str, str]:
    command = [
        sys.executable, "-m", "inference_engine.cli", "serve", "--model", model,
        "--grpc-port", "0", "--http-port", "0",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    grpc_address = http_address = None
    while grpc_address is None or http_address is None:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("serve exited before it printed its addresses")
        if line.startswith("grpc listening on "):
            grpc_address = line.split()[-1]
        elif line.startswith("http listening on "):
            http_address = line.split()[-1].removeprefix("http://")
    return process, grpc_address, http_address


def read_response(sock: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)


def keep_alive_ms(http_address: str, rounds: int) -> list[float]:
    host, port = http_address.rsplit(":", 1)
    request = b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n"
    timings = []
    with socket.create_connection((host, int(port))) as sock:
        for _ in range(rounds + 5):
            began = time.perf_counter()
            sock.sendall(request)
            read_response(sock)
            timings.append((time.perf_counter() - began) * 1000)
    return timings[5:]  # the first few warm the connection


def upload_payload(model: str) -> bytes:
    """One 1 MiB chat request, built before the measurement starts."""
    content = "x" * UPLOAD_CHARS
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": content}]})
    payload = body.encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json"
        f"\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head + payload


def upload(http_address: str, request: bytes) -> bytes:
    """Sends one prepared request from its own process; returns the status line."""
    host, port = http_address.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(request)
        return sock.recv(64).split(b"\r\n")[0]


def probe_ms(grpc_address: str, stop: threading.Event, out: list[float]) -> None:
    import kakeya

    with kakeya.Client(grpc_address, timeout=60) as client, client.create_session() as session:
        session.append([5, 6, 7])
        while not stop.is_set():
            began = time.perf_counter()
            session.info()
            out.append((time.perf_counter() - began) * 1000)
            stop.wait(0.005)


def probe_under_uploads(grpc_address: str, http_address: str, model: str) -> dict:
    alone: list[float] = []
    loaded: list[float] = []
    stop = threading.Event()
    prober = threading.Thread(target=probe_ms, args=(grpc_address, stop, alone))
    prober.start()
    time.sleep(1.0)
    stop.set()
    prober.join()
    request = upload_payload(model)
    with multiprocessing.get_context("spawn").Pool(UPLOADERS) as pool:
        pool.map(time.sleep, [0.1] * UPLOADERS)  # the workers exist before the probe starts
        stop = threading.Event()
        prober = threading.Thread(target=probe_ms, args=(grpc_address, stop, loaded))
        prober.start()
        time.sleep(0.3)
        statuses = pool.starmap(upload, [(http_address, request)] * UPLOADERS)
        time.sleep(0.3)
        stop.set()
        prober.join()
    return {
        "uploads": [s.decode() for s in statuses],
        "probe_alone_median_ms": round(statistics.median(alone), 2),
        "probe_alone_max_ms": round(max(alone), 2),
        "probe_loaded_median_ms": round(statistics.median(loaded), 2),
        "probe_loaded_p95_ms": round(sorted(loaded)[int(len(loaded) * 0.95)], 2),
        "probe_loaded_max_ms": round(max(loaded), 2),
        "probes_loaded": len(loaded),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL_ID)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    process, grpc_address, http_address = start_server(args.model)
    try:
        timings = keep_alive_ms(http_address, args.rounds)
        figures = {
            "keep_alive_healthz_median_ms": round(statistics.median(timings), 3),
            "keep_alive_healthz_p95_ms": round(sorted(timings)[int(len(timings) * 0.95)], 3),
            "keep_alive_healthz_max_ms": round(max(timings), 3),
            "keep_alive_rounds": len(timings),
            **probe_under_uploads(grpc_address, http_address, args.model),
        }
    finally:
        process.terminate()
        process.wait(60)
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
