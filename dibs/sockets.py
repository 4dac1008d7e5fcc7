"""The Socket.IO server of Dibs, which checks every packet, and the guard every
event handler runs inside.

Every handler answers with a reply of one shape: ``{"ok": true, ...}`` or
``{"ok": false, "error": CODE, "message": TEXT}``.  The reply goes back as the
event's acknowledgement; when the client asked for none, a failed reply is
sent as an ``error`` event instead, so no failure goes unseen.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import socketio
from socketio import packet

from . import metrics, polling, sessions
from .errors import DibsError, InvalidRequest, RateLimited, UnknownEvent
from .ratelimit import RateLimiter

logger = logging.getLogger(__name__)

Handler = Callable[..., dict[str, Any]]


RESERVED_EVENTS = frozenset({"connect", "disconnect", "connect_error", "*"})
"""Event names no client may send: python-socketio would run the server's own
handler for them, so an event named ``connect`` would identify the
connection anew."""

NOT_BINARY = "binary attachments are not accepted: send JSON"


class TextPacket(packet.Packet):
    """A Socket.IO packet that Dibs sends: JSON, never binary attachments.

    python-socketio otherwise walks every payload it sends, looking for
    bytes, once per emit and per acknowledgement: about a tenth of the
    server's time under load, for nothing, since Dibs sends no bytes.
    Packets received are decoded as usual.
    """

    uses_binary_events = False


class DibsSocketServer(socketio.Server):
    """A Socket.IO server that checks every packet before python-socketio acts on it.

    Refused with a failed reply and one WARNING line: malformed packets,
    packets with binary attachments (as soon as their header is decoded, so no
    attachment is ever waited for or kept), events named like the server's own
    (:data:`RESERVED_EVENTS`), and packets past the connection's rate limit.
    A failed reply goes back as the acknowledgement; when the client asked for
    none, as an ``error`` event, so no failure goes unseen.  Long-polling POSTs
    are checked by :mod:`dibs.polling` before python-engineio reads them, and a
    session whose client reads none of its replies is closed
    (:mod:`dibs.sessions`).

    :param rate_limiter: the limit on packets per connection; none if omitted.

    Note that this overrides private methods of python-socketio:
    ``_handle_eio_message``, the one place a packet is seen before it is
    dispatched; ``_handle_event_internal``, the one place it is known whether
    the client asked for an acknowledgement; ``_handle_eio_disconnect``, to
    forget the connection's bucket.  It also sends acknowledgements of refused
    packets with ``_send_packet``.  ``requirements.txt`` pins the version
    they match.
    """

    def __init__(
        self, *args: Any, rate_limiter: RateLimiter | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **{"serializer": TextPacket, **kwargs})
        self.rate_limiter = rate_limiter

    def handle_request(self, environ: dict[str, Any], start_response: Any) -> Any:
        """Serve one request; refuse a long-polling POST python-engineio cannot take."""
        # A keep-alive connection may carry requests back to back, which
        # never yields to the hub: give the other greenlets a turn first.
        self.sleep(0)
        try:
            polling.check_post(environ, self.eio.max_http_buffer_size)
        except polling.Refusal as refusal:
            return self.refuse_post(environ, start_response, refusal)
        return super().handle_request(environ, start_response)

    def refuse_post(
        self, environ: dict[str, Any], start_response: Any, refusal: polling.Refusal
    ) -> list[bytes]:
        """Answer a refused POST and close its session without waiting."""
        sid = polling.session_of(environ)
        logger.warning(
            "refused long-polling POST to %s from %s: %s",
            sid,
            environ.get("REMOTE_ADDR", "?"),
            refusal.reason,
        )
        session = self.eio.sockets.pop(sid, None)
        if session is not None:
            session.close(wait=False, abort=True)
        start_response(refusal.status, [("Content-Type", "text/plain; charset=utf-8")])
        return [refusal.reason.encode()]

    def _handle_eio_message(self, eio_sid, data):
        session = self.eio.sockets.get(eio_sid)
        if session is not None and sessions.over_backlog(session):
            sessions.close(self, session, "the client reads none of its replies")
            return

        pkt, refusal = self.inspect(data)
        namespace = (pkt.namespace if pkt else None) or "/"
        id = pkt.id if pkt else None
        if not self.within_rate(eio_sid, pkt):
            self.refuse(eio_sid, namespace, id, RateLimited(self.slow_down()))
        elif refusal is not None:
            sid = self.manager.sid_from_eio_sid(eio_sid, namespace) or eio_sid
            logger.warning("refused packet from %s: %s", sid, refusal.message)
            self.refuse(eio_sid, namespace, id, refusal)
        else:
            super()._handle_eio_message(eio_sid, data)

    def _handle_event_internal(self, server, sid, eio_sid, data, namespace, id):
        if id is not None:
            return super()._handle_event_internal(
                server, sid, eio_sid, data, namespace, id
            )
        reply = server._trigger_event(data[0], namespace, sid, *data[1:])
        if isinstance(reply, dict) and reply.get("ok") is False:
            self.emit("error", reply, to=sid, namespace=namespace)

    def _handle_eio_disconnect(self, eio_sid, reason):
        if self.rate_limiter is not None:
            self.rate_limiter.forget(eio_sid)
        return super()._handle_eio_disconnect(eio_sid, reason)

    def inspect(self, data: Any) -> tuple[Any, DibsError | None]:
        """Decode a Socket.IO packet; return it and why it is refused, if it is."""
        if not isinstance(data, str):
            return None, InvalidRequest(NOT_BINARY)
        # Decoded step by step, so that a packet whose JSON is broken still
        # yields the ack id and namespace parsed before it, for the reply.
        pkt = self.packet_class()
        try:
            pkt.attachment_count = pkt.decode(data) or 0
        except (ValueError, TypeError, RecursionError) as error:
            return pkt, InvalidRequest(f"malformed packet: {str(error)[:80]}")

        if pkt.packet_type in (packet.BINARY_EVENT, packet.BINARY_ACK):
            return pkt, InvalidRequest(NOT_BINARY)
        if pkt.packet_type not in (
            packet.CONNECT,
            packet.DISCONNECT,
            packet.EVENT,
            packet.ACK,
        ):
            return pkt, InvalidRequest(f"unexpected packet type {pkt.packet_type}")
        if pkt.packet_type != packet.EVENT:
            return pkt, None

        event = pkt.data[0] if isinstance(pkt.data, list) and pkt.data else None
        if not isinstance(event, str):
            return pkt, InvalidRequest("an event must be a list: [name, ...arguments]")
        if event in RESERVED_EVENTS:
            return pkt, UnknownEvent(f"{event!r} is reserved and cannot be sent")
        return pkt, None

    def within_rate(self, eio_sid: str, pkt: Any) -> bool:
        """Take a token for one packet; say once per burst when there is none."""
        if self.rate_limiter is None or (
            pkt is not None and pkt.packet_type == packet.DISCONNECT
        ):
            return True
        if self.rate_limiter.allow(eio_sid):
            return True

        if self.rate_limiter.refused_in_a_row(eio_sid) == 1:
            sid = self.manager.sid_from_eio_sid(eio_sid, "/") or eio_sid
            logger.warning("rate limited %s: %s", sid, self.slow_down())
        return False

    def slow_down(self) -> str:
        """Return the message of a ``rate_limited`` reply."""
        limiter = self.rate_limiter
        return (
            f"over {limiter.rate:g} events per second (bursts of {limiter.burst}): "
            "slow down"
        )

    def refuse(self, eio_sid: str, namespace: str, id: Any, error: DibsError) -> None:
        """Send ``error``'s reply to a connected client, as ack or ``error`` event."""
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is None or not self.manager.is_connected(sid, namespace):
            return
        reply = error.reply()
        if id is None:
            self.emit("error", reply, to=sid, namespace=namespace)
        else:
            ack = self.packet_class(
                packet.ACK, namespace=namespace, id=id, data=[reply]
            )
            self._send_packet(eio_sid, ack)


def guarded(event: str) -> Callable[[Handler], Handler]:
    """Wrap a handler so that a refusal or a bug becomes a failed reply."""

    def decorate(handler: Handler) -> Handler:
        most = arguments_after_sid(handler)

        @functools.wraps(handler)
        def run(sid: str, *args: Any) -> dict[str, Any]:
            started = time.perf_counter()
            reply = answer(sid, *args)
            metrics.record_event(event, reply, time.perf_counter() - started)
            return reply

        def answer(sid: str, *args: Any) -> dict[str, Any]:
            try:
                if len(args) > most:
                    raise InvalidRequest(
                        f"{event} takes {most} argument(s) at most, got {len(args)}"
                    )
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


def arguments_after_sid(handler: Handler) -> int:
    """Return how many positional arguments ``handler`` takes after the sid."""
    positional = (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    )
    parameters = inspect.signature(handler).parameters.values()
    if any(
        parameter.kind == inspect.Parameter.VAR_POSITIONAL for parameter in parameters
    ):
        return sys.maxsize
    return sum(parameter.kind in positional for parameter in parameters) - 1


def register_unknown_event_handler(sio: socketio.Server) -> None:
    """Answer any event Dibs does not handle with an ``unknown_event`` failure."""

    @sio.on("*")
    def unknown(event: str, sid: str, *args: Any) -> dict[str, Any]:
        logger.warning("unknown event %r from %s", str(event)[:64], sid)
        return UnknownEvent(f"unknown event {str(event)[:64]!r}").reply()
