"""The emit channel between processes: python-socketio's Redis manager, hardened.

With several processes every emit goes through one Redis pub/sub channel, so
a client hears of a change made on any process.  The listener runs in one
background greenlet per process; its Redis I/O yields under gevent.

What this adds to :class:`socketio.RedisManager`, whose listener blocks on
its socket forever and would never notice a connection that went quiet (a
firewall that forgot it, a frozen proxy):

- the listener waits a second at a time and publishes a probe to the channel
  every few seconds; when it has heard nothing at all, not even its own
  probe, for ``SILENCE_SECONDS``, it drops the connection and subscribes on a
  fresh one;
- it subscribes again every ``RETRY_SECONDS`` after a failure, rather than
  backing off to a minute, so emits flow again soon after Redis returns;
- emits that fail while Redis is away are dropped without a log line each:
  the registry logs the outage once, and pages get a fresh snapshot when it
  ends;
- once it has subscribed again after a failure it calls ``on_resubscribe``,
  with which the app sends every page a fresh snapshot, since emits made
  elsewhere while this process was deaf are lost;
- :meth:`RedisChannel.relay_page` hands a page's new view to every process,
  this one included, through ``on_page``, so that each process delivers it
  to its own clients and can drop a view older than one it already has.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis
import socketio

from .errors import Unavailable
from .registry import PageView
from .registry.redis import client_options

logger = logging.getLogger(__name__)

PROBE_SECONDS = 2.0
SILENCE_SECONDS = 7.0
RETRY_SECONDS = 1.0
WAIT_SECONDS = 1.0

PAGE_EVENT = "dibs:page"
"""The channel's internal event carrying a page view between processes.

No client can receive it: it is handled by :class:`RedisChannel` itself."""


class SilentChannel(Exception):
    """Nothing arrived on the channel for too long."""


class RedisChannel(socketio.RedisManager):
    """Carry emits between processes through Redis, and recover a silent listener.

    :param url: the Redis URL, such as ``redis://127.0.0.1:6379/0``.
    """

    def __init__(self, url: str, channel: str = "dibs") -> None:
        super().__init__(url, channel=channel, redis_options=client_options())
        self.on_resubscribe: Callable[[], None] | None = None
        self.on_page: Callable[[PageView], None] | None = None
        self._probe = json.dumps({"method": "probe", "host_id": self.host_id})

    def relay_page(self, view: PageView) -> None:
        """Hand ``view`` to ``on_page`` here at once, and on every other process."""
        if self.on_page is not None:
            self.on_page(view)
        self._publish(
            {
                "method": "emit",
                "event": PAGE_EVENT,
                "data": [dataclasses.asdict(view)],
                "namespace": "/",
                "room": None,
                "skip_sid": None,
                "callback": None,
                "host_id": self.host_id,
            }
        )

    def _handle_emit(self, message: dict[str, Any]) -> None:
        if message.get("event") != PAGE_EVENT:
            return super()._handle_emit(message)
        if self.on_page is not None:
            self.on_page(PageView(**message["data"][0]))
        return None

    def _publish(self, data: Any) -> Any:
        try:
            if self.redis is None:
                self._redis_connect()
            return self.redis.publish(self.channel, self.json.dumps(data))
        except (redis.RedisError, OSError) as error:
            logger.debug("emit not published: %s", error)
            return None

    def _listen(self) -> Iterator[bytes]:
        failed = False
        while True:
            pubsub = None
            try:
                if self.redis is None:
                    self._redis_connect()
                pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                if failed:
                    logger.info("emit channel subscribed again")
                    self._resubscribed()
                failed = False
                yield from self._receive(pubsub)
            except SilentChannel:
                logger.warning(
                    "emit channel silent for %s s: subscribing on a new connection",
                    SILENCE_SECONDS,
                )
            except (redis.RedisError, OSError) as error:
                logger.debug("emit channel lost: %s", error)
            failed = True
            if pubsub is not None:
                self._close(pubsub)
            self.server.sleep(RETRY_SECONDS)

    def _receive(self, pubsub: Any) -> Iterator[bytes]:
        channel = self.channel.encode()
        heard = probed = time.monotonic()
        self.redis.publish(self.channel, self._probe)
        while True:
            message = pubsub.get_message(timeout=WAIT_SECONDS)
            now = time.monotonic()
            if message is not None:
                heard = now
                if message["type"] == "message" and message["channel"] == channel:
                    yield message["data"]
            elif now - heard > SILENCE_SECONDS:
                raise SilentChannel()
            if now - probed >= PROBE_SECONDS:
                # Every process ignores a probe; hearing one proves the line.
                self.redis.publish(self.channel, self._probe)
                probed = now

    def _resubscribed(self) -> None:
        if self.on_resubscribe is None:
            return
        try:
            self.on_resubscribe()
        except Unavailable:
            pass  # Redis went away again; the next subscription tries again
        except Exception:
            logger.exception("fresh snapshot after subscribing again failed")

    @staticmethod
    def _close(pubsub: Any) -> None:
        try:
            pubsub.close()
        except (redis.RedisError, OSError):
            pass
