"""The Redis registry's own duties: tokens, heartbeats, outages, start, gevent."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support import ROOT, Agent, DibsProcess, RedisProcess, free_port

from dibs.errors import Unavailable
from dibs.registry import Identity, RedisRegistry

LIMITS = {"grace_seconds": 1.0, "claim_ttl_seconds": 60.0, "max_claims_per_user": 4}


@pytest.fixture
def registries(redis_server: RedisProcess) -> Iterator[Callable[..., RedisRegistry]]:
    """Make registries, each standing for one process, on the session's Redis."""
    redis_server.flushall()
    made: list[RedisRegistry] = []

    def make(url: str | None = None) -> RedisRegistry:
        registry = RedisRegistry(url or redis_server.url, **LIMITS)
        made.append(registry)
        return registry

    yield make
    for registry in made:
        registry._client.close()


def on_page(registry: RedisRegistry, sid: str, user: str, now: float) -> None:
    registry.connect(sid, Identity(user, user.title()), now)
    registry.visit(sid, "p", "viewing", now)


def users(registry: RedisRegistry) -> list[str]:
    return [viewer["user"] for viewer in registry.view("p").viewers]


def test_tokens_keep_rising_after_redis_loses_its_data(registries, redis_server):
    registry = registries()
    on_page(registry, "a1", "alice", 100.0)
    before, _ = registry.claim("a1", "rebook", 100.0)

    redis_server.flushall()
    registry.visit("a1", "p", "viewing", 100.0)
    after, _ = registry.claim("a1", "rebook", 100.0)

    # The caller's clock says 100 s after the epoch both times: only Redis's
    # own clock keeps the token above the one the lost counter gave.
    assert after["token"] > before["token"]


def test_released_claims_leave_no_deadlines_behind(registries, redis_server):
    registry = registries()
    on_page(registry, "a1", "alice", 100.0)

    for _ in range(50):
        registry.claim("a1", "rebook", 100.0)
        registry.release("a1", "rebook", 100.0)
    registry.claim("a1", "refund", 100.0)
    registry.force_release("p", "refund", 100.0)

    client = redis_server.client()
    assert client.zcard("dibs:deadlines") == 0
    client.close()


def test_one_process_cleans_up_after_a_dead_one(registries, redis_server):
    dead, first, second = registries(), registries(), registries()
    now = time.time()
    on_page(dead, "a1", "alice", now)
    on_page(first, "b1", "bob", now)
    dead.claim("a1", "rebook", now)

    # Its last heartbeat was a minute ago, by Redis's clock.
    client = redis_server.client()
    seconds, micros = client.time()
    client.zadd("dibs:processes", {dead.process_id: seconds + micros / 1e6 - 60})
    client.close()

    answers = [first.maintain(now), second.maintain(now)]

    assert [sorted(changes) for changes in answers].count(["p"]) == 1
    assert users(first) == ["bob"]
    assert first.view("p").claims == []
    assert first.stats().connections == 1


def test_a_process_redis_forgot_registers_its_connections_again(
    registries, redis_server, caplog
):
    registry = registries()
    on_page(registry, "a1", "alice", time.time())

    redis_server.flushall()
    changes = registry.maintain(time.time())

    assert [viewer["user"] for viewer in changes["p"].viewers] == ["alice"]
    assert "registering its 1 connections again" in caplog.text


def test_an_outage_is_logged_once_and_settled_when_redis_returns(
    registries, private_redis, caplog
):
    caplog.set_level(logging.INFO, logger="dibs")
    registry = registries(private_redis.url)
    on_page(registry, "a1", "alice", time.time())
    on_page(registry, "b1", "bob", time.time())

    private_redis.stop()
    with pytest.raises(Unavailable):
        registry.claim("a1", "rebook", time.time())
    with pytest.raises(Unavailable):
        registry.visit("a1", "q", "viewing", time.time())
    with pytest.raises(Unavailable):
        registry.maintain(time.time())
    registry.connect("c1", Identity("carol", "Carol"), time.time())
    assert registry.disconnect("b1", time.time()) == {}
    assert caplog.text.count("is unreachable") == 1

    private_redis.start()
    changes = registry.maintain(time.time())

    assert [viewer["user"] for viewer in changes["p"].viewers] == ["alice"]
    assert registry.stats().connections == 2
    registry.visit("c1", "p", "editing", time.time())
    assert users(registry) == ["alice", "carol"]
    assert caplog.text.count("is unreachable") == 1
    assert caplog.text.count("is back after") == 1


def test_an_unreachable_redis_at_start_is_one_clear_line():
    url = f"redis://127.0.0.1:{free_port()}/0"
    env = {**os.environ, "DIBS_REDIS_URL": url, "PORT": str(free_port())}

    done = subprocess.run(
        [sys.executable, "wsgi.py"], cwd=ROOT, env=env, capture_output=True, timeout=30
    )

    assert done.returncode != 0
    lines = done.stderr.decode().strip().splitlines()
    assert lines[-1].startswith("dibs: DIBS_REDIS_URL: Redis at 127.0.0.1:")
    assert "unreachable" in lines[-1]
    assert "Traceback" not in done.stderr.decode()


def test_a_slow_redis_call_does_not_stall_other_agents(
    redis_server, start_dibs: Callable[..., DibsProcess]
):
    redis_server.flushall()
    server = start_dibs({"DIBS_REDIS_URL": redis_server.url})
    waiting = Agent(server.url, {"user": "alice"}).connect()
    other = Agent(server.url, {"user": "bob"}).connect()
    answers: dict[str, Any] = {}
    try:
        # Redis itself sleeps: alice's visit waits on it, inside the server.
        sleeper = threading.Thread(target=redis_sleep, args=(redis_server, 2.0))
        sleeper.start()
        time.sleep(0.3)
        visitor = threading.Thread(target=timed_visit, args=(waiting, answers))
        visitor.start()
        time.sleep(0.3)

        # Bob's event needs no Redis: the same process answers it at once.
        started = time.monotonic()
        reply = other.call("no-such-event", {}, timeout=10)
        answered_in = time.monotonic() - started
        visitor.join(15)
        sleeper.join(15)
    finally:
        waiting.close()
        other.close()

    assert reply["error"] == "unknown_event"
    assert answered_in < 1.0, answered_in
    assert answers["reply"]["ok"], answers
    assert answers["seconds"] > answered_in + 0.5, answers


def redis_sleep(redis: RedisProcess, seconds: float) -> None:
    client = redis.client()
    try:
        client.execute_command("DEBUG", "SLEEP", seconds)
    finally:
        client.close()


def timed_visit(agent: Agent, answers: dict[str, Any]) -> None:
    started = time.monotonic()
    answers["reply"] = agent.call("visit", {"page": "booking:1"}, timeout=10)
    answers["seconds"] = time.monotonic() - started
