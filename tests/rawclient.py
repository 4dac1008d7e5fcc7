"""Raw clients for malformed-input tests: WebSocket frames byte by byte, Engine.IO
and Socket.IO packets by hand, over a socket or over long-polling.

Unlike python-socketio's client, these read every frame in order on the
calling thread, so a test can tell exactly what arrived before a reply.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from typing import Any

import requests

TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA
MASK = b"\x11\x22\x33\x44"


def frame_header(opcode: int, length: int, fin: bool = True) -> bytes:
    """Return a masked client frame header declaring ``length`` bytes."""
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        header = struct.pack("!BB", first, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, length)
    return header + MASK


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """Return a whole masked client frame."""
    masked = bytes(byte ^ MASK[index % 4] for index, byte in enumerate(payload))
    return frame_header(opcode, len(payload), fin) + masked


class Closed(Exception):
    """The server closed the WebSocket; ``code`` is its close status, if any."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed with {code}: {reason}")
        self.code = code
        self.reason = reason


class RawWebSocket:
    """A WebSocket to a Dibs server, spoken frame by frame on a plain socket.

    :param port: the server's port on 127.0.0.1.
    :param path: the request path and query of the upgrade.
    """

    def __init__(
        self,
        port: int,
        path: str = "/socket.io/?EIO=4&transport=websocket",
        headers: str = "",
    ) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"{headers}\r\n"
        )
        self.sock.sendall(request.encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.receive_bytes()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        self.response_head = head.decode(errors="replace")
        status = head.split(b"\r\n")[0]
        if b" 101 " not in status:
            raise AssertionError(f"upgrade refused: {status!r}")

    def receive_bytes(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise Closed(None, "connection ended without a close frame")
        return data

    def send(self, data: bytes) -> None:
        """Send raw bytes: frames, parts of frames, anything."""
        self.sock.sendall(data)

    def send_text(self, text: str) -> None:
        """Send one text message in one frame."""
        self.send(frame(TEXT, text.encode()))

    def receive(self, timeout: float = 10.0) -> tuple[int, bytes]:
        """Return the next frame's opcode and payload; raise Closed on a close."""
        self.sock.settimeout(timeout)
        while True:
            parsed = self.parse()
            if parsed is not None:
                opcode, payload = parsed
                if opcode == CLOSE:
                    code = struct.unpack("!H", payload[:2])[0] if payload else None
                    raise Closed(code, payload[2:].decode(errors="replace"))
                return opcode, payload
            try:
                self.buffer += self.receive_bytes()
            except ConnectionResetError:
                raise Closed(None, "connection reset") from None

    def parse(self) -> tuple[int, bytes] | None:
        if len(self.buffer) < 2:
            return None
        opcode, length, offset = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F, 2
        if length == 126:
            length, offset = struct.unpack("!H", self.buffer[2:4])[0], 4
        elif length == 127:
            length, offset = struct.unpack("!Q", self.buffer[2:10])[0], 10
        if len(self.buffer) < offset + length:
            return None
        payload = self.buffer[offset : offset + length]
        self.buffer = self.buffer[offset + length :]
        return opcode, payload

    def receive_text(self, timeout: float = 10.0) -> str:
        """Return the next text message, answering Engine.IO pings on the way."""
        while True:
            opcode, payload = self.receive(timeout)
            text = payload.decode()
            if text == "2":
                self.send_text("3")
                continue
            return text

    def close_code(self, timeout: float = 10.0) -> int | None:
        """Read until the server closes; return its close status."""
        try:
            while True:
                self.receive(timeout)
        except Closed as closed:
            return closed.code

    def close(self) -> None:
        self.sock.close()


class RawSocketIO:
    """A Socket.IO connection over :class:`RawWebSocket`, packets written by hand."""

    def __init__(self, port: int, auth: dict[str, Any] | None = None) -> None:
        self.ws = RawWebSocket(port)
        self.opened = json.loads(self.ws.receive_text()[1:])
        self.ws.send_text("40" + (json.dumps(auth) if auth else ""))
        connected = self.ws.receive_text()
        if not connected.startswith("40"):
            raise AssertionError(f"connect refused: {connected}")
        self.sid = json.loads(connected[2:])["sid"]
        self.next_id = 1

    def call(self, event: str, *args: Any) -> tuple[Any, list[Any]]:
        """Emit ``event`` asking for an ack; return the reply and the events before."""
        return self.call_raw(json.dumps([event, *args]))

    def call_raw(self, body: str) -> tuple[Any, list[Any]]:
        """Send ``42<id><body>`` and wait for its ack, whatever ``body`` is."""
        id = self.next_id
        self.next_id += 1
        self.ws.send_text(f"42{id}{body}")
        return self.ack(id)

    def ack(self, id: int) -> tuple[Any, list[Any]]:
        """Collect events until the ack of ``id``; return its data and the events."""
        events = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = self.ws.receive_text()
            if text.startswith(f"43{id}["):
                return json.loads(text[len(f"43{id}") :])[0], events
            if text.startswith("42["):
                events.append(json.loads(text[2:]))
        raise AssertionError(f"no ack {id} within 10 s; events: {events[-5:]}")

    def close(self) -> None:
        self.ws.close()


class Polling:
    """An Engine.IO long-polling session, spoken with plain HTTP requests."""

    def __init__(self, url: str, path: str = "/socket.io/") -> None:
        self.base = f"{url}{path}?EIO=4&transport=polling"
        opened = requests.get(self.base, timeout=10)
        opened.raise_for_status()
        self.sid = json.loads(opened.text[1:])["sid"]
        self.url = f"{self.base}&sid={self.sid}"

    def post(self, body: str | bytes) -> requests.Response:
        """POST ``body`` as it is."""
        return requests.post(self.url, data=body, timeout=10)

    def get(self) -> list[str]:
        """Poll once; return the packets the server had waiting."""
        response = requests.get(self.url, timeout=10)
        response.raise_for_status()
        packets = response.text.split("\x1e")
        if "2" in packets:
            self.post("3")
        return packets

    def connect(self, auth: dict[str, Any] | None = None) -> str:
        """Complete the Socket.IO connect; return the Socket.IO sid."""
        assert self.post("40" + (json.dumps(auth) if auth else "")).ok
        packets = self.get()
        assert packets[0].startswith("40{"), packets
        return json.loads(packets[0][2:])["sid"]

    def events_until(self, check: Any, timeout: float = 10.0) -> list[str]:
        """Poll until a packet satisfies ``check``; return every packet seen."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen += self.get()
            if any(check(packet) for packet in seen):
                return seen
        raise AssertionError(f"no matching packet within {timeout} s: {seen[-5:]}")
