"""The wire: a minimal websocket client that speaks Engine.IO 4 and Socket.IO 5.

Built for ten thousand connections in one gevent process, where a full client
library costs more than the server it measures.  It handles exactly what a
Dibs server (or the bare ceiling server) sends: unmasked, unfragmented text
frames and close frames.  Reads block only the calling greenlet; sends write
straight to the socket from whichever greenlet sends.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
from typing import Any

import gevent.socket

OPEN, CLOSE, PING, PONG, MESSAGE = "0", "1", "2", "3", "4"
CONNECT, DISCONNECT, EVENT, ACK, CONNECT_ERROR = "0", "1", "2", "3", "4"

_COMPACT = (",", ":")


class Closed(Exception):
    """The connection ended, or the server refused it."""


def _masked(data: bytes, mask: bytes) -> bytes:
    # XOR as one big integer: far cheaper in Python than a loop over bytes.
    size = len(data)
    key = int.from_bytes((mask * (size // 4 + 1))[:size], "big")
    return (int.from_bytes(data, "big") ^ key).to_bytes(size, "big")


def _frame_header(size: int) -> bytes:
    if size < 126:
        return struct.pack("!BB", 0x81, 0x80 | size)
    if size < 65536:
        return struct.pack("!BBH", 0x81, 0x80 | 126, size)
    return struct.pack("!BBQ", 0x81, 0x80 | 127, size)


class WebSocket:
    """One client websocket over a gevent socket, counting bytes both ways."""

    def __init__(self, host: str, port: int, path: str, timeout: float = 30.0) -> None:
        self.sock = gevent.socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()
        self.bytes_in = 0
        self.bytes_out = 0
        self.mask = os.urandom(4)
        self._handshake(host, port, path)
        self.sock.settimeout(None)

    def _handshake(self, host: str, port: int, path: str) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.sock.sendall(request)
        self.bytes_out += len(request)

        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, rest = bytes(self.buffer).partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise Closed(head.split(b"\r\n", 1)[0].decode(errors="replace"))
        self.buffer = bytearray(rest)

    def _fill(self) -> None:
        chunk = self.sock.recv(262144)
        if not chunk:
            raise Closed("connection closed by the server")
        self.bytes_in += len(chunk)
        self.buffer += chunk

    def send(self, text: str) -> None:
        """Send ``text`` as one masked text frame."""
        payload = text.encode()
        frame = _frame_header(len(payload)) + self.mask + _masked(payload, self.mask)
        self.sock.sendall(frame)
        self.bytes_out += len(frame)

    def receive(self) -> str:
        """Return the next text message; raise :class:`Closed` at the end."""
        while True:
            opcode, payload = self._frame()
            if opcode == 1:
                return payload.decode()
            if opcode == 8:
                raise Closed("close frame")

    def _frame(self) -> tuple[int, bytes]:
        buffer = self.buffer
        while True:
            if len(buffer) >= 2:
                size = buffer[1] & 0x7F
                start = 2
                if size == 126 and len(buffer) >= 4:
                    size, start = struct.unpack_from("!H", buffer, 2)[0], 4
                elif size == 127 and len(buffer) >= 10:
                    size, start = struct.unpack_from("!Q", buffer, 2)[0], 10
                if size < 126 or start > 2:
                    end = start + size
                    if len(buffer) >= end:
                        opcode = buffer[0] & 0x0F
                        payload = bytes(buffer[start:end])
                        del buffer[:end]
                        return opcode, payload
            self._fill()

    def close(self) -> None:
        """Close the socket without ceremony."""
        try:
            self.sock.close()
        except OSError:
            pass


class SocketIO(WebSocket):
    """A Socket.IO 5 client over a websocket-only Engine.IO 4 connection."""

    def __init__(self, host: str, port: int, path: str, auth: Any = None) -> None:
        super().__init__(host, port, f"/{path}/?EIO=4&transport=websocket")
        opened = self.receive()
        if not opened.startswith(OPEN):
            raise Closed(f"expected the Engine.IO open packet, got {opened[:40]!r}")
        hello = MESSAGE + CONNECT
        self.send(hello + json.dumps(auth, separators=_COMPACT) if auth else hello)
        while True:
            reply = self.receive()
            if reply == PING:
                self.send(PONG)
                continue
            if reply.startswith(MESSAGE + CONNECT):
                return
            raise Closed(f"connection refused: {reply[:80]!r}")

    def emit(self, event: str, *args: Any, ack: int | None = None) -> None:
        """Send ``event`` with ``args``, asking for acknowledgement ``ack``."""
        head = MESSAGE + EVENT + ("" if ack is None else str(ack))
        self.send(head + json.dumps([event, *args], separators=_COMPACT))


def decode(message: str) -> tuple[str, Any]:
    """Split a Socket.IO message into ``(kind, data)``.

    ``kind`` is ``event`` (data: ``[name, *args]``), ``ack`` (data: ``(id,
    args)``), ``ping``, ``close`` or ``other``.
    """
    if message.startswith("42"):
        return "event", json.loads(message[2:])
    if message.startswith("43"):
        bracket = message.index("[")
        return "ack", (int(message[2:bracket]), json.loads(message[bracket:]))
    if message == PING:
        return "ping", None
    if message.startswith(CLOSE) or message.startswith(MESSAGE + DISCONNECT):
        return "close", None
    return "other", message
