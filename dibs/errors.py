"""The errors Dibs reports to clients, each with a stable machine-readable code.

Every failed socket request is answered ``{"ok": false, "error": CODE,
"message": TEXT}`` and every failed HTTP request gets a JSON body with the same
``error`` and ``message``; both are built from these classes.
"""

from __future__ import annotations

from typing import Any


class DibsError(Exception):
    """A request Dibs refuses; ``code`` is stable, ``message`` is for people."""

    code = "error"
    status = 400

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def reply(self) -> dict[str, Any]:
        """Return the body sent back to the client for this error."""
        return {
            "ok": False,
            "error": self.code,
            "message": self.message,
            **self.details,
        }


class InvalidRequest(DibsError):
    """The payload has the wrong shape, type, length or value."""

    code = "invalid"


class NotVisiting(DibsError):
    """The request needs a current page and the connection has none."""

    code = "not_visiting"
    status = 409


class Taken(DibsError):
    """Another user already holds the claim; ``claim`` names the holder."""

    code = "taken"
    status = 409


class NotHolder(DibsError):
    """Only the holder of a claim may release it."""

    code = "not_holder"
    status = 409


class TooManyClaims(DibsError):
    """The user already holds as many claims on this page as allowed."""

    code = "too_many_claims"
    status = 409


class TooManySubscriptions(DibsError):
    """The connection already follows as many topics as allowed."""

    code = "too_many_subscriptions"
    status = 409


class NotClaimed(DibsError):
    """Nobody holds the claim asked about."""

    code = "not_claimed"
    status = 404


class Unauthorized(DibsError):
    """The credentials are missing or wrong."""

    code = "unauthorized"
    status = 401


class RateLimited(DibsError):
    """The connection sent more events than it is allowed to."""

    code = "rate_limited"
    status = 429


class Unavailable(DibsError):
    """A store Dibs needs (Redis) cannot be reached; the request may be retried."""

    code = "unavailable"
    status = 503


class UnknownEvent(DibsError):
    """The client sent an event Dibs does not know."""

    code = "unknown_event"
