"""Engine.IO sessions: the watch that closes those a client left hanging.

python-engineio closes a session only when its client misses a pong, and
looks at each session only once per ping timeout.  Every second this watch
closes a session that:

- has not completed the Socket.IO connect, in any namespace, within the
  connect timeout (a handshake alone holds a session open forever);
- missed its pong: python-engineio's own check, run more often, so that a
  client that vanished is dropped within ping interval + ping timeout + 1 s;
- has more than :data:`MAX_BACKLOG` packets waiting: its client stopped
  reading, and everything sent to it would pile up in memory.

The watch runs in one greenlet per process; its state (when it first saw
each session that has not connected) is per process.  It also counts
greenlets and sessions for ``/metrics``, at scrape time only.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from typing import Any

import greenlet
import socketio
from prometheus_client.core import GaugeMetricFamily, Metric

from . import metrics

logger = logging.getLogger(__name__)

WATCH_INTERVAL = 1.0
"""Seconds between two looks at every session."""

YIELD_EVERY = 200
"""Sessions looked at between two chances for other greenlets to run."""

YIELD_SECONDS = 0.001
"""How long each such pause is: a pause of zero would run other callbacks but
not always poll the sockets, and presence waits on the sockets."""

MAX_BACKLOG = 1000
"""Most packets a session may have waiting to be sent before it is closed."""


class SessionWatch:
    """Close the Engine.IO sessions of ``sio`` that a client left hanging.

    :param sio: the Socket.IO server whose sessions are watched.
    :param connect_timeout: seconds a session gets to complete the Socket.IO
        connect after its handshake.
    """

    def __init__(self, sio: socketio.Server, connect_timeout: float) -> None:
        self.sio = sio
        self.connect_timeout = connect_timeout
        self.waiting: dict[str, float] = {}

    def check(self, now: float) -> None:
        """Look at every session once, closing those that must go."""
        sessions = dict(self.sio.eio.sockets)
        for sid in self.waiting.keys() - sessions.keys():
            del self.waiting[sid]

        for count, (sid, session) in enumerate(sessions.items(), 1):
            if count % YIELD_EVERY == 0:
                # A look at ten thousand sessions takes tens of milliseconds:
                # presence waiting to go out must not wait for all of it.
                self.sio.sleep(YIELD_SECONDS)
            if session.closing or session.closed:
                continue
            if self.joined(sid):
                self.waiting.pop(sid, None)
            elif now - self.waiting.setdefault(sid, now) > self.connect_timeout:
                self.close(session, f"no connect within {self.connect_timeout:g} s")
                continue
            if over_backlog(session):
                self.close(session, f"over {MAX_BACKLOG} packets unread")
                continue
            session.check_ping_timeout()

    def joined(self, eio_sid: str) -> bool:
        """Return whether the session completed the connect to any namespace."""
        manager = self.sio.manager
        return any(
            manager.sid_from_eio_sid(eio_sid, namespace) is not None
            for namespace in list(manager.get_namespaces())
        )

    def close(self, session: Any, why: str) -> None:
        """Close ``session`` and forget it."""
        self.waiting.pop(session.sid, None)
        close(self.sio, session, why)

    def run(self) -> None:
        """Check every :data:`WATCH_INTERVAL` seconds, forever."""
        while True:
            self.sio.sleep(WATCH_INTERVAL)
            try:
                self.check(time.monotonic())
            except Exception:
                logger.exception("watching sessions failed")


BUCKETS_HELP = "Connections with a rate-limit bucket."


def over_backlog(session: Any) -> bool:
    """Return whether ``session`` has more packets waiting than allowed."""
    return session.queue.qsize() > MAX_BACKLOG


def close(sio: socketio.Server, session: Any, why: str) -> None:
    """Close ``session`` at once, without waiting for its queue to drain."""
    # python-engineio's own disconnect waits until the queue is drained,
    # which never happens when the client stopped reading or polling.
    logger.warning("closing session %s: %s", session.sid, why)
    session.close(wait=False, abort=True)
    sio.eio.sockets.pop(session.sid, None)


class RuntimeCollector:
    """Report greenlets, sessions and rate buckets as gauges, read at each scrape."""

    def __init__(self) -> None:
        self.sio: socketio.Server | None = None

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("dibs_greenlets", "Greenlets alive in the process.")
        yield GaugeMetricFamily("dibs_sessions", "Engine.IO sessions open.")
        yield GaugeMetricFamily("dibs_rate_buckets", BUCKETS_HELP)

    def collect(self) -> Iterator[Metric]:
        if self.sio is None:
            return
        # A walk of the heap: fine once per scrape, too slow for a health check.
        # Objects the heap keeper froze are invisible to gc.get_objects(), so
        # thaw them for the walk; the keeper freezes them again.
        gc.unfreeze()
        alive = sum(
            isinstance(thing, greenlet.greenlet) and not thing.dead
            for thing in gc.get_objects()
        )
        gc.freeze()
        yield GaugeMetricFamily(
            "dibs_greenlets", "Greenlets alive in the process.", value=alive
        )
        yield GaugeMetricFamily(
            "dibs_sessions", "Engine.IO sessions open.", value=len(self.sio.eio.sockets)
        )
        limiter = getattr(self.sio, "rate_limiter", None)
        buckets = len(limiter.buckets) if limiter is not None else 0
        yield GaugeMetricFamily("dibs_rate_buckets", BUCKETS_HELP, value=buckets)


RUNTIME = RuntimeCollector()
metrics.REGISTRY.register(RUNTIME)


def start(sio: socketio.Server, connect_timeout: float) -> SessionWatch:
    """Watch the sessions of ``sio`` in the background, and count them."""
    watch = SessionWatch(sio, connect_timeout)
    RUNTIME.sio = sio
    sio.start_background_task(watch.run)
    return watch
