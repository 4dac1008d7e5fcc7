"""Notifications: topics that connections subscribe to, and publishing to them.

A topic is a Socket.IO room, so publishing is one ``emit`` through
python-socketio's client manager, and the Redis manager carries it to the
subscribers on every process.  Subscriptions are nothing but the rooms of this
process's connections: nothing else is stored, and nothing here yields except
the emit of a publish.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import socketio

from . import rooms
from .errors import InvalidRequest, TooManySubscriptions
from .service import Service
from .sockets import guarded
from .validation import payload

logger = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_DATA_BYTES = 16 * 1024
"""Largest ``data`` a notification may carry, as compact UTF-8 JSON."""


def register(service: Service) -> None:
    """Install the ``subscribe`` and ``unsubscribe`` handlers on ``service.sio``."""
    sio = service.sio
    limit = service.settings.max_subscriptions

    @sio.on("subscribe")
    @guarded("subscribe")
    def subscribe(sid: str, data: Any = None) -> dict[str, Any]:
        topic = name_field(payload(data, "subscribe"), "topic")
        room = rooms.topic(topic)
        subscribed = subscriptions(sio, sid)
        if room not in subscribed and len(subscribed) >= limit:
            raise TooManySubscriptions(
                f"a connection may subscribe to at most {limit} topics: "
                "unsubscribe from one first"
            )

        sio.enter_room(sid, room)
        logger.debug("subscribe %s to %s", sid, topic)
        return {"ok": True, "topic": topic}

    @sio.on("unsubscribe")
    @guarded("unsubscribe")
    def unsubscribe(sid: str, data: Any = None) -> dict[str, Any]:
        topic = name_field(payload(data, "unsubscribe"), "topic")
        sio.leave_room(sid, rooms.topic(topic))
        logger.debug("unsubscribe %s from %s", sid, topic)
        return {"ok": True, "topic": topic}


def subscriptions(sio: socketio.Server, sid: str) -> list[str]:
    """Return the topic rooms connection ``sid`` is in."""
    prefix = rooms.topic("")
    return [room for room in sio.rooms(sid) if room.startswith(prefix)]


def name_field(data: dict[str, Any], field: str) -> str:
    """Return ``data[field]``: 1 to 64 letters, digits or ``_-.:`` characters."""
    value = data.get(field)
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise InvalidRequest(
            f"{field} must be 1 to 64 letters, digits or _-.: characters, "
            f"got {value!r}"[:200]
        )
    return value


def notification(body: Any, now: float) -> dict[str, Any]:
    """Return the ``notify`` payload that a publish request's ``body`` asks for.

    :param body: the decoded JSON body, ``{topic, event, data}``.
    :param now: seconds since the epoch; ``at`` is that in milliseconds.
    :raises InvalidRequest: the body is not an object, a name is not a short
        identifier, or ``data`` is larger than :data:`MAX_DATA_BYTES`.
    """
    if not isinstance(body, dict):
        raise InvalidRequest("send a JSON object such as {topic, event, data}")
    topic = name_field(body, "topic")
    event = name_field(body, "event")
    data = body.get("data")

    size = len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_DATA_BYTES:
        raise InvalidRequest(
            f"data must be at most {MAX_DATA_BYTES} bytes of JSON, got {size}"
        )
    return {"topic": topic, "event": event, "data": data, "at": int(now * 1000)}


def publish(sio: socketio.Server, notice: dict[str, Any]) -> None:
    """Send ``notice`` to every subscriber of its topic, on every process."""
    sio.emit("notify", notice, to=rooms.topic(notice["topic"]))
    logger.info("publish %s to topic %s", notice["event"], notice["topic"])
