"""The registry interface: who is on which page, and who holds which claim.

The Socket.IO handlers and the HTTP API only ever talk to a :class:`Registry`.
Each mutating method makes the whole change in one call and returns the new
view of every page whose presence or claims changed, so that the caller can
tell those pages and nothing else.  An implementation must make each call
atomic: the in-memory one never yields to another greenlet inside a call, and
a shared one runs each call as a single server-side script.

A shared registry can be unreachable for a while: then any call may raise
:class:`~dibs.errors.Unavailable`, except :meth:`connect` and
:meth:`disconnect`, which the registry remembers and settles once its store
is back, so that no handler has to.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

STATES = ("editing", "viewing", "idle")
"""Viewer states, most active first: a user's state is their most active tab's."""


@dataclasses.dataclass(frozen=True)
class Identity:
    """Who a connection speaks for: a stable user id and a display name."""

    user: str
    name: str


@dataclasses.dataclass
class PageView:
    """A snapshot of one page: its viewers, its claims, its legacy hrefs.

    ``viewers`` and ``claims`` are the JSON-ready lists of the ``presence``
    event.  ``legacy_hrefs`` are the exact URLs that legacy clients on this
    page sent, each of which is a room that must hear of changes.

    ``version`` grows with every change the registry makes, across all pages
    (0 for a page nobody is on).  With several processes, views of one page
    can reach a process out of order; the fan-out drops one older than what it
    already delivered, and a client may do the same.
    """

    page: str
    viewers: list[dict[str, Any]]
    claims: list[dict[str, Any]]
    legacy_hrefs: list[str] = dataclasses.field(default_factory=list)
    version: int = 0

    def presence(self) -> dict[str, Any]:
        """Return the PRESENCE payload of the modern protocol."""
        return {
            "page": self.page,
            "viewers": self.viewers,
            "claims": self.claims,
            "version": self.version,
        }

    def legacy_visitors(self) -> dict[str, int]:
        """Return the legacy ``{username: visitTimestamp}`` map of this page."""
        return {viewer["name"]: viewer["since"] for viewer in self.viewers}

    @property
    def is_empty(self) -> bool:
        return not self.viewers and not self.claims


Changes = dict[str, PageView]
"""The pages a mutation changed, by page key, each with its new view."""


@dataclasses.dataclass
class Stats:
    """Counts of what a registry holds, for health checks and metrics."""

    connections: int
    pages: int
    viewers: int
    claims: int


class Registry(abc.ABC):
    """Presence and claims of every connection, behind atomic operations.

    ``now`` arguments are seconds since the epoch (``time.time()``); times in
    results are whole milliseconds since the epoch, as browsers count them.

    :param grace_seconds: how long a user whose connections to a page all
        dropped stays present there and keeps their claims.
    :param claim_ttl_seconds: the longest a claim lives.
    :param max_claims_per_user: most claims one user holds on one page.
    """

    def __init__(
        self,
        grace_seconds: float = 5.0,
        claim_ttl_seconds: float = 1800.0,
        max_claims_per_user: int = 16,
    ) -> None:
        self.grace_seconds = grace_seconds
        self.claim_ttl_seconds = claim_ttl_seconds
        self.max_claims_per_user = max_claims_per_user

    @abc.abstractmethod
    def connect(self, sid: str, identity: Identity, now: float) -> None:
        """Remember a new connection and whom it speaks for."""

    @abc.abstractmethod
    def visit(
        self,
        sid: str,
        page: str,
        state: str,
        now: float,
        href: str | None = None,
        identity: Identity | None = None,
    ) -> Changes:
        """Put the connection on ``page`` (moving it off any other).

        ``href`` marks a legacy client and is the exact URL it sent.
        ``identity``, when given, replaces the connection's identity first
        (legacy clients name their user in every visit).
        """

    @abc.abstractmethod
    def leave(self, sid: str, now: float) -> Changes:
        """Take the connection off its page; its user's presence ends at once."""

    @abc.abstractmethod
    def set_state(self, sid: str, state: str, now: float) -> Changes:
        """Change the state of the connection on its current page."""

    @abc.abstractmethod
    def disconnect(self, sid: str, now: float) -> Changes:
        """Forget the connection; its user stays present for the grace period."""

    @abc.abstractmethod
    def claim(
        self, sid: str, action: str, now: float
    ) -> tuple[dict[str, Any], Changes]:
        """Claim ``action`` on the connection's page for its user.

        :raises NotVisiting: the connection is on no page.
        :raises Taken: another user holds it (the error carries the claim).
        :raises TooManyClaims: the user holds too many claims on the page.
        """

    @abc.abstractmethod
    def release(self, sid: str, action: str, now: float) -> Changes:
        """Release the user's claim on ``action`` on the connection's page.

        :raises NotVisiting: the connection is on no page.
        :raises NotHolder: the user does not hold that claim.
        """

    @abc.abstractmethod
    def force_release(
        self, page: str, action: str, now: float
    ) -> tuple[dict[str, Any], Changes]:
        """Release a claim whoever holds it and return the claim released.

        :raises NotClaimed: nobody holds it.
        """

    @abc.abstractmethod
    def expire(self, now: float) -> Changes:
        """End every presence and claim whose grace or lifetime ran out."""

    def maintain(self, now: float) -> Changes:
        """Do the upkeep the sweeper runs about once a second: :meth:`expire`.

        A shared registry also beats this process's heartbeat, cleans up
        after processes whose heartbeat stopped, and, once its store is back
        from an outage, registers this process's connections again; the
        pages it returns then get a fresh snapshot.

        :raises Unavailable: the shared store cannot be reached.
        """
        return self.expire(now)

    def check(self) -> None:  # noqa: B027 (a no-op unless the store is shared)
        """Return if the registry can serve, for health checks.

        :raises Unavailable: the shared store cannot be reached.
        """

    @abc.abstractmethod
    def view(self, page: str) -> PageView:
        """Return the current view of ``page`` (empty if nobody is there)."""

    @abc.abstractmethod
    def views(self) -> list[PageView]:
        """Return the view of every page that has viewers or claims."""

    @abc.abstractmethod
    def page_of(self, sid: str) -> str | None:
        """Return the page the connection is on, if any."""

    @abc.abstractmethod
    def identity_of(self, sid: str) -> Identity | None:
        """Return whom the connection speaks for, if it is known."""

    @abc.abstractmethod
    def stats(self) -> Stats:
        """Count connections, pages, viewers and claims."""

    def close(self) -> None:  # noqa: B027 (a no-op unless the store is shared)
        """Release whatever the registry holds outside the process."""


def most_active(states: list[str]) -> str:
    """Return the most active of ``states`` (``editing`` beats ``viewing``...)."""
    return min(states, key=STATES.index)


def next_token(last: int, now: float) -> int:
    """Return a fencing token greater than ``last``.

    Tokens follow the clock in microseconds, so they keep increasing even if
    the counter behind ``last`` is lost and starts again from zero.
    """
    return max(last + 1, int(now * 1_000_000))
