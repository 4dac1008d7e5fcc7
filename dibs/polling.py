"""Long-polling POSTs, checked before python-engineio reads them.

python-engineio answers a POST that is too large, or that carries a packet
type a client never sends, by closing the session and waiting until its
queue is drained; when the client does not poll again that request waits
forever, holding its greenlet and socket.  Bodies it cannot decode at all
cost a traceback in the log.  So every POST to a session is read here first,
within the size limit, and refused with a 4xx and one WARNING line if
python-engineio could not take it; the caller then closes the session
without waiting.  Pure functions apart from reading the request body.
"""

from __future__ import annotations

import io
import urllib.parse
from typing import Any

from engineio import packet
from engineio.payload import Payload

CLIENT_PACKETS = frozenset({packet.CLOSE, packet.PONG, packet.MESSAGE, packet.UPGRADE})
"""The Engine.IO packet types a client sends; python-engineio fails on others."""


class Refusal(Exception):
    """A long-polling POST that must not reach python-engineio."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def session_of(environ: dict[str, Any]) -> str | None:
    """Return the Engine.IO session a request names, if any."""
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    return query.get("sid", [None])[0]


def check_post(environ: dict[str, Any], limit: int) -> None:
    """Read the body of a POST to a session; refuse what python-engineio can't take.

    The body read is put back in ``environ`` for python-engineio to read.

    :raises Refusal: the body is larger than ``limit`` bytes, not UTF-8, not
        an Engine.IO payload, or carries a packet a client never sends.
    """
    if environ.get("REQUEST_METHOD") != "POST" or session_of(environ) is None:
        return
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise Refusal("400 BAD REQUEST", "Content-Length is not a number") from None
    if length > limit:
        raise Refusal("413 PAYLOAD TOO LARGE", f"{length} bytes, over {limit}")

    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    try:
        payload = Payload(encoded_payload=body.decode("utf-8"))
    except (ValueError, TypeError) as error:
        raise Refusal(
            "400 BAD REQUEST", f"malformed payload: {str(error)[:80]}"
        ) from None
    for pkt in payload.packets:
        if pkt.packet_type not in CLIENT_PACKETS:
            raise Refusal(
                "400 BAD REQUEST", f"unexpected packet type {pkt.packet_type}"
            )
