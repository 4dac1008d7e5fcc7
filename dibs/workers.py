"""gunicorn worker classes for Dibs.

``gunicorn -k dibs.workers.WebSocketWorker -w 1 wsgi:app`` serves Dibs like
gevent-websocket's own gunicorn worker, but upgrades WebSockets through
:class:`~dibs.frames.SizeLimitedWebSocketHandler`, so an oversized frame is
refused from its header.  Plain ``gunicorn -k gevent`` needs no special
worker: its WebSockets go through simple-websocket, which enforces the same
limit on its own.
"""

from __future__ import annotations

from gunicorn.workers.ggevent import GeventPyWSGIWorker

from .frames import SizeLimitedWebSocketHandler


class WebSocketWorker(GeventPyWSGIWorker):
    """gunicorn's gevent worker, with size-limited gevent-websocket upgrades."""

    wsgi_handler = SizeLimitedWebSocketHandler
