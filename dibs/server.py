"""Serving Dibs with gevent's WSGI server and gevent-websocket's handler.

The caller must have monkey-patched the standard library with gevent first
(``wsgi.py`` does), so that any blocking call in the process yields.
"""

from __future__ import annotations

import logging

from gevent.pywsgi import WSGIServer
from geventwebsocket.handler import WebSocketHandler

from .settings import Settings

logger = logging.getLogger(__name__)


def serve(app, settings: Settings) -> None:
    """Serve ``app`` on the configured host and port until interrupted."""
    server = WSGIServer(
        (settings.host, settings.port), app, handler_class=WebSocketHandler, log=None
    )
    logger.info("Dibs listening on http://%s:%s/", settings.host, settings.port)
    server.serve_forever()
