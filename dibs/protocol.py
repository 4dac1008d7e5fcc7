"""The modern Socket.IO protocol: identity at connect, visit, leave, state,
claim and release.

Each handler validates its payload, makes one registry call, moves the
connection between page rooms, fans the changes out, and replies.
"""

from __future__ import annotations

import logging
from typing import Any

import socketio

from . import metrics, rooms
from .errors import DibsError
from .identity import identify
from .service import Service
from .sockets import guarded
from .validation import action_field, page_field, payload, state_field

logger = logging.getLogger(__name__)


def register(service: Service) -> None:
    """Install the modern protocol's handlers on ``service.sio``."""
    sio = service.sio
    registry = service.registry

    @sio.on("connect")
    def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        try:
            identity = identify(auth, environ, service.settings)
        except DibsError as error:
            reason = error.details.get("reason", error.code)
            logger.warning(
                "refused connection %s from %s: %s (%s)",
                sid,
                environ.get("REMOTE_ADDR", "?"),
                reason,
                error.message,
            )
            metrics.record_refusal(reason)
            # The client's connect_error carries only the code, never the detail.
            raise socketio.exceptions.ConnectionRefusedError(error.code) from None

        registry.connect(sid, identity, service.now())
        logger.info(
            "connect %s user=%s transport=%s",
            sid,
            identity.user,
            sio.transport(sid),
        )

    @sio.on("disconnect")
    def disconnect(sid: str, reason: Any = None) -> None:
        identity = registry.identity_of(sid)
        service.places.forget(sid)
        service.fanout.publish(registry.disconnect(sid, service.now()))
        logger.info(
            "disconnect %s user=%s reason=%s",
            sid,
            identity.user if identity else "?",
            reason,
        )

    @sio.on("visit")
    @guarded("visit")
    def visit(sid: str, data: Any = None) -> dict[str, Any]:
        data = payload(data, "visit")
        key = service.key_of(page_field(data))
        state = state_field(data)

        with service.places.entering(sid, rooms.page(key)):
            changes = registry.visit(sid, key, state, service.now())
        service.fanout.publish(changes)

        view = changes.get(key) or registry.view(key)
        return {"ok": True, "page": key, "presence": view.presence()}

    @sio.on("leave")
    @guarded("leave")
    def leave(sid: str, data: Any = None) -> dict[str, Any]:
        payload(data, "leave")
        changes = registry.leave(sid, service.now())
        service.places.move(sid, None)
        service.fanout.publish(changes)
        return {"ok": True}

    @sio.on("state")
    @guarded("state")
    def state(sid: str, data: Any = None) -> dict[str, Any]:
        new_state = state_field(payload(data, "state"), default=None)
        service.fanout.publish(registry.set_state(sid, new_state, service.now()))
        return {"ok": True}

    @sio.on("claim")
    @guarded("claim")
    def claim(sid: str, data: Any = None) -> dict[str, Any]:
        action = action_field(payload(data, "claim"))
        granted, changes = registry.claim(sid, action, service.now())
        service.fanout.publish(changes)
        if changes:
            logger.info(
                "claim %s on %s by %s token=%s",
                action,
                registry.page_of(sid),
                granted["user"],
                granted["token"],
            )
        return {"ok": True, "claim": granted}

    @sio.on("release")
    @guarded("release")
    def release(sid: str, data: Any = None) -> dict[str, Any]:
        action = action_field(payload(data, "release"))
        page = registry.page_of(sid)
        identity = registry.identity_of(sid)
        service.fanout.publish(registry.release(sid, action, service.now()))
        logger.info("release %s on %s by %s (%s)", action, page, identity.user, sid)
        return {"ok": True}
