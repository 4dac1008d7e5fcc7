"""The Socket.IO server of Dibs and the guard every event handler runs inside.

Every handler answers with a reply of one shape: ``{"ok": true, ...}`` or
``{"ok": false, "error": CODE, "message": TEXT}``.  The reply goes back as the
event's acknowledgement; when the client asked for none, a failed reply is
sent as an ``error`` event instead, so no failure goes unseen.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import socketio

from . import metrics
from .errors import DibsError, InvalidRequest, UnknownEvent

logger = logging.getLogger(__name__)

Handler = Callable[..., dict[str, Any]]


class DibsSocketServer(socketio.Server):
    """A Socket.IO server that reports failures of ack-less events.

    Note that this overrides ``_handle_event_internal``, a private method of
    python-socketio, because only there is it known whether the client asked
    for an acknowledgement; ``requirements.txt`` pins the version it matches.
    """

    def _handle_event_internal(self, server, sid, eio_sid, data, namespace, id):
        if id is not None:
            return super()._handle_event_internal(
                server, sid, eio_sid, data, namespace, id
            )
        reply = server._trigger_event(data[0], namespace, sid, *data[1:])
        if isinstance(reply, dict) and reply.get("ok") is False:
            self.emit("error", reply, to=sid, namespace=namespace)


def guarded(event: str) -> Callable[[Handler], Handler]:
    """Wrap a handler so that a refusal or a bug becomes a failed reply."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def run(sid: str, *args: Any) -> dict[str, Any]:
            started = time.perf_counter()
            reply = answer(sid, *args)
            metrics.record_event(event, reply, time.perf_counter() - started)
            return reply

        def answer(sid: str, *args: Any) -> dict[str, Any]:
            try:
                return handler(sid, *args)
            except InvalidRequest as error:
                logger.warning("invalid %s from %s: %s", event, sid, error.message)
                return error.reply()
            except DibsError as error:
                logger.info("refused %s from %s: %s", event, sid, error.code)
                return error.reply()
            except Exception:
                logger.exception("error handling %s from %s", event, sid)
                return {"ok": False, "error": "internal", "message": "internal error"}

        return run

    return decorate


def register_unknown_event_handler(sio: socketio.Server) -> None:
    """Answer any event Dibs does not handle with an ``unknown_event`` failure."""

    @sio.on("*")
    def unknown(event: str, sid: str, *args: Any) -> dict[str, Any]:
        logger.warning("unknown event %r from %s", str(event)[:64], sid)
        return UnknownEvent(f"unknown event {str(event)[:64]!r}").reply()
