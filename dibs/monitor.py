"""The monitoring board's live feed: every page with viewers, sent in batches.

Monitors connect to the ``/monitor`` Socket.IO namespace with the API key in
their ``auth`` payload (``{monitor: KEY}``); they are not viewers and never
touch the registry.  A monitor asks for a ``snapshot`` of every page once,
then receives ``pages`` events: :class:`MonitorFeed` hears every change from
the fan-out, keeps the newest view of each changed page, and every
:data:`INTERVAL` seconds sends all monitors one batch.  A page that changes
fifty times within an interval is sent once, so a monitor's work follows the
number of pages that changed, not the number of events.

The pending batch is per process and the flush runs in its own greenlet,
which yields while it emits.  With several processes on Redis each process
sends the pages that changed on it, and monitors use each view's ``version``
to drop one older than the view they already show.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import socketio

from . import rooms
from .access import monitor_allowed
from .errors import UnknownEvent
from .registry import Changes, PageView, Registry
from .service import Service
from .sockets import guarded

logger = logging.getLogger(__name__)

NAMESPACE = "/monitor"
INTERVAL = 0.25
"""Seconds between two batches sent to monitors."""


def millis() -> int:
    """Return the time now in whole milliseconds since the epoch."""
    return int(time.time() * 1000)


def counts(pages: list[dict[str, Any]]) -> dict[str, int]:
    """Count pages, viewers, claims and crowded pages (two or more viewers)."""
    return {
        "pages": len(pages),
        "viewers": sum(len(page["viewers"]) for page in pages),
        "claims": sum(len(page["claims"]) for page in pages),
        "crowded": sum(len(page["viewers"]) >= 2 for page in pages),
    }


class MonitorFeed:
    """Collect the pages the fan-out reports and send them to monitors in batches.

    :param sio: the Socket.IO server whose ``/monitor`` namespace is fed.
    :param registry: where the snapshot for a new monitor is read.
    """

    def __init__(self, sio: socketio.Server, registry: Registry) -> None:
        self.sio = sio
        self.registry = registry
        self.pending: dict[str, PageView] = {}

    def note(self, changes: Changes) -> None:
        """Keep the newest view of every page in ``changes`` for the next batch."""
        self.pending.update(changes)

    def flush(self) -> None:
        """Send every monitor the pages that changed since the last batch."""
        # Swapped before any emit: a change heard while this batch goes out
        # lands in the next one instead of being lost.
        batch, self.pending = self.pending, {}
        if not batch or not self.watched():
            return

        changed, gone = [], []
        for key, view in sorted(batch.items()):
            if view.is_empty:
                gone.append({"page": key, "version": view.version})
            else:
                changed.append(view.presence())
        delta = {"at": millis(), "changed": changed, "gone": gone}
        self.sio.emit("pages", delta, to=rooms.MONITORS, namespace=NAMESPACE)

    def snapshot(self) -> dict[str, Any]:
        """Return every page with viewers or claims, as a new monitor first sees it."""
        # Older pending views go out first, so none can arrive after this
        # snapshot and overwrite a newer view with an older one.
        self.flush()
        at = millis()
        pages = [view.presence() for view in self.registry.views()]
        return {"at": at, "pages": pages}

    def watched(self) -> bool:
        """Return whether any monitor may be listening."""
        # Behind a pub/sub manager the monitors may sit on other processes,
        # out of this one's sight.
        if isinstance(self.sio.manager, socketio.PubSubManager):
            return True
        watchers = self.sio.manager.get_participants(NAMESPACE, rooms.MONITORS)
        return next(iter(watchers), None) is not None

    def run(self) -> None:
        """Send a batch every :data:`INTERVAL` seconds, forever."""
        while True:
            self.sio.sleep(INTERVAL)
            try:
                self.flush()
            except Exception:
                logger.exception("sending a batch to monitors failed")


def register(service: Service) -> MonitorFeed:
    """Serve the ``/monitor`` namespace and start feeding it from the fan-out."""
    sio = service.sio
    api_key = service.settings.api_key
    feed = MonitorFeed(sio, service.registry)
    service.fanout.listeners.append(feed.note)

    @sio.on("connect", namespace=NAMESPACE)
    def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if not monitor_allowed(auth, api_key):
            logger.warning(
                "refused monitor %s from %s: bad or missing API key",
                sid,
                environ.get("REMOTE_ADDR"),
            )
            raise socketio.exceptions.ConnectionRefusedError("unauthorized")

        sio.enter_room(sid, rooms.MONITORS, namespace=NAMESPACE)
        logger.info("monitor connect %s", sid)

    @sio.on("disconnect", namespace=NAMESPACE)
    def disconnect(sid: str, reason: Any = None) -> None:
        logger.info("monitor disconnect %s reason=%s", sid, reason)

    @sio.on("snapshot", namespace=NAMESPACE)
    @guarded("snapshot")
    def snapshot(sid: str, data: Any = None) -> dict[str, Any]:
        return {"ok": True, **feed.snapshot()}

    @sio.on("*", namespace=NAMESPACE)
    def unknown(event: str, sid: str, *args: Any) -> dict[str, Any]:
        logger.warning("unknown monitor event %r from %s", str(event)[:64], sid)
        return UnknownEvent(f"unknown event {str(event)[:64]!r}").reply()

    sio.start_background_task(feed.run)
    return feed
