"""Calling dibs: claims on a page's actions, over real connections."""

import threading

import pytest
import requests
from support import wait_until

PAGE = "booking:309208537"


def claims_of(agent):
    return {c["action"]: c for c in (agent.presence or {}).get("claims", [])}


def test_the_first_claimer_gets_the_claim_and_the_page_is_told(connect):
    alice = connect("alice", "Alice")
    bob = connect("bob", "Bob")
    alice.visit(PAGE)
    bob.visit(PAGE)

    reply = alice.call("claim", {"action": "rebook"})

    assert reply["ok"] is True
    claim = reply["claim"]
    assert set(claim) == {"action", "user", "name", "since", "token"}
    assert (claim["action"], claim["user"], claim["name"]) == (
        "rebook",
        "alice",
        "Alice",
    )
    bob.wait_for(lambda b: claims_of(b).get("rebook") == claim)


def test_a_later_claimer_learns_who_holds_it(connect):
    alice = connect("alice", "Alice")
    bob = connect("bob", "Bob")
    alice.visit(PAGE)
    bob.visit(PAGE)
    claim = alice.call("claim", {"action": "rebook"})["claim"]

    reply = bob.call("claim", {"action": "rebook"})

    assert reply["ok"] is False
    assert reply["error"] == "taken"
    assert reply["claim"] == claim
    assert "Alice" in reply["message"]


def test_every_tab_of_the_holder_sees_the_claim_as_its_users(connect):
    tab1 = connect("alice")
    tab2 = connect("alice")
    tab1.visit(PAGE)
    tab2.visit(PAGE)

    claim = tab1.call("claim", {"action": "rebook"})["claim"]
    again = tab2.call("claim", {"action": "rebook"})

    assert again == {"ok": True, "claim": claim}
    tab2.wait_for(lambda t: claims_of(t).get("rebook", {}).get("user") == "alice")


def test_the_visit_ack_includes_the_claims(connect):
    alice = connect("alice")
    bob = connect("bob")
    alice.visit(PAGE)
    claim = alice.call("claim", {"action": "refund"})["claim"]

    assert bob.visit(PAGE)["presence"]["claims"] == [claim]


def test_release_frees_the_action_for_others(connect):
    alice = connect("alice")
    bob = connect("bob")
    alice.visit(PAGE)
    bob.visit(PAGE)
    first = alice.call("claim", {"action": "rebook"})["claim"]

    assert alice.call("release", {"action": "rebook"}) == {"ok": True}
    bob.wait_for(lambda b: "rebook" not in claims_of(b))
    second = bob.call("claim", {"action": "rebook"})

    assert second["ok"] is True
    assert second["claim"]["token"] > first["token"]


def test_only_the_holder_may_release(connect):
    alice = connect("alice")
    bob = connect("bob")
    alice.visit(PAGE)
    bob.visit(PAGE)
    alice.call("claim", {"action": "rebook"})

    reply = bob.call("release", {"action": "rebook"})

    assert reply["error"] == "not_holder"
    assert "rebook" in claims_of(alice) or alice.wait_for(
        lambda a: "rebook" in claims_of(a)
    )


def test_claiming_without_a_page_is_refused(connect):
    alice = connect("alice")

    assert alice.call("claim", {"action": "rebook"})["error"] == "not_visiting"
    assert alice.call("release", {"action": "rebook"})["error"] == "not_visiting"


@pytest.mark.parametrize(
    "action", ["", "re book", "x" * 65, "rebook!", "<b>", 42, None, ["rebook"]]
)
def test_invalid_action_names_are_refused(connect, action):
    alice = connect("alice")
    alice.visit(PAGE)

    reply = alice.call("claim", {"action": action})

    assert reply["error"] == "invalid"
    assert alice.call("claim", {"action": "re-book_1.x:y"})["ok"] is True


def claim_all_at_once(agents, action):
    """Have every agent claim ``action`` at the same instant; return the replies."""
    start = threading.Barrier(len(agents))
    replies = [None] * len(agents)

    def claim(index):
        start.wait(timeout=10)
        replies[index] = agents[index].call("claim", {"action": action}, timeout=20)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(len(agents))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return replies


def test_exactly_one_of_many_concurrent_claimers_wins(connect):
    agents = [connect(f"agent{n}") for n in range(50)]
    for agent in agents:
        agent.visit(PAGE)

    for round_number in range(3):
        replies = claim_all_at_once(agents, f"rebook-{round_number}")

        winners = [reply for reply in replies if reply and reply["ok"]]
        losers = [reply for reply in replies if reply and not reply["ok"]]
        assert len(winners) == 1, replies
        assert len(losers) == len(agents) - 1
        assert {loser["error"] for loser in losers} == {"taken"}
        tokens = {loser["claim"]["token"] for loser in losers}
        assert tokens == {winners[0]["claim"]["token"]}


def test_a_reload_within_the_grace_keeps_the_claim_and_shows_no_leave(
    start_server, connect
):
    alice = connect("alice")
    bob = connect("bob")
    alice.visit(PAGE)
    bob.visit(PAGE)
    claim = alice.call("claim", {"action": "rebook"})["claim"]
    bob.wait_for(lambda b: "rebook" in claims_of(b))
    seen_by_bob = []
    bob.sio.on(
        "presence",
        lambda data: seen_by_bob.append([v["user"] for v in data["viewers"]]),
    )

    alice.close()
    alice_again = connect("alice")
    alice_again.visit(PAGE)

    assert claims_of(alice_again)["rebook"] == claim or alice_again.wait_for(
        lambda a: claims_of(a).get("rebook") == claim
    )
    wait_until(lambda: seen_by_bob and seen_by_bob[-1] == ["alice", "bob"])
    assert all("alice" in users for users in seen_by_bob)


def test_staying_away_past_the_grace_releases_the_claim(connect):
    alice = connect("alice")
    bob = connect("bob")
    alice.visit(PAGE)
    bob.visit(PAGE)
    alice.call("claim", {"action": "rebook"})
    bob.wait_for(lambda b: "rebook" in claims_of(b))

    alice.close()

    bob.wait_for(
        lambda b: "rebook" not in claims_of(b) and b.users() == ["bob"], timeout=5
    )
    assert bob.call("claim", {"action": "rebook"})["ok"] is True


def test_leaving_ends_presence_at_once_but_the_claim_waits_out_the_grace(connect):
    alice = connect("alice")
    bob = connect("bob")
    alice.visit(PAGE)
    bob.visit(PAGE)
    alice.call("claim", {"action": "rebook"})

    alice.call("leave", {})

    bob.wait_for(lambda b: b.users() == ["bob"] and "rebook" in claims_of(b))
    bob.wait_for(lambda b: "rebook" not in claims_of(b), timeout=5)


def test_a_claim_lapses_after_its_lifetime(start_server):
    from support import Agent

    server = start_server({"DIBS_CLAIM_TTL_SECONDS": "0.5"})
    alice = Agent(server.url, {"user": "alice"}).connect()
    bob = Agent(server.url, {"user": "bob"}).connect()
    try:
        alice.visit(PAGE)
        bob.visit(PAGE)
        alice.call("claim", {"action": "rebook"})
        bob.wait_for(lambda b: "rebook" in claims_of(b))

        bob.wait_for(lambda b: "rebook" not in claims_of(b), timeout=5)
        alice.wait_for(lambda a: "rebook" not in claims_of(a))
        assert alice.users() == ["alice", "bob"]
    finally:
        alice.close()
        bob.close()


def test_force_release_over_http_tells_the_page(server, connect):
    alice = connect("alice")
    bob = connect("bob")
    alice.visit(PAGE)
    bob.visit(PAGE)
    claim = alice.call("claim", {"action": "rebook"})["claim"]

    response = requests.delete(
        server.url + "/api/claims", params={"page": PAGE, "action": "rebook"}, timeout=5
    )

    assert response.status_code == 200
    assert response.json() == {"ok": True, "released": claim}
    bob.wait_for(lambda b: "rebook" not in claims_of(b))
    alice.wait_for(lambda a: "rebook" not in claims_of(a))
