"""Socket.IO room names.

Each kind of room has its own prefix, and Socket.IO session ids never contain
a colon, so no page key, href or topic a client chooses can name another
connection's private room or a room of another kind.

:class:`Places` keeps each connection of this process in the one room of the
place it is on, whichever protocol put it there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import socketio

LEGACY_ALL = "legacy:all"
"""Every legacy client, when they all get the whole map."""


def page(key: str) -> str:
    """Return the room of modern clients on page ``key``."""
    return "page:" + key


def href(url: str) -> str:
    """Return the room of legacy clients that visited exactly ``url``."""
    return "href:" + url


def topic(name: str) -> str:
    """Return the room of connections subscribed to notification topic ``name``."""
    return "topic:" + name


MONITORS = "monitor:all"
"""Every monitoring board, in the monitor namespace."""


class Places:
    """Keep each connection in the room of the one place it is on.

    A place is a modern client's page room or a legacy client's href room; a
    connection is in at most one, even if it speaks both protocols.  The map
    is per process and nothing here yields.
    """

    def __init__(self, sio: socketio.Server) -> None:
        self.sio = sio
        self._rooms: dict[str, str] = {}

    def move(self, sid: str, room: str | None) -> None:
        """Put ``sid`` in ``room`` (``None``: nowhere), out of its last one."""
        current = self._rooms.pop(sid, None)
        if room is not None:
            self._rooms[sid] = room
        if current == room:
            return
        if current is not None:
            self.sio.leave_room(sid, current)
        if room is not None:
            self.sio.enter_room(sid, room)

    @contextlib.contextmanager
    def entering(self, sid: str, room: str) -> Iterator[None]:
        """Move ``sid`` to ``room`` for the registry call inside the block.

        The connection joins its new room *before* the registry records the
        visit: a shared registry's call yields, and the views of the page that
        other processes deliver meanwhile, newer than the one this call will
        return, must reach it.  If the call fails, it goes back where it was.
        """
        before = self._rooms.get(sid)
        self.move(sid, room)
        try:
            yield
        except BaseException:
            self.move(sid, before)
            raise

    def forget(self, sid: str) -> None:
        """Forget a connection that is gone (Socket.IO empties its rooms)."""
        self._rooms.pop(sid, None)
