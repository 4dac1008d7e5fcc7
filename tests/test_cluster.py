"""Several Dibs processes on one Redis, with real clients spread over them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from support import Agent, DibsProcess, FreezingProxy, RedisProcess, wait_until

PAGE = "booking:309208537"
PROCESS_TIMEOUT = 3.0
CLEANUP_BOUND = 15.0
"""Documented bound for a dead process's agents and claims to be gone."""


def cluster_settings(redis_url: str) -> dict[str, str]:
    return {
        "DIBS_REDIS_URL": redis_url,
        "DIBS_PROCESS_TIMEOUT_SECONDS": str(PROCESS_TIMEOUT),
    }


@pytest.fixture
def cluster(
    redis_server: RedisProcess, start_dibs: Callable[..., DibsProcess]
) -> list[DibsProcess]:
    """Three Dibs processes sharing the session's Redis."""
    redis_server.flushall()
    return [start_dibs(cluster_settings(redis_server.url)) for _ in range(3)]


@pytest.fixture
def agents() -> Iterator[Callable[..., Agent]]:
    """Connect agents to given processes; all are closed after the test."""
    made: list[Agent] = []

    def connect(process: DibsProcess, user: str | None = None, **kwargs: Any) -> Agent:
        auth = {"user": user, "name": user.title()} if user else None
        agent = Agent(process.url, auth=auth, **kwargs)
        made.append(agent)
        return agent.connect()

    yield connect
    for agent in made:
        agent.close()


def race(
    racer: Agent, action: str, start: threading.Barrier, replies: list[Any], index: int
) -> None:
    start.wait()
    replies[index] = racer.call("claim", {"action": action}, timeout=20)


def holders(agent: Agent) -> dict[str, str]:
    claims = (agent.presence or {}).get("claims", [])
    return {claim["action"]: claim["user"] for claim in claims}


def test_agents_on_different_processes_see_each_other(cluster, agents):
    alice, bob, carol = (
        agents(process, user)
        for process, user in zip(cluster, ["alice", "bob", "carol"], strict=True)
    )

    for agent in (alice, bob, carol):
        agent.visit(PAGE)

    for agent in (alice, bob, carol):
        agent.wait_for(lambda a: a.users() == ["alice", "bob", "carol"])
    carol.call("leave", {})
    alice.wait_for(lambda a: a.users() == ["alice", "bob"])


def test_one_winner_when_agents_on_every_process_race_for_a_claim(cluster, agents):
    racers = [agents(cluster[i % 3], f"agent{i:02d}") for i in range(51)]
    for racer in racers:
        racer.visit(PAGE)

    for round_number in range(5):
        action = f"rebook-{round_number}"
        replies: list[Any] = [None] * len(racers)
        start = threading.Barrier(len(racers))

        threads = [
            threading.Thread(target=race, args=(racer, action, start, replies, i))
            for i, racer in enumerate(racers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

        winners = [reply for reply in replies if reply and reply["ok"]]
        losers = [reply for reply in replies if reply and not reply["ok"]]
        assert len(winners) == 1, replies
        assert len(losers) == len(racers) - 1
        holder = winners[0]["claim"]
        assert all(reply["error"] == "taken" for reply in losers)
        assert all(reply["claim"] == holder for reply in losers)


def test_the_http_api_of_any_process_answers_for_all(cluster, agents):
    alice = agents(cluster[0], "alice")
    bob = agents(cluster[1], "bob")
    alice.visit(PAGE)
    bob.visit(PAGE)
    claim = alice.call("claim", {"action": "rebook"})["claim"]

    presence = requests.get(f"{cluster[2].url}/api/presence", params={"page": PAGE})
    assert [viewer["user"] for viewer in presence.json()["viewers"]] == ["alice", "bob"]
    asked = {"page": PAGE, "action": "rebook", "user": "alice", "token": claim["token"]}
    assert requests.get(f"{cluster[1].url}/api/claims", params=asked).json() == claim
    refused = requests.get(
        f"{cluster[2].url}/api/claims", params={**asked, "user": "bob"}
    )
    assert refused.status_code == 409

    gone = requests.delete(
        f"{cluster[2].url}/api/claims", params={"page": PAGE, "action": "rebook"}
    )
    assert gone.status_code == 200
    alice.wait_for(lambda a: holders(a) == {})
    bob.wait_for(lambda a: holders(a) == {})


def test_legacy_and_modern_clients_on_different_processes_see_each_other(
    cluster, agents
):
    href = "https://ops.example.com/booking/309208537"
    lena = agents(cluster[0], path="dibs")
    bob = agents(cluster[1], "bob")

    lena.send("PAGE_VISIT", href, "lena", int(time.time() * 1000))
    lena.wait_for(lambda a: sorted((a.legacy or {}).get(href, {})) == ["lena"])
    bob.visit(href)

    lena.wait_for(lambda a: sorted((a.legacy or {}).get(href, {})) == ["Bob", "lena"])
    bob.wait_for(lambda a: a.users() == ["lena", "bob"])


def test_a_killed_process_leaves_no_ghosts_and_frees_its_claims(cluster, agents):
    alice = agents(cluster[0], "alice")
    bob = agents(cluster[1], "bob")
    alice.visit(PAGE)
    bob.visit(PAGE)
    assert alice.call("claim", {"action": "rebook"})["ok"]
    bob.wait_for(lambda a: holders(a) == {"rebook": "alice"})

    killed_at = time.monotonic()
    cluster[0].kill()

    bob.wait_for(
        lambda a: a.users() == ["bob"] and holders(a) == {}, timeout=CLEANUP_BOUND
    )
    assert time.monotonic() - killed_at < CLEANUP_BOUND
    assert bob.call("claim", {"action": "rebook"})["ok"]
    assert "stopped beating" in cluster[1].log() + cluster[2].log()


def test_a_redis_restart_under_connected_clients(private_redis, start_dibs, agents):
    processes = [start_dibs(cluster_settings(private_redis.url)) for _ in range(2)]
    alice = agents(processes[0], "alice")
    bob = agents(processes[1], "bob")
    alice.visit(PAGE)
    bob.visit(PAGE)
    alice.wait_for(lambda a: a.users() == ["alice", "bob"])

    private_redis.stop()
    for process in processes:
        wait_until(lambda p=process: health(p).status_code == 503, timeout=10)
    assert "Redis" in health(processes[0]).json()["error"]
    refused = bob.call("claim", {"action": "rebook"})
    assert refused["ok"] is False and refused["error"] == "unavailable"

    alice.presence = bob.presence = None
    private_redis.start()

    # Redis came back empty: each process registers its agents again (in
    # either order, so arrival times may swap) and every page gets a fresh
    # snapshot.
    for agent in (alice, bob):
        agent.wait_for(lambda a: sorted(a.users()) == ["alice", "bob"], timeout=15)
    for process in processes:
        wait_until(lambda p=process: health(p).status_code == 200, timeout=10)
        assert process.process.poll() is None
    assert bob.call("claim", {"action": "rebook"})["ok"]
    alice.wait_for(lambda a: holders(a) == {"rebook": "bob"})
    for process in processes:
        log = process.log()
        assert log.count("is unreachable") == 1, log
        assert log.count("is back after") == 1, log
        assert "Traceback" not in log


def test_a_silently_frozen_redis_connection_is_replaced(
    redis_server, start_dibs, agents
):
    redis_server.flushall()
    proxy = FreezingProxy(redis_server.port)
    try:
        # A call stuck on a frozen connection delays the heartbeat by the
        # command timeout: the process timeout must be longer, as by default.
        settings = {
            **cluster_settings(proxy.url()),
            "DIBS_PROCESS_TIMEOUT_SECONDS": "10",
        }
        processes = [start_dibs(settings) for _ in range(2)]
        alice = agents(processes[0], "alice")
        bob = agents(processes[1], "bob")
        alice.visit(PAGE)
        bob.visit(PAGE)
        alice.wait_for(lambda a: a.users() == ["alice", "bob"])

        # Every connection open now, the emit channel's included, goes
        # silent without closing: only the listener's own probe can tell.
        assert proxy.freeze() >= 2
        carol = agents(processes[1], "carol")
        assert carol.call("visit", {"page": PAGE}, timeout=20)["ok"]

        alice.wait_for(lambda a: a.users() == ["alice", "bob", "carol"], timeout=25)
        assert "emit channel silent" in processes[0].log()
    finally:
        proxy.close()


def health(process: DibsProcess) -> requests.Response:
    return requests.get(process.url + "/healthz", timeout=10)


def visit_all_at_once(crowd: list[Agent], page: str) -> None:
    """Have every agent of ``crowd`` visit ``page`` at the same instant."""
    start = threading.Barrier(len(crowd))

    def visit(agent: Agent) -> None:
        start.wait(timeout=10)
        agent.visit(page)

    threads = [threading.Thread(target=visit, args=(agent,)) for agent in crowd]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)


def test_simultaneous_visits_on_every_process_leave_no_agent_with_stale_presence(
    cluster, agents
):
    crowd = [agents(cluster[i % 3], f"agent{i}") for i in range(6)]
    everyone = sorted(agent.auth["user"] for agent in crowd)

    for round_number in range(10):
        visit_all_at_once(crowd, f"booking:{round_number}")

        for agent in crowd:
            agent.wait_for(lambda a: sorted(a.users()) == everyone, timeout=10)
        # Late stale views would arrive within a moment: none may undo that.
        time.sleep(0.3)
        for agent in crowd:
            assert sorted(agent.users()) == everyone
