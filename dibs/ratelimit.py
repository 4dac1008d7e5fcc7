"""Rate limits: a token bucket per connection, refilled continuously.

Each connection may send ``burst`` events at once and ``rate`` events per
second on average.  Buckets live in this process's memory, keyed by the
Engine.IO session id, and must be forgotten when the session ends.  Nothing
here yields.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable


@dataclasses.dataclass(slots=True)
class Bucket:
    """The tokens one connection has left, as of ``checked``."""

    tokens: float
    checked: float
    refused: int = 0


class RateLimiter:
    """Allow each key ``rate`` events per second, with bursts of ``burst``.

    :param rate: tokens added to a bucket per second.
    :param burst: the most tokens a bucket holds, and what a new one starts with.
    :param clock: seconds from any fixed point; :func:`time.monotonic` by default.
    """

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.buckets: dict[str, Bucket] = {}

    def allow(self, key: str) -> bool:
        """Take a token from ``key``'s bucket; return False if it has none."""
        now = self.clock()
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = Bucket(tokens=self.burst, checked=now)

        refill = (now - bucket.checked) * self.rate
        bucket.tokens = min(self.burst, bucket.tokens + refill)
        bucket.checked = now
        if bucket.tokens < 1:
            bucket.refused += 1
            return False

        bucket.tokens -= 1
        bucket.refused = 0
        return True

    def refused_in_a_row(self, key: str) -> int:
        """Return how many events of ``key`` were refused since the last allowed."""
        bucket = self.buckets.get(key)
        return 0 if bucket is None else bucket.refused

    def forget(self, key: str) -> None:
        """Drop ``key``'s bucket, once its connection is gone."""
        self.buckets.pop(key, None)
