"""WebSocket transport for python-engineio's gevent mode, under any gevent server.

gevent-websocket's handler (``python wsgi.py``, or gunicorn with
gevent-websocket's worker) upgrades the connection before Dibs sees it and
leaves the socket in ``environ["wsgi.websocket"]``.  gunicorn's own gevent
worker (``gunicorn -k gevent``) does not; python-engineio, seeing
gevent-websocket installed, would then refuse every upgrade.  So each
upgrade request picks its implementation: gevent-websocket's socket when the
server made one, otherwise simple-websocket on the raw socket gunicorn hands
over, with gevent's primitives so that nothing blocks the process.
"""

from __future__ import annotations

from typing import Any

import gevent.event
import gevent.selectors
from engineio.async_drivers import gevent as engineio_gevent
from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI


class WebSocketChooser:
    """Serve one WebSocket upgrade with whichever implementation fits."""

    max_message_size: int | None = None

    def __init__(self, handler: Any, server: Any) -> None:
        self.handler = handler
        self.server = server

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if "wsgi.websocket" in environ:
            socket = engineio_gevent.WebSocketWSGI(self.handler, self.server)
        else:
            socket = SimpleWebSocketWSGI(
                self.handler,
                self.server,
                thread_class=engineio_gevent.Thread,
                event_class=gevent.event.Event,
                selector_class=gevent.selectors.DefaultSelector,
                max_message_size=self.max_message_size,
            )
        return socket(environ, start_response)


def install(engineio_server: Any, max_message_size: int | None = None) -> None:
    """Make ``engineio_server`` upgrade WebSockets through :class:`WebSocketChooser`.

    Note that python-engineio offers no public hook for this: the driver table
    is copied, so other servers in the process keep the stock one.
    """
    chooser = type("BoundWebSocketChooser", (WebSocketChooser,), {})
    chooser.max_message_size = max_message_size
    engineio_server._async = dict(engineio_server._async, websocket=chooser)
