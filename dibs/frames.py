"""WebSocket frames under a size limit, for servers built on gevent-websocket.

gevent-websocket believes the length a frame header declares and reads that
many bytes, and it joins the frames of a fragmented message without bound;
python-engineio only measures a message once all of it is in memory.  Here a
frame is refused as soon as its header shows that the message would exceed
the limit, before its mask or payload is read: the connection is closed with
1009 (message too big) and nothing else is affected.

:class:`SizeLimitedWebSocketHandler` is the request handler that serves
``python wsgi.py`` (and, through :mod:`dibs.workers`, gunicorn) with
:class:`SizeLimitedWebSocket` in place of gevent-websocket's own.  Reading
blocks only the connection's own greenlet; there is no shared state.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import time
from typing import Any

import gevent
from geventwebsocket.exceptions import ProtocolError, WebSocketError
from geventwebsocket.handler import WebSocketHandler
from geventwebsocket.websocket import Header, Stream, WebSocket

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024
"""Largest message a client may send over a WebSocket, fragments included."""

MAX_CONTROL_BYTES = 125
LINGER_SECONDS = 1.0
"""How long a refused connection's input is read and thrown away after the
close frame, so that unread bytes do not make the kernel reset the
connection before the client has read why it was closed."""

TOO_BIG = 1009


class MessageTooBig(Exception):
    """A frame would take its message past the size limit."""

    def __init__(self, declared: int, limit: int) -> None:
        super().__init__(f"a frame declares {declared} bytes, over the {limit} left")
        self.declared = declared
        self.limit = limit


class SizeLimitedWebSocket(WebSocket):
    """A gevent-websocket WebSocket that refuses messages over a size limit.

    It also sends the status code it is closed with (gevent-websocket drops
    it), unmasks payloads without a byte-by-byte Python loop, and offers
    ``settimeout``, through which python-engineio bounds how long a read or
    a write may block.
    """

    __slots__ = ("max_message_size", "message_size")

    def __init__(
        self,
        environ: dict[str, Any],
        stream: Stream,
        handler: WebSocketHandler,
        max_message_size: int = MAX_MESSAGE_BYTES,
    ) -> None:
        super().__init__(environ, stream, handler)
        self.max_message_size = max_message_size
        self.message_size = 0

    def settimeout(self, seconds: float | None) -> None:
        """Bound how long one read or write on the connection may block."""
        self.handler.socket.settimeout(seconds)

    def read_frame(self) -> tuple[Header, bytes]:
        """Read one frame, refusing it if its message would grow too big."""
        header = self.read_header()
        if not header.length:
            return header, b""

        payload = self.raw_read(header.length)
        if len(payload) != header.length:
            raise WebSocketError("Unexpected EOF reading frame payload")
        if header.mask:
            payload = unmask(payload, header.mask)
        return header, payload

    def read_header(self) -> Header:
        """Read a frame header, checking its length before anything after it."""
        first, second = struct.unpack("!BB", self.read_exactly(2))
        header = Header(
            fin=bool(first & Header.FIN_MASK),
            opcode=first & Header.OPCODE_MASK,
            flags=first & Header.HEADER_FLAG_MASK,
            length=second & Header.LENGTH_MASK,
        )
        if header.flags:
            raise ProtocolError(f"reserved bits set in frame header: {first:#04x}")

        if header.length == 126:
            header.length = struct.unpack("!H", self.read_exactly(2))[0]
        elif header.length == 127:
            header.length = struct.unpack("!Q", self.read_exactly(8))[0]
        self.check_length(header)

        if second & Header.MASK_MASK:
            header.mask = self.read_exactly(4)
        return header

    def check_length(self, header: Header) -> None:
        """Refuse a frame too long for its kind, before its payload is read."""
        if header.opcode >= self.OPCODE_CLOSE:
            if not header.fin or header.length > MAX_CONTROL_BYTES:
                raise ProtocolError("control frames must be whole and short")
            return

        if header.opcode != self.OPCODE_CONTINUATION:
            self.message_size = 0
        left = self.max_message_size - self.message_size
        if header.length > left:
            raise MessageTooBig(header.length, left)
        self.message_size += header.length

    def read_exactly(self, count: int) -> bytes:
        """Read ``count`` bytes, or fail on a connection that ended sooner."""
        data = self.raw_read(count)
        if len(data) != count:
            raise WebSocketError("Unexpected EOF while decoding header")
        return data

    def receive(self) -> Any:
        """Return the next message, or None once the connection is closed."""
        try:
            message = super().receive()
        except MessageTooBig as refusal:
            logger.warning(
                "closing WebSocket from %s: message too big (%s)",
                self.handler.client_address,
                refusal,
            )
            connection = self.handler.socket
            self.close(TOO_BIG, b"message too big")
            linger(connection)
            return None

        # Reading a socket that has data waiting never yields to the hub: without
        # this a client sending without pause would hold the whole process.
        gevent.sleep(0)
        return message

    def close(self, code: int = 1000, message: bytes | str = b"") -> None:
        """Send a close frame carrying ``code`` and ``message``, once."""
        if self.closed:
            return
        if isinstance(message, str):
            message = message.encode()
        try:
            self.send_frame(struct.pack("!H", code) + message[:123], self.OPCODE_CLOSE)
        except WebSocketError:
            logger.debug("could not send the close frame: the connection is gone")
        finally:
            self.closed = True
            self.stream = None
            self.raw_write = None
            self.raw_read = None
            self.environ = None


def unmask(payload: bytes, mask: bytes) -> bytes:
    """Return ``payload`` XORed with the repeated four-byte ``mask``."""
    # One big-integer XOR instead of a loop per byte: a 64 KiB frame would
    # otherwise hold the whole process (every greenlet) for milliseconds.
    size = len(payload)
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(
        size, "big"
    )


def linger(connection: socket.socket, seconds: float = LINGER_SECONDS) -> None:
    """Finish sending, then drop input until the peer closes or time is up."""
    deadline = time.monotonic() + seconds
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_WR)
        while (left := deadline - time.monotonic()) > 0:
            connection.settimeout(left)
            if not connection.recv(64 * 1024):
                return


class SizeLimitedWebSocketHandler(WebSocketHandler):
    """gevent-websocket's handler, upgrading to a :class:`SizeLimitedWebSocket`."""

    max_message_size = MAX_MESSAGE_BYTES
    read_buffer_bytes = 1024

    def __init__(self, sock: Any, address: Any, server: Any, *args: Any) -> None:
        super().__init__(sock, address, server, *args)
        # pywsgi's 8 KB read buffer would stay allocated for the whole life of
        # a websocket, where messages are small; longer reads bypass it.
        self.rfile = sock.makefile("rb", self.read_buffer_bytes)
        # An acknowledgement and an update often leave for the same client
        # back to back; with Nagle's algorithm the second would wait for the
        # client's delayed ACK, 40 ms on Linux.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def upgrade_connection(self) -> Any:
        result = super().upgrade_connection()
        stock = getattr(self, "websocket", None)
        if stock is None or isinstance(stock, SizeLimitedWebSocket):
            return result

        # The stock socket has read and written nothing yet; marked closed,
        # it sends no close frame when it is collected.
        stock.closed = True
        self.websocket = SizeLimitedWebSocket(
            self.environ, Stream(self), self, self.max_message_size
        )
        self.environ["wsgi.websocket"] = self.websocket
        return result
