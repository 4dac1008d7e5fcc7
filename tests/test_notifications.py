"""Notifications: subscribe and unsubscribe over Socket.IO, publish over HTTP,
and ``GET /api/pages``, against real servers (and a real Redis for several
processes)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
from support import Agent, DibsProcess, wait_until

MAX_DATA_BYTES = 16 * 1024
API_KEY = "publish-test-key"


def publish(server: DibsProcess, body: Any, **kwargs: Any) -> requests.Response:
    """POST ``body`` as JSON to ``/api/publish``."""
    return requests.post(server.url + "/api/publish", json=body, timeout=10, **kwargs)


def notices(agent: Agent) -> list[dict[str, Any]]:
    """Return the ``notify`` events ``agent`` received so far, in order."""
    return [data for event, data in list(agent.events.queue) if event == "notify"]


def wait_for_notice(agent: Agent, event: str) -> dict[str, Any]:
    """Wait until ``agent`` received the notification named ``event``."""
    found = wait_until(lambda: [n for n in notices(agent) if n["event"] == event], 10)
    return found[0]


def test_subscriber_receives_what_is_published_and_nobody_else(
    server: DibsProcess, connect: Callable[..., Agent]
) -> None:
    alice = connect("alice")
    bob = connect("bob")
    assert alice.call("subscribe", {"topic": "bookings"}) == {
        "ok": True,
        "topic": "bookings",
    }
    assert bob.call("subscribe", {"topic": "refunds"})["ok"]

    response = publish(
        server, {"topic": "bookings", "event": "urgent", "data": {"id": 309208537}}
    )
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["ok"] is True and accepted["topic"] == "bookings"

    notice = wait_for_notice(alice, "urgent")
    assert notice == {
        "topic": "bookings",
        "event": "urgent",
        "data": {"id": 309208537},
        "at": accepted["at"],
    }
    # Bob hears his own topic's notice, published after Alice's: had Alice's
    # reached him, it would have arrived first.
    assert publish(server, {"topic": "refunds", "event": "later"}).status_code == 202
    wait_for_notice(bob, "later")
    assert [n["event"] for n in notices(bob)] == ["later"]
    assert notices(bob)[0]["data"] is None


def test_unsubscribe_stops_notifications(
    server: DibsProcess, connect: Callable[..., Agent]
) -> None:
    alice = connect("alice")
    alice.call("subscribe", {"topic": "bookings"})
    alice.call("subscribe", {"topic": "marker"})

    assert alice.call("unsubscribe", {"topic": "bookings"})["ok"]
    publish(server, {"topic": "bookings", "event": "missed"})
    publish(server, {"topic": "marker", "event": "seen"})
    wait_for_notice(alice, "seen")
    assert [n["event"] for n in notices(alice)] == ["seen"]
    assert alice.call("unsubscribe", {"topic": "never-subscribed"})["ok"]


BAD_TOPICS = [
    {},
    {"topic": ""},
    {"topic": "has space"},
    {"topic": "<b>"},
    {"topic": "x" * 65},
    {"topic": 5},
    ["bookings"],
]


# Topics are checked before any room or emit: the registry plays no part.
@pytest.mark.memory_only
def test_subscribe_refuses_bad_topics_and_stays_connected(
    connect: Callable[..., Agent],
) -> None:
    alice = connect("alice")

    for payload in BAD_TOPICS:
        reply = alice.call("subscribe", payload)
        assert reply["ok"] is False and reply["error"] == "invalid", (payload, reply)
        assert alice.call("unsubscribe", payload)["error"] == "invalid"

    assert alice.call("subscribe", {"topic": "still.fine:ok-1"})["ok"]


# Subscriptions are rooms of this process's connections, whatever the registry.
@pytest.mark.memory_only
def test_subscriptions_are_capped_per_connection(
    start_server: Callable[..., DibsProcess],
) -> None:
    server = start_server({"DIBS_MAX_SUBSCRIPTIONS": "3"})
    alice = Agent(server.url, {"user": "alice"}).connect()
    try:
        for topic in ("a", "b", "c", "a"):
            assert alice.call("subscribe", {"topic": topic})["ok"]

        refused = alice.call("subscribe", {"topic": "d"})
        assert refused["error"] == "too_many_subscriptions"
        assert "at most 3" in refused["message"]

        assert alice.call("unsubscribe", {"topic": "b"})["ok"]
        assert alice.call("subscribe", {"topic": "d"})["ok"]
        publish(server, {"topic": "d", "event": "arrives"})
        wait_for_notice(alice, "arrives")
    finally:
        alice.close()


JSON = {"Content-Type": "application/json"}
BAD_BODIES = [
    ("not json", JSON),
    ('{"topic": "bookings", "event": "x"}', {"Content-Type": "text/plain"}),
    ("[1, 2]", JSON),
    ("null", JSON),
    ('{"event": "x"}', JSON),
    ('{"topic": "a b", "event": "x"}', JSON),
    ('{"topic": "bookings"}', JSON),
    ('{"topic": "bookings", "event": 7}', JSON),
]


# Bodies are checked before any emit: the registry plays no part.
@pytest.mark.memory_only
def test_publish_refuses_bad_bodies_with_json_errors(server: DibsProcess) -> None:
    for body, headers in BAD_BODIES:
        response = requests.post(
            server.url + "/api/publish", data=body, headers=headers, timeout=10
        )

        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"] == "invalid"
        assert response.json()["message"]


def test_publish_takes_data_up_to_the_documented_size(
    server: DibsProcess, connect: Callable[..., Agent]
) -> None:
    alice = connect("alice")
    alice.call("subscribe", {"topic": "big"})
    # A JSON string costs its characters plus two quotes.
    largest = "x" * (MAX_DATA_BYTES - 2)

    too_big = publish(server, {"topic": "big", "event": "no", "data": largest + "x"})
    assert too_big.status_code == 400
    assert str(MAX_DATA_BYTES) in too_big.json()["message"]
    huge = requests.post(
        server.url + "/api/publish",
        data=json.dumps({"topic": "big", "event": "no", "data": "y" * 200_000}),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert huge.status_code == 413 and huge.json()["error"]

    assert publish(server, {"topic": "big", "event": "yes", "data": largest}).ok
    assert wait_for_notice(alice, "yes")["data"] == largest
    assert [n["event"] for n in notices(alice)] == ["yes"]
    assert alice.sio.connected


@pytest.mark.memory_only
def test_publish_and_pages_need_the_api_key(
    start_server: Callable[..., DibsProcess],
) -> None:
    server = start_server({"DIBS_API_KEY": API_KEY})
    body = {"topic": "bookings", "event": "x"}

    for headers in ({}, {"Authorization": "Bearer wrong"}):
        refused = publish(server, body, headers=headers)
        assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
        listing = requests.get(server.url + "/api/pages", headers=headers, timeout=10)
        assert listing.status_code == 401

    key = {"Authorization": f"Bearer {API_KEY}"}
    assert publish(server, body, headers=key).status_code == 202
    assert requests.get(server.url + "/api/pages", headers=key, timeout=10).ok


def test_api_pages_lists_every_page_with_viewers_or_claims(
    server: DibsProcess, connect: Callable[..., Agent]
) -> None:
    alice = connect("alice", "Alice")
    bob = connect("bob", "Bob")
    carol = connect("carol", "Carol")
    alice.visit("booking:1")
    bob.visit("booking:1")
    carol.visit("booking:2")
    assert alice.call("claim", {"action": "rebook"})["ok"]

    listing = requests.get(server.url + "/api/pages", timeout=10).json()

    pages = {page["page"]: page for page in listing["pages"]}
    assert sorted(pages) == ["booking:1", "booking:2"]
    assert [v["user"] for v in pages["booking:1"]["viewers"]] == ["alice", "bob"]
    assert [c["action"] for c in pages["booking:1"]["claims"]] == ["rebook"]
    assert pages["booking:2"]["claims"] == []
    assert listing["counts"] == {"pages": 2, "viewers": 3, "claims": 1, "crowded": 1}

    carol.call("leave", {})
    after = requests.get(server.url + "/api/pages", timeout=10).json()
    assert [page["page"] for page in after["pages"]] == ["booking:1"]


def test_publish_reaches_subscribers_on_every_process(
    on_redis: Callable[[], DibsProcess],
) -> None:
    first = on_redis()
    second = on_redis()
    alice = Agent(first.url, {"user": "alice"}).connect()
    bob = Agent(second.url, {"user": "bob"}).connect()
    try:
        alice.call("subscribe", {"topic": "bookings"})
        bob.call("subscribe", {"topic": "bookings"})

        assert publish(first, {"topic": "bookings", "event": "one"}).status_code == 202
        assert publish(second, {"topic": "bookings", "event": "two"}).status_code == 202

        for agent in (alice, bob):
            wait_for_notice(agent, "two")
            assert [n["event"] for n in notices(agent)] == ["one", "two"]
    finally:
        alice.close()
        bob.close()
