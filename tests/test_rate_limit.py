"""The per-connection rate limit: a token bucket, 20 events a second, bursts of 40."""

from __future__ import annotations

import re
import time

import pytest
import requests
from support import Agent, DibsProcess, wait_until

from dibs.ratelimit import RateLimiter
from dibs.settings import Settings, SettingsError

pytestmark = pytest.mark.memory_only  # the limit is checked before any registry

RATE, BURST = 20, 40
LIMITS = {"DIBS_RATE_PER_SECOND": str(RATE), "DIBS_RATE_BURST": str(BURST)}
PAGE = "booking:309208537"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_the_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(RATE, BURST, clock=clock)

    assert all(limiter.allow("a") for _ in range(BURST))
    assert not limiter.allow("a")
    assert not limiter.allow("a")
    assert limiter.refused_in_a_row("a") == 2
    assert limiter.allow("b"), "each connection has its own bucket"

    clock.now += 1.5 / RATE
    assert limiter.allow("a")
    assert not limiter.allow("a")
    clock.now += 3600
    assert sum(limiter.allow("a") for _ in range(BURST + 5)) == BURST

    limiter.forget("a")
    assert set(limiter.buckets) == {"b"}


def test_the_limits_are_settings_checked_at_start() -> None:
    settings = Settings.from_env({"DIBS_RATE_PER_SECOND": "5", "DIBS_RATE_BURST": "9"})
    assert (settings.rate_per_second, settings.rate_burst) == (5.0, 9)
    with pytest.raises(SettingsError, match="DIBS_RATE_BURST"):
        Settings.from_env({"DIBS_RATE_BURST": "0"})
    with pytest.raises(SettingsError, match="DIBS_RATE_PER_SECOND"):
        Settings.from_env({"DIBS_RATE_PER_SECOND": "-1"})


@pytest.fixture
def limited(start_server) -> DibsProcess:
    return start_server(LIMITS)


def agent(server: DibsProcess, user: str) -> Agent:
    return Agent(server.url, auth={"user": user, "name": user.title()}).connect()


def presences_of(agent: Agent, page: str) -> int:
    """Count the ``presence`` events of ``page`` that ``agent`` received."""
    count = 0
    while not agent.events.empty():
        name, data = agent.events.get()
        if name == "presence" and data["page"] == page:
            count += 1
    return count


def test_events_past_the_burst_are_refused_and_not_broadcast(limited) -> None:
    mallory, bob = agent(limited, "mallory"), agent(limited, "bob")
    started = time.monotonic()
    bob.visit(PAGE)
    mallory.visit(PAGE)
    bob.wait_for(lambda b: b.users() == ["bob", "mallory"])
    presences_of(bob, PAGE)

    states = ["editing", "viewing"] * BURST
    replies = emit_all(mallory, "state", [{"state": state} for state in states])
    elapsed = time.monotonic() - started

    allowed = [reply["ok"] for reply in replies]
    refused = [reply for reply in replies if not reply["ok"]]
    assert refused, "the burst was exceeded"
    assert {reply["error"] for reply in refused} == {"rate_limited"}
    assert "20 events per second" in refused[0]["message"]
    # Two tokens went on connect and visit; the rest of the burst, plus refills.
    assert sum(allowed) <= BURST - 2 + RATE * elapsed + 1

    current, changes = "viewing", 0
    for state, ok in zip(states, allowed, strict=True):
        if ok and state != current:
            current, changes = state, changes + 1
    bob.wait_for(lambda b: state_of(b, "mallory") == current)
    wait_until(lambda: presences_of(bob, PAGE) == changes or None, timeout=5)

    wait_until(lambda: mallory.call("state", {"state": "idle"})["ok"], every=0.1)
    mallory.close()
    bob.close()


def emit_all(agent: Agent, event: str, payloads: list[dict]) -> list[dict]:
    """Emit every payload at once, each asking for an ack; return the acks in order."""
    replies: dict[int, dict] = {}
    for index, data in enumerate(payloads):
        agent.sio.emit(
            event, data, callback=lambda reply, i=index: replies.update({i: reply})
        )
    wait_until(lambda: len(replies) == len(payloads), timeout=10)
    return [replies[index] for index in range(len(payloads))]


def state_of(agent: Agent, user: str) -> str | None:
    viewers = (agent.presence or {}).get("viewers", [])
    return next((v["state"] for v in viewers if v["user"] == user), None)


def test_ackless_events_past_the_limit_get_one_error_event_each(limited) -> None:
    mallory = agent(limited, "mallory")
    mallory.visit(PAGE)
    for _ in range(BURST + 30):
        mallory.send("state", {"state": "viewing"})

    mallory.wait_for(lambda m: len(m.errors) >= 20, timeout=10)
    assert {error["error"] for error in mallory.errors} == {"rate_limited"}
    assert mallory.call("leave", {}) is not None, "the connection stays up"

    # One warning per run of refusals, not one per refused event.
    warnings = re.findall(r"WARNING .*rate limited", limited.log_path.read_text())
    assert 1 <= len(warnings) < len(mallory.errors) / 2
    mallory.close()


def test_one_connection_limited_leaves_the_others_alone(limited) -> None:
    mallory, bob = agent(limited, "mallory"), agent(limited, "bob")
    mallory.visit(PAGE)
    for _ in range(BURST + 10):
        mallory.send("state", {"state": "editing"})
    mallory.wait_for(lambda m: m.errors)

    assert bob.visit(PAGE)["ok"]
    assert all(bob.call("state", {"state": "idle"})["ok"] for _ in range(10))
    mallory.close()
    bob.close()


def buckets(server: DibsProcess) -> float:
    text = requests.get(server.url + "/metrics", timeout=10).text
    return float(re.search(r"^dibs_rate_buckets (\S+)$", text, re.MULTILINE).group(1))


def test_buckets_go_with_their_connections(limited) -> None:
    before = buckets(limited)
    crowd = [agent(limited, f"user{index}") for index in range(20)]
    for member in crowd:
        member.visit(PAGE)
    assert buckets(limited) >= before + 20

    for member in crowd:
        member.close()
    wait_until(lambda: buckets(limited) == before, timeout=10)
