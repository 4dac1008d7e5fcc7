"""Fan-out: telling every client on a changed page what it now looks like.

Modern clients get a ``presence`` event in their page's room; legacy clients
get ``PAGEVISITORINFO_UPDATE`` in the room of the exact URL they visited, or,
when ``DIBS_LEGACY_SCOPE=all``, the whole map of every page.  Emits happen
here, after the registry call that changed things has returned; listeners
(the monitoring board's feed) hear of every change first.

A changed page's view is *relayed* to every process, and each process
*delivers* it to its own clients.  With one process the relay is a plain
call.  With several, views travel through the Redis channel and two handlers
on different processes may publish in the opposite order to their registry
calls, so delivery drops a view older than the last one delivered for its
page: clients never go back to a stale presence.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import socketio

from . import rooms
from .registry import Changes, PageView, Registry

logger = logging.getLogger(__name__)

LEGACY_UPDATE = "PAGEVISITORINFO_UPDATE"

FORGET_EMPTY_SECONDS = 60.0
"""How long the version of an emptied page is kept to refuse late stale views."""


class Fanout:
    """Send the new view of changed pages to the clients on them."""

    def __init__(
        self, sio: socketio.Server, registry: Registry, legacy_scope: str
    ) -> None:
        self.sio = sio
        self.registry = registry
        self.legacy_scope = legacy_scope
        self.listeners: list[Callable[[Changes], None]] = []
        self.relay: Callable[[PageView], None] = self.deliver
        self._delivered: dict[str, int] = {}
        self._emptied: dict[str, float] = {}

    def publish(self, changes: Changes) -> None:
        """Tell each page in ``changes`` its new presence, in both protocols."""
        if not changes:
            return

        for listener in self.listeners:
            listener(changes)
        for view in changes.values():
            self.relay(view)

        if self.legacy_scope == "all":
            self.sio.emit(LEGACY_UPDATE, self.legacy_map(), to=rooms.LEGACY_ALL)

    def deliver(self, view: PageView) -> None:
        """Emit ``view`` to this process's clients on its page, unless stale."""
        if view.version < self._delivered.get(view.page, 0):
            logger.debug("dropped a stale view of %s", view.page)
            return

        self._remember(view)
        self.sio.emit(
            "presence",
            view.presence(),
            to=rooms.page(view.page),
            ignore_queue=True,
        )
        if self.legacy_scope == "page":
            visitors = view.legacy_visitors()
            for url in view.legacy_hrefs:
                self.sio.emit(
                    LEGACY_UPDATE,
                    {url: visitors},
                    to=rooms.href(url),
                    ignore_queue=True,
                )

    def _remember(self, view: PageView) -> None:
        # An emptied page's version is kept a while, so that a late view from
        # before it emptied cannot bring back a viewer who left; after that
        # the entry goes, so that memory does not grow with every page seen.
        now = time.monotonic()
        self._delivered[view.page] = view.version
        self._emptied.pop(view.page, None)
        if view.is_empty:
            self._emptied[view.page] = now
        # Oldest first, and only as far as the first one still kept: copying
        # the whole dict here would cost every emit thousands of steps.
        while self._emptied:
            page, emptied_at = next(iter(self._emptied.items()))
            if now - emptied_at < FORGET_EMPTY_SECONDS:
                break
            del self._emptied[page]
            del self._delivered[page]

    def legacy_update(self, view: PageView, url: str) -> dict[str, Any]:
        """Return the legacy update one client that visited ``url`` should see."""
        if self.legacy_scope == "all":
            return self.legacy_map()
        return {url: view.legacy_visitors()}

    def legacy_map(self) -> dict[str, dict[str, int]]:
        """Return the old server's whole map: every visited URL to its visitors.

        Pages only modern clients are on appear under their page key.
        """
        everything: dict[str, dict[str, int]] = {}
        for view in self.registry.views():
            visitors = view.legacy_visitors()
            if not visitors:
                continue
            for url in view.legacy_hrefs or [view.page]:
                everything[url] = visitors
        return everything
