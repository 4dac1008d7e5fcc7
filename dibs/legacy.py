"""The legacy protocol of the first Dibs server, as an adapter over the registry.

Old clients (the react-dibs component among them) emit ``PAGE_VISIT`` with
``(href, username, visitTimestamp)`` and read ``PAGEVISITORINFO_UPDATE``, a map
of href to ``{username: visitTimestamp}``.  A legacy visit is an ordinary
registry visit under the page key of the href; the adapter only translates
the arguments and keeps the connection in the room of its exact href, since
old clients look their page up as ``info[window.location.href]``.

Note that the timestamps sent are the server's ``since`` of each user (when
they arrived), not the ``visitTimestamp`` the client sent, so every protocol
reports the same arrival time.  With tokens required (``DIBS_SECRET``), the
``username`` argument is ignored: the connection's token alone names the user.
"""

from __future__ import annotations

import logging
from typing import Any

from . import rooms
from .fanout import LEGACY_UPDATE
from .identity import legacy_identity
from .service import Service
from .sockets import guarded
from .validation import MAX_HREF, text, timestamp

logger = logging.getLogger(__name__)


def register(service: Service) -> None:
    """Install the ``PAGE_VISIT`` handler on ``service.sio``."""
    sio = service.sio
    registry = service.registry
    everything = service.settings.legacy_scope == "all"

    @sio.on("PAGE_VISIT")
    @guarded("PAGE_VISIT")
    def page_visit(
        sid: str, href: Any = None, username: Any = None, visit_timestamp: Any = None
    ) -> dict[str, Any]:
        url = text(href, "href", MAX_HREF)
        timestamp(visit_timestamp)
        identity = legacy_identity(username, service.settings)
        key = service.key_of(url)

        with service.places.entering(sid, rooms.href(url)):
            changes = registry.visit(
                sid, key, "viewing", service.now(), href=url, identity=identity
            )
        if everything:
            sio.enter_room(sid, rooms.LEGACY_ALL)
        service.fanout.publish(changes)

        view = changes.get(key)
        if view is None:
            # Old clients expect an update after every visit, even one that
            # changed nothing, so they can draw the page's visitors at once.
            view = registry.view(key)
            sio.emit(LEGACY_UPDATE, service.fanout.legacy_update(view, url), to=sid)
        return {"ok": True, "page": key}
