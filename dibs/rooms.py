"""Socket.IO room names.

Each kind of room has its own prefix, and Socket.IO session ids never contain
a colon, so no page key, href or topic a client chooses can name another
connection's private room or a room of another kind.
"""

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
