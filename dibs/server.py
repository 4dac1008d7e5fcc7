"""Serving Dibs with gevent's WSGI server and gevent-websocket's handler
(size-limited, see :mod:`dibs.frames`).

The caller must have monkey-patched the standard library with gevent first
(``wsgi.py`` does), so that any blocking call in the process yields.  On
SIGTERM or SIGINT the server stops accepting, closes every Socket.IO
connection the way a restart should (each client sees its transport close,
so it reconnects, to this server's successor), and returns.
"""

from __future__ import annotations

import functools
import logging
import signal
from typing import Any

import gevent
import gevent.event
from gevent.pool import Pool
from gevent.pywsgi import WSGIServer
from geventwebsocket.handler import WebSocketHandler

from . import origins
from .frames import SizeLimitedWebSocketHandler
from .settings import Settings

logger = logging.getLogger(__name__)

STOP_SECONDS = 1.5
"""How long open requests get to finish once every connection was closed;
after it their handlers are killed."""

WORKER_WATCH_SECONDS = 0.25
"""How often a gunicorn worker's greenlet checks whether it must stop."""

WORKER_ACCEPTS_SECONDS = 1.5
"""How long a gunicorn gevent worker may go on accepting once told to stop."""


def serve(app: Any, settings: Settings) -> None:
    """Serve ``app`` on the configured host and port until SIGTERM or SIGINT."""
    # A pool, even unbounded, lets stop() wait for the handlers to finish.
    server = WSGIServer(
        (settings.host, settings.port),
        app,
        handler_class=SizeLimitedWebSocketHandler,
        spawn=Pool(),
        log=None,
    )
    server.pre_start_hook = functools.partial(refuse_upgrade, app.service.settings)
    stopping = gevent.event.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, ask_to_stop, stopping, signum)

    server.start()
    logger.info("Dibs listening on http://%s:%s/", settings.host, settings.port)
    stopping.wait()

    server.close()
    closed = close_connections(app)
    logger.info("closed %d connections; stopping", closed)
    server.stop(timeout=STOP_SECONDS)
    # A shared registry forgets this process now, rather than letting the
    # other processes wait for its heartbeat to go stale.
    app.service.registry.close()
    logger.info("Dibs stopped")


def refuse_upgrade(settings: Settings, handler: WebSocketHandler) -> bool:
    """Return True to answer a WebSocket handshake as plain HTTP, not upgraded.

    gevent-websocket upgrades before the app runs; a handshake from a foreign
    origin is kept plain, so that python-engineio refuses it with a 400 that
    the browser sees, instead of an upgrade it would then see closed.
    """
    origin = handler.environ.get("HTTP_ORIGIN")
    return not origins.is_allowed(origin, handler.environ, settings)


def ask_to_stop(stopping: gevent.event.Event, signum: int) -> None:
    """Wake the serving greenlet so that it stops."""
    logger.info("%s received", signal.Signals(signum).name)
    stopping.set()


def close_connections(app: Any) -> int:
    """Close every Engine.IO session of ``app`` and return how many there were.

    Each session's transport is closed without the Engine.IO close packet, as
    a restart of the server would: the browser client reconnects on either,
    but the Python client treats the close packet as "go away" and would stay
    disconnected.  Each session's disconnect handler runs, so presence is
    updated as on any drop (grace period included).
    """
    sessions = list(app.service.sio.eio.sockets.values())
    for session in sessions:
        try:
            session.close(wait=False, abort=True)
        except Exception:
            logger.exception("could not close session %s", session.sid)
    return len(sessions)


def close_when_worker_stops(worker: Any) -> None:
    """Close every connection of a gunicorn ``worker`` as soon as it must stop.

    gunicorn stops a gevent worker by waiting, up to its graceful timeout (30
    s by default), for open requests to end, and an open WebSocket never
    does.  Run in a greenlet from the ``post_worker_init`` hook of
    ``gunicorn.conf.py``, this closes them instead, as :func:`serve` does, as
    soon as the worker stops accepting, so that it exits within about three
    seconds.
    """
    while worker.alive:
        gevent.sleep(WORKER_WATCH_SECONDS)

    # The worker checks once a second whether it must stop, and only then
    # stops accepting: a client closed before that would reconnect to it.
    gevent.sleep(WORKER_ACCEPTS_SECONDS)
    closed = close_connections(worker.wsgi)
    logger.info("worker %s stopping: closed %d connections", worker.pid, closed)
