"""Fan-out: telling every client on a changed page what it now looks like.

Modern clients get a ``presence`` event in their page's room; legacy clients
get ``PAGEVISITORINFO_UPDATE`` in the room of the exact URL they visited, or,
when ``DIBS_LEGACY_SCOPE=all``, the whole map of every page.  Emits happen
here, after the registry call that changed things has returned; listeners
(the monitoring board's feed) hear of every change first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import socketio

from . import rooms
from .registry import Changes, PageView, Registry

logger = logging.getLogger(__name__)

LEGACY_UPDATE = "PAGEVISITORINFO_UPDATE"


class Fanout:
    """Send the new view of changed pages to the clients on them."""

    def __init__(self, sio: socketio.Server, registry: Registry, legacy_scope: str) -> None:
        self.sio = sio
        self.registry = registry
        self.legacy_scope = legacy_scope
        self.listeners: list[Callable[[Changes], None]] = []

    def publish(self, changes: Changes) -> None:
        """Tell each page in ``changes`` its new presence, in both protocols."""
        if not changes:
            return

        for listener in self.listeners:
            listener(changes)
        for view in changes.values():
            self.sio.emit("presence", view.presence(), to=rooms.page(view.page))
            if self.legacy_scope == "page":
                for url in view.legacy_hrefs:
                    self.sio.emit(LEGACY_UPDATE, {url: view.legacy_visitors()}, to=rooms.href(url))

        if self.legacy_scope == "all":
            self.sio.emit(LEGACY_UPDATE, self.legacy_map(), to=rooms.LEGACY_ALL)

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
