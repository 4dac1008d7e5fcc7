"""The embedded registry: presence and claims in this process's memory.

It is lock-free and greenlet-safe because no method yields: there is no I/O,
no sleep and no emit inside, so under gevent each call runs to its end before
any other greenlet runs.  Its state is per process; several processes need the
Redis registry instead.
"""

from __future__ import annotations

import dataclasses
import heapq
from typing import Any

from ..errors import NotClaimed, NotHolder, NotVisiting, Taken, TooManyClaims
from .base import Changes, Identity, PageView, Registry, Stats, most_active, next_token


@dataclasses.dataclass(slots=True)
class _Connection:
    identity: Identity
    page: str | None = None
    state: str = "viewing"
    href: str | None = None


@dataclasses.dataclass(slots=True)
class _Viewer:
    name: str
    since: int
    tabs: dict[str, str]
    last_state: str = "viewing"
    away_until: float | None = None

    def public(self, user: str) -> dict[str, Any]:
        state = most_active(list(self.tabs.values())) if self.tabs else self.last_state
        return {
            "user": user,
            "name": self.name,
            "state": state,
            "since": self.since,
            "tabs": len(self.tabs),
        }


@dataclasses.dataclass(slots=True)
class _Claim:
    action: str
    user: str
    name: str
    since: int
    token: int
    expires_at: float
    orphaned_at: float | None = None

    def public(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "user": self.user,
            "name": self.name,
            "since": self.since,
            "token": self.token,
        }


@dataclasses.dataclass(slots=True)
class _Page:
    viewers: dict[str, _Viewer] = dataclasses.field(default_factory=dict)
    claims: dict[str, _Claim] = dataclasses.field(default_factory=dict)
    legacy_hrefs: dict[str, int] = dataclasses.field(default_factory=dict)
    version: int = 0

    def is_empty(self) -> bool:
        return not self.viewers and not self.claims


COMPACT_FLOOR = 1024
"""Deadlines the heap may hold before stale ones are looked for."""


def _millis(now: float) -> int:
    return int(now * 1000)


class MemoryRegistry(Registry):
    """Keep presence and claims in dictionaries of this process.

    Deadlines (a viewer's grace, an orphaned claim's grace, a claim's
    lifetime) wait in a heap and are checked lazily by :meth:`expire`, so
    an expiry sweep costs nothing while nothing is due.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connections: dict[str, _Connection] = {}
        self._pages: dict[str, _Page] = {}
        self._deadlines: list[tuple[float, str, str, str, int]] = []
        self._last_token = 0
        self._last_version = 0
        self._compact_at = COMPACT_FLOOR

    # Operations on connections.

    def connect(self, sid: str, identity: Identity, now: float) -> None:
        self._connections[sid] = _Connection(identity)

    def visit(
        self,
        sid: str,
        page: str,
        state: str,
        now: float,
        href: str | None = None,
        identity: Identity | None = None,
    ) -> Changes:
        connection = self._connections[sid]
        identity = identity or connection.identity
        if (
            connection.page == page
            and connection.href == href
            and connection.identity == identity
        ):
            return self._set_state(sid, connection, state)

        changed: set[str] = set()
        if connection.page is not None:
            self._detach(sid, connection, now, graceful=False, changed=changed)
        connection.identity = identity
        self._attach(sid, connection, page, state, href, now)
        changed.add(page)
        return self._views(changed)

    def leave(self, sid: str, now: float) -> Changes:
        connection = self._connections.get(sid)
        if connection is None or connection.page is None:
            return {}

        changed: set[str] = set()
        self._detach(sid, connection, now, graceful=False, changed=changed)
        return self._views(changed)

    def set_state(self, sid: str, state: str, now: float) -> Changes:
        connection = self._connections.get(sid)
        if connection is None or connection.page is None:
            raise NotVisiting("visit a page before changing your state")
        return self._set_state(sid, connection, state)

    def disconnect(self, sid: str, now: float) -> Changes:
        connection = self._connections.pop(sid, None)
        if connection is None or connection.page is None:
            return {}

        changed: set[str] = set()
        self._detach(sid, connection, now, graceful=True, changed=changed)
        return self._views(changed)

    # Claims.

    def claim(
        self, sid: str, action: str, now: float
    ) -> tuple[dict[str, Any], Changes]:
        connection, page = self._current_page(sid, "claiming")
        user = connection.identity.user
        held = page.claims.get(action)
        if held is not None:
            if held.user == user:
                return held.public(), {}
            raise Taken(f"{action!r} is held by {held.name}", claim=held.public())
        if sum(claim.user == user for claim in page.claims.values()) >= (
            self.max_claims_per_user
        ):
            raise TooManyClaims(
                f"you already hold {self.max_claims_per_user} claims on this page"
            )

        self._last_token = next_token(self._last_token, now)
        claim = _Claim(
            action=action,
            user=user,
            name=connection.identity.name,
            since=_millis(now),
            token=self._last_token,
            expires_at=now + self.claim_ttl_seconds,
        )
        page.claims[action] = claim
        self._schedule(
            claim.expires_at, "lifetime", connection.page, action, claim.token
        )
        return claim.public(), self._views({connection.page})

    def release(self, sid: str, action: str, now: float) -> Changes:
        connection, page = self._current_page(sid, "releasing")
        held = page.claims.get(action)
        if held is None or held.user != connection.identity.user:
            raise NotHolder(f"you do not hold {action!r} on this page")

        del page.claims[action]
        return self._views({connection.page})

    def force_release(
        self, page: str, action: str, now: float
    ) -> tuple[dict[str, Any], Changes]:
        held = self._pages.get(page, _Page()).claims.pop(action, None)
        if held is None:
            raise NotClaimed(f"nobody holds {action!r} on {page!r}")
        return held.public(), self._views({page})

    def expire(self, now: float) -> Changes:
        changed: set[str] = set()
        while self._deadlines and self._deadlines[0][0] <= now:
            _, kind, key, name, token = heapq.heappop(self._deadlines)
            page = self._pages.get(key)
            if page is not None and self._expire_one(page, kind, name, token, now):
                changed.add(key)
        return self._views(changed)

    # Reading.

    def view(self, page: str) -> PageView:
        state = self._pages.get(page)
        if state is None:
            return PageView(page, [], [])
        viewers = sorted(
            (viewer.public(user) for user, viewer in state.viewers.items()),
            key=lambda viewer: (viewer["since"], viewer["user"]),
        )
        claims = sorted(
            (claim.public() for claim in state.claims.values()),
            key=lambda claim: (claim["since"], claim["action"]),
        )
        return PageView(page, viewers, claims, list(state.legacy_hrefs), state.version)

    def views(self) -> list[PageView]:
        return [self.view(page) for page in sorted(self._pages)]

    def page_of(self, sid: str) -> str | None:
        connection = self._connections.get(sid)
        return None if connection is None else connection.page

    def identity_of(self, sid: str) -> Identity | None:
        connection = self._connections.get(sid)
        return None if connection is None else connection.identity

    def stats(self) -> Stats:
        pages = self._pages.values()
        return Stats(
            connections=len(self._connections),
            pages=len(self._pages),
            viewers=sum(len(page.viewers) for page in pages),
            claims=sum(len(page.claims) for page in pages),
        )

    # The steps the operations share.

    def _current_page(self, sid: str, doing: str) -> tuple[_Connection, _Page]:
        connection = self._connections.get(sid)
        if connection is None or connection.page is None:
            raise NotVisiting(f"visit a page before {doing} an action")
        return connection, self._pages[connection.page]

    def _set_state(self, sid: str, connection: _Connection, state: str) -> Changes:
        viewer = self._pages[connection.page].viewers[connection.identity.user]
        before = most_active(list(viewer.tabs.values()))
        connection.state = state
        viewer.tabs[sid] = state
        if most_active(list(viewer.tabs.values())) == before:
            return {}
        return self._views({connection.page})

    def _attach(
        self,
        sid: str,
        connection: _Connection,
        key: str,
        state: str,
        href: str | None,
        now: float,
    ) -> None:
        identity = connection.identity
        page = self._pages.get(key)
        if page is None:
            page = self._pages[key] = _Page()
        viewer = page.viewers.get(identity.user)
        if viewer is None:
            viewer = page.viewers[identity.user] = _Viewer(
                name=identity.name, since=_millis(now), tabs={}
            )
        viewer.name = identity.name
        viewer.tabs[sid] = state
        viewer.away_until = None
        for claim in page.claims.values():
            if claim.user == identity.user:
                claim.orphaned_at = None
        if href is not None:
            page.legacy_hrefs[href] = page.legacy_hrefs.get(href, 0) + 1

        connection.page = key
        connection.state = state
        connection.href = href

    def _detach(
        self,
        sid: str,
        connection: _Connection,
        now: float,
        graceful: bool,
        changed: set[str],
    ) -> None:
        key = connection.page
        page = self._pages[key]
        user = connection.identity.user
        viewer = page.viewers[user]
        del viewer.tabs[sid]
        if connection.href is not None:
            self._forget_href(page, connection.href)
        connection.page = None
        connection.href = None
        changed.add(key)
        if viewer.tabs:
            return

        # The user's last connection to this page is gone: a dropped one keeps
        # them present for the grace period, so a reload shows no "left" to
        # colleagues; their claims wait out the same grace either way.
        if graceful:
            viewer.last_state = connection.state
            viewer.away_until = now + self.grace_seconds
            self._schedule(viewer.away_until, "presence", key, user, 0)
        else:
            del page.viewers[user]
        for claim in page.claims.values():
            if claim.user == user:
                claim.orphaned_at = now
                self._schedule(
                    now + self.grace_seconds, "orphan", key, claim.action, claim.token
                )
        if page.is_empty():
            del self._pages[key]

    def _forget_href(self, page: _Page, href: str) -> None:
        count = page.legacy_hrefs[href] - 1
        if count:
            page.legacy_hrefs[href] = count
        else:
            del page.legacy_hrefs[href]

    def _expire_one(
        self, page: _Page, kind: str, name: str, token: int, now: float
    ) -> bool:
        if not self._pending(page, kind, name, token):
            return False

        if kind == "presence":
            if page.viewers[name].away_until > now:
                return False
            del page.viewers[name]
        else:
            claim = page.claims[name]
            if kind == "orphan" and claim.orphaned_at + self.grace_seconds > now:
                return False
            del page.claims[name]
        return True

    @staticmethod
    def _pending(page: _Page | None, kind: str, name: str, token: int) -> bool:
        """Return whether a deadline still names a live grace or claim."""
        if page is None:
            return False
        if kind == "presence":
            viewer = page.viewers.get(name)
            return (
                viewer is not None and not viewer.tabs and viewer.away_until is not None
            )
        claim = page.claims.get(name)
        if claim is None or claim.token != token:
            return False
        return kind == "lifetime" or claim.orphaned_at is not None

    def _schedule(
        self, when: float, kind: str, page: str, name: str, token: int
    ) -> None:
        heapq.heappush(self._deadlines, (when, kind, page, name, token))
        if len(self._deadlines) >= self._compact_at:
            self._compact()

    def _compact(self) -> None:
        # A released claim's lifetime deadline would wait in the heap until the
        # claim would have lapsed: one client claiming and releasing in a loop
        # would grow it for half an hour.  So when the heap has doubled since
        # the last look, the deadlines that name nothing any more are dropped.
        self._deadlines = [
            entry
            for entry in self._deadlines
            if self._pending(self._pages.get(entry[2]), *entry[1:2], *entry[3:])
        ]
        heapq.heapify(self._deadlines)
        self._compact_at = max(COMPACT_FLOOR, 2 * len(self._deadlines))

    def _views(self, keys: set[str]) -> Changes:
        if not keys:
            return {}

        self._last_version += 1
        views = {}
        for key in keys:
            page = self._pages.get(key)
            if page is not None:
                page.version = self._last_version
                if page.is_empty():
                    del self._pages[key]
            views[key] = self.view(key)
            views[key].version = self._last_version
        return views
