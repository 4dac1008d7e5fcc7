"""The shared registry: presence and claims in Redis, for several processes.

Every call runs ONE Lua script (``scripts/``) that makes the whole change
inside Redis and returns, as JSON, the views of the pages it changed: each
call is atomic across processes and costs one round trip.  Calls wait on
Redis I/O, which yields to other greenlets once gevent has patched sockets.

Per-process state: each process beats a heartbeat in Redis under an id of its
own, and keeps a small record of its OWN connections (identity, page, state,
href).  That record answers :meth:`page_of` and :meth:`identity_of` without a
round trip, and lets the process register its connections again when Redis
returns from an outage or a restart that lost its data.

Note that times come from the callers' clocks (``now``): grace periods and
claim lifetimes compare times written by different processes, so their hosts'
clocks must agree (NTP); a skew of S seconds moves each by S.  Heartbeats are
stamped and judged by Redis's own clock instead, and fencing tokens follow it
too, so they keep increasing after Redis loses its data even if one host's
clock is behind.

Note that claims live only in Redis: a Redis restart that loses its data
loses the claims (presence comes back, each process registers its own).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from ..errors import (
    NotClaimed,
    NotHolder,
    NotVisiting,
    Taken,
    TooManyClaims,
    Unavailable,
)
from .base import Changes, Identity, PageView, Registry, Stats

logger = logging.getLogger(__name__)

SCRIPTS = Path(__file__).resolve().parent / "scripts"
KEY_PREFIX = "dibs:"

COMMAND_TIMEOUT = 3.0
"""Longest wait for one Redis reply; a script runs in well under a millisecond."""

CONNECT_TIMEOUT = 2.0
HEALTH_CHECK_SECONDS = 5
"""A connection idle this long is pinged before use, so a stale one is replaced."""

OUTAGE_ERRORS = (redis.ConnectionError, redis.TimeoutError)


def client_options() -> dict[str, Any]:
    """Return the redis-py options every Dibs connection to Redis uses.

    Keepalive finds a peer that vanished; health checks find a connection
    Redis closed; one quick retry rides over a restart; and a failure after
    that is reported at once, so a request never hangs for long.
    """
    return {
        "socket_timeout": COMMAND_TIMEOUT,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_keepalive": True,
        "health_check_interval": HEALTH_CHECK_SECONDS,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=1),
    }


def describe_url(url: str) -> str:
    """Return ``host:port/db`` of a Redis URL, without its password."""
    parts = urlsplit(url)
    where = parts.hostname or parts.path or "localhost"
    if parts.port:
        where += f":{parts.port}"
    if parts.hostname and parts.path not in ("", "/"):
        where += parts.path
    return where


def load_scripts() -> dict[str, str]:
    """Return the source of each operation's script, shared helpers first."""
    common = (SCRIPTS / "common.lua").read_text()
    return {
        path.stem: common + "\n" + path.read_text()
        for path in sorted(SCRIPTS.glob("*.lua"))
        if path.stem != "common"
    }


@dataclasses.dataclass(slots=True)
class _Connection:
    """What this process remembers of one of its own connections."""

    identity: Identity
    page: str | None = None
    state: str = "viewing"
    href: str | None = None

    def record(self, sid: str) -> dict[str, Any]:
        return {
            "sid": sid,
            "user": self.identity.user,
            "name": self.identity.name,
            "state": self.state,
            "page": self.page,
            "href": self.href,
        }


def _list(value: Any) -> list[Any]:
    # Lua's cjson writes an empty list as {}.
    return value if isinstance(value, list) else []


def _page_view(data: dict[str, Any]) -> PageView:
    viewers = [
        {
            "user": viewer["user"],
            "name": viewer["name"],
            "state": viewer["state"],
            "since": viewer["since"],
            "tabs": viewer["tabs"],
        }
        for viewer in _list(data["viewers"])
    ]
    claims = [_claim(claim) for claim in _list(data["claims"])]
    return PageView(
        data["page"],
        viewers,
        claims,
        _list(data["hrefs"]),
        int(data.get("version") or 0),
    )


def _claim(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "action": data["action"],
        "user": data["user"],
        "name": data["name"],
        "since": data["since"],
        "token": int(data["token"]),
    }


class RedisRegistry(Registry):
    """Keep presence and claims in Redis, shared by every process using it.

    :param url: the Redis URL, such as ``redis://127.0.0.1:6379/0``.
    :param process_timeout_seconds: a process whose heartbeat is older than
        this is declared dead and its connections are cleaned up.
    :param prefix: put in front of every key, to share a Redis database.
    :raises Unavailable: Redis cannot be reached.
    """

    def __init__(
        self,
        url: str,
        *args: Any,
        process_timeout_seconds: float = 10.0,
        prefix: str = KEY_PREFIX,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.where = describe_url(url)
        self.process_timeout_seconds = process_timeout_seconds
        self.prefix = prefix
        self.process_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._client = redis.Redis.from_url(url, **client_options())
        self._scripts = {
            name: self._client.register_script(source)
            for name, source in load_scripts().items()
        }
        self._connections: dict[str, _Connection] = {}
        self._gone: set[str] = set()
        self._down_since: float | None = None

        self.check()
        self._call("restore", time.time(), {"live": [], "gone": []})
        logger.info(
            "registry in Redis at %s as process %s", self.where, self.process_id
        )

    # Operations on connections.

    def connect(self, sid: str, identity: Identity, now: float) -> None:
        self._connections[sid] = _Connection(identity)
        try:
            self._run("connect", now, sid=sid, user=identity.user, name=identity.name)
        except Unavailable:
            pass  # registered with the others when Redis returns

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
        reply = self._run(
            "visit",
            now,
            sid=sid,
            page=page,
            state=state,
            href=href,
            user=identity.user,
            name=identity.name,
        )

        connection.identity = identity
        connection.page = page
        connection.state = state
        connection.href = href
        return self._changes(reply)

    def leave(self, sid: str, now: float) -> Changes:
        connection = self._connections.get(sid)
        if connection is None or connection.page is None:
            return {}

        reply = self._run("leave", now, sid=sid)
        connection.page = None
        connection.href = None
        return self._changes(reply)

    def set_state(self, sid: str, state: str, now: float) -> Changes:
        connection = self._connection_on_page(sid, "changing your state")
        reply = self._run("state", now, sid=sid, state=state)
        if "error" in reply:
            raise NotVisiting("visit a page before changing your state")

        connection.state = state
        return self._changes(reply)

    def disconnect(self, sid: str, now: float) -> Changes:
        if self._connections.pop(sid, None) is None:
            return {}

        try:
            return self._changes(self._run("disconnect", now, sid=sid))
        except Unavailable:
            # Redis forgets it when it returns; until then nobody hears.
            self._gone.add(sid)
            return {}

    # Claims.

    def claim(
        self, sid: str, action: str, now: float
    ) -> tuple[dict[str, Any], Changes]:
        self._connection_on_page(sid, "claiming an action")
        reply = self._run("claim", now, sid=sid, action=action)
        error = reply.get("error")
        if error == "taken":
            held = _claim(reply["claim"])
            raise Taken(f"{action!r} is held by {held['name']}", claim=held)
        if error == "too_many_claims":
            raise TooManyClaims(
                f"you already hold {self.max_claims_per_user} claims on this page"
            )
        if error == "not_visiting":
            raise NotVisiting("visit a page before claiming an action")
        return _claim(reply["result"]), self._changes(reply)

    def release(self, sid: str, action: str, now: float) -> Changes:
        self._connection_on_page(sid, "releasing an action")
        reply = self._run("release", now, sid=sid, action=action)
        if reply.get("error") == "not_visiting":
            raise NotVisiting("visit a page before releasing an action")
        if reply.get("error") == "not_holder":
            raise NotHolder(f"you do not hold {action!r} on this page")
        return self._changes(reply)

    def force_release(
        self, page: str, action: str, now: float
    ) -> tuple[dict[str, Any], Changes]:
        reply = self._run("force_release", now, page=page, action=action)
        if reply.get("error") == "not_claimed":
            raise NotClaimed(f"nobody holds {action!r} on {page!r}")
        return _claim(reply["result"]), self._changes(reply)

    def expire(self, now: float) -> Changes:
        return self._changes(self._run("expire", now))

    # Upkeep.

    def maintain(self, now: float) -> Changes:
        """Beat, clean up after dead processes, expire; recover from an outage."""
        if self._down_since is not None:
            return self._recover(now)

        reply = self._run("maintain", now, timeout=self.process_timeout_seconds)
        result = reply["result"]
        for process, count in _list(result["reaped"]):
            logger.warning(
                "process %s stopped beating: removed its %d connections", process, count
            )
        changes = self._changes(reply)
        if not result["known"]:
            logger.warning(
                "Redis had lost this process (restarted, or took it for dead): "
                "registering its %d connections again",
                len(self._connections),
            )
            changes.update(self._restore(now))
        return changes

    def check(self) -> None:
        try:
            self._client.ping()
        except OUTAGE_ERRORS as error:
            raise Unavailable(
                f"Redis at {self.where} is unreachable: {error}"
            ) from None

    def close(self) -> None:
        """Drop this process's connections, with the usual grace, and disconnect."""
        try:
            self._call("retire", time.time(), {})
        except Unavailable:
            pass  # the others clean up once its heartbeat is old enough
        self._client.close()

    # Reading.

    def view(self, page: str) -> PageView:
        return _page_view(self._run("view", time.time(), page=page)["result"])

    def views(self) -> list[PageView]:
        reply = self._run("view", time.time())
        return [_page_view(view) for view in _list(reply["result"])]

    def page_of(self, sid: str) -> str | None:
        connection = self._connections.get(sid)
        return None if connection is None else connection.page

    def identity_of(self, sid: str) -> Identity | None:
        connection = self._connections.get(sid)
        return None if connection is None else connection.identity

    def stats(self) -> Stats:
        return Stats(**self._run("stats", time.time())["result"])

    # Talking to Redis.

    def _run(self, script: str, now: float, **arguments: Any) -> dict[str, Any]:
        if self._down_since is not None:
            # Only the sweeper's maintain() knocks while Redis is away, so a
            # burst of requests during an outage costs no waiting.
            raise Unavailable("the presence store (Redis) is unreachable; try again")
        return self._call(script, now, arguments)

    def _call(
        self, script: str, now: float, arguments: dict[str, Any]
    ) -> dict[str, Any]:
        given = {name: value for name, value in arguments.items() if value is not None}
        args = [
            self.prefix,
            repr(now),
            repr(self.grace_seconds),
            repr(self.claim_ttl_seconds),
            self.max_claims_per_user,
            self.process_id,
            json.dumps(given),
        ]
        try:
            return json.loads(self._scripts[script](args=args))
        except OUTAGE_ERRORS as error:
            self._went_down(error)
            raise Unavailable(
                "the presence store (Redis) is unreachable; try again"
            ) from None

    def _went_down(self, error: Exception) -> None:
        if self._down_since is not None:
            return
        self._down_since = time.monotonic()
        logger.warning(
            "Redis at %s is unreachable (%s): requests fail with 'unavailable' "
            "until it returns",
            self.where,
            error,
        )

    def _recover(self, now: float) -> Changes:
        changes = self._restore(now)
        logger.info(
            "Redis at %s is back after %.1f s: registered %d connections again",
            self.where,
            time.monotonic() - self._down_since,
            len(self._connections),
        )
        self._down_since = None

        # Connections that dropped while the restore was on its way.
        for sid in sorted(self._gone):
            changes.update(self._changes(self._call("disconnect", now, {"sid": sid})))
            self._gone.discard(sid)
        return changes

    def _restore(self, now: float) -> Changes:
        gone = set(self._gone)
        live = [
            {
                name: value
                for name, value in connection.record(sid).items()
                if value is not None
            }
            for sid, connection in self._connections.items()
        ]
        reply = self._call("restore", now, {"live": live, "gone": sorted(gone)})
        self._gone -= gone
        return self._changes(reply)

    def _connection_on_page(self, sid: str, doing: str) -> _Connection:
        connection = self._connections.get(sid)
        if connection is None or connection.page is None:
            raise NotVisiting(f"visit a page before {doing}")
        return connection

    @staticmethod
    def _changes(reply: dict[str, Any]) -> Changes:
        views = (_page_view(view) for view in _list(reply.get("views")))
        return {view.page: view for view in views}
