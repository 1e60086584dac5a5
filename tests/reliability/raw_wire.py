"""Clients on bare sockets, for tests where a client library might wait, retry or tidy up.

`http_request` writes one HTTP/1.1 request; `GrpcCall` speaks just enough HTTP/2 to start
one gRPC call and read its first message. Either socket can then be dropped with a FIN
(`close`) or a reset (`reset`), the way a crashed or vanished client leaves.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4


def connect(address: str, timeout_s: float = 30.0) -> socket.socket:
    host, port = address.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout_s)


def hang_up(sock: socket.socket, how: str) -> None:
    """Drops the connection: `close` sends a FIN, `reset` an RST (SO_LINGER 0)."""
    if how == "reset":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def http_request(address: str, method: str, path: str, body: Any = None) -> socket.socket:
    """Sends one HTTP/1.1 request (a JSON body when given); returns the open socket."""
    payload = b"" if body is None else json.dumps(body).encode()
    head = f"{method} {path} HTTP/1.1\r\nHost: test\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
    sock = connect(address)
    sock.sendall(head.encode() + b"\r\n" + payload)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


# --- HTTP/2, just enough for one gRPC call ------------------------------------------------


def h2_frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return (
        len(payload).to_bytes(3, "big")
        + bytes([kind, flags])
        + stream_id.to_bytes(4, "big")
        + payload
    )


def _hpack_string(value: bytes) -> bytes:
    if len(value) < 127:
        return bytes([len(value)]) + value
    rest, out = len(value) - 127, bytearray([127])
    while rest >= 128:
        out.append(rest % 128 + 128)
        rest //= 128
    return bytes(out) + bytes([rest]) + value


def hpack_headers(headers: list[tuple[str, str]]) -> bytes:
    """Literal header fields without indexing, no Huffman: valid HPACK, no state."""
    return b"".join(
        b"\x00" + _hpack_string(name.encode()) + _hpack_string(value.encode())
        for name, value in headers
    )


class GrpcCall:
    """One unary-request gRPC call on a raw HTTP/2 connection (stream 1)."""

    def __init__(self, address: str, method: str, message: bytes, token: str | None = None):
        self.sock = connect(address)
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", method),
            (":authority", address),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
        if token is not None:
            headers.append(("authorization", f"Bearer {token}"))
        body = b"\x00" + len(message).to_bytes(4, "big") + message
        self.sock.sendall(
            H2_PREFACE
            + h2_frame(SETTINGS, 0, 0)
            + h2_frame(HEADERS, END_HEADERS, 1, hpack_headers(headers))
            + h2_frame(DATA, END_STREAM, 1, body)
        )
        self._buffer = b""

    def _read(self, count: int) -> bytes:
        while len(self._buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self._buffer += chunk
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def next_frame(self) -> tuple[int, int, int, bytes]:
        header = self._read(9)
        length = int.from_bytes(header[:3], "big")
        kind, flags, stream_id = (
            header[3],
            header[4],
            int.from_bytes(header[5:9], "big") & 0x7FFFFFFF,
        )
        return kind, flags, stream_id, self._read(length)

    def first_message(self) -> bytes:
        """The first response message of stream 1 (acknowledging the server's settings)."""
        pending = b""
        while True:
            kind, flags, stream_id, payload = self.next_frame()
            if kind == SETTINGS and not flags & ACK:
                self.sock.sendall(h2_frame(SETTINGS, ACK, 0))
            elif kind == PING and not flags & ACK:
                self.sock.sendall(h2_frame(PING, ACK, 0, payload))
            elif kind in (RST_STREAM, GOAWAY) or (kind == HEADERS and flags & END_STREAM):
                raise ConnectionError(f"the call ended without a message (frame type {kind})")
            elif kind == DATA and stream_id == 1:
                pending += payload
                if len(pending) >= 5 and len(pending) >= 5 + int.from_bytes(pending[1:5], "big"):
                    return pending[5 : 5 + int.from_bytes(pending[1:5], "big")]
