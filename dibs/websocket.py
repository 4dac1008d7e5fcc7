"""WebSocket transport for python-engineio's gevent mode, under any gevent server.

gevent-websocket's handler (``python wsgi.py``, or gunicorn with
:class:`dibs.workers.WebSocketWorker`) upgrades the connection before Dibs
sees it and leaves the socket in ``environ["wsgi.websocket"]``.  gunicorn's
own gevent worker (``gunicorn -k gevent``) does not; python-engineio, seeing
gevent-websocket installed, would then refuse every upgrade.  So each
upgrade request picks its implementation: gevent-websocket's socket when the
server made one, otherwise simple-websocket on the raw socket gunicorn hands
over, with gevent's primitives so that nothing blocks the process.

Either way every message is checked before python-engineio decodes it: a
message it cannot decode would escape its read loop and leave the session
open, unread, until the ping timeout.  Such a message closes the WebSocket
with 1002 (protocol error) at once, as the reference server does.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent
import gevent.event
import gevent.selectors
from engineio import packet
from engineio.async_drivers import gevent as engineio_gevent
from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI

from .frames import SizeLimitedWebSocket

logger = logging.getLogger(__name__)

PROTOCOL_ERROR = 1002


def malformed(message: Any) -> str | None:
    """Return why python-engineio could not decode ``message``, or None."""
    if message is None or isinstance(message, (bytes, bytearray)):
        return None
    try:
        packet.Packet(encoded_packet=message)
    except (ValueError, TypeError) as error:
        return f"{type(error).__name__}: {error}"[:120]
    return None


class CheckedGeventWebSocket(engineio_gevent.WebSocketWSGI):
    """gevent-websocket's socket for python-engineio, with messages checked."""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not isinstance(environ.get("wsgi.websocket"), SizeLimitedWebSocket):
            warn_unlimited()
        return super().__call__(environ, start_response)

    def wait(self) -> Any:
        message = self._sock.receive()
        problem = malformed(message)
        if problem is None:
            return message

        logger.warning("closing WebSocket: malformed Engine.IO packet (%s)", problem)
        self._sock.close(PROTOCOL_ERROR, b"malformed packet")
        return None


class YieldingSocket:
    """A socket whose every read lets the other greenlets run.

    simple-websocket reads in a loop for as long as data is waiting, which
    never yields to the hub, and keeps every message read until python-engineio
    takes it: a client sending without pause would hold the process and fill
    its memory.  Yielding after each read lets the reader take each batch
    before the next one is read.
    """

    def __init__(self, sock: Any) -> None:
        self.sock = sock

    def recv(self, size: int) -> bytes:
        data = self.sock.recv(size)
        gevent.sleep(0)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


class CheckedSimpleWebSocket(SimpleWebSocketWSGI):
    """simple-websocket's socket for python-engineio, with messages checked."""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        # Compression is never negotiated: a small compressed frame inflates to
        # megabytes before any size limit can look at it.
        environ = dict(environ)
        environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
        if "gunicorn.socket" in environ:
            environ["gunicorn.socket"] = YieldingSocket(environ["gunicorn.socket"])
        return super().__call__(environ, start_response)

    @property
    def socket(self) -> Any:
        """The TCP socket, on which python-engineio sets its read timeout."""
        return self.ws.sock

    def wait(self) -> Any:
        message = super().wait()
        problem = malformed(message)
        if problem is None:
            return message

        logger.warning("closing WebSocket: malformed Engine.IO packet (%s)", problem)
        self.ws.close(PROTOCOL_ERROR, "malformed packet")
        return None


class WebSocketChooser:
    """Serve one WebSocket upgrade with whichever implementation fits."""

    max_message_size: int | None = None

    def __init__(self, handler: Any, server: Any) -> None:
        self.handler = handler
        self.server = server

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if "wsgi.websocket" in environ:
            socket = CheckedGeventWebSocket(self.handler, self.server)
        else:
            socket = CheckedSimpleWebSocket(
                self.handler,
                self.server,
                thread_class=engineio_gevent.Thread,
                event_class=gevent.event.Event,
                selector_class=gevent.selectors.DefaultSelector,
                max_message_size=self.max_message_size,
            )
        return socket(environ, start_response)


_warned = False


def warn_unlimited() -> None:
    """Say once that this server's WebSockets have no frame-size limit."""
    global _warned
    if _warned:
        return
    _warned = True
    logger.warning(
        "WebSockets are served by gevent-websocket's stock handler, which reads "
        "frames of any size: serve with `python wsgi.py` or gunicorn's "
        "`-k gevent` or `-k dibs.workers.WebSocketWorker` instead"
    )


def install(engineio_server: Any, max_message_size: int | None = None) -> None:
    """Make ``engineio_server`` upgrade WebSockets through :class:`WebSocketChooser`.

    Note that python-engineio offers no public hook for this: the driver table
    is copied, so other servers in the process keep the stock one.
    """
    chooser = type("BoundWebSocketChooser", (WebSocketChooser,), {})
    chooser.max_message_size = max_message_size
    engineio_server._async = dict(engineio_server._async, websocket=chooser)
