"""The official JavaScript client (npm ``socket.io-client``, run by Node) on Dibs.

Each test runs a scenario driver of ``tests/js`` against a real server and
asserts on the JSON lines the driver printed of what its clients received.
"""

from __future__ import annotations

import time

import pytest
from support import NodeScenario, wait_until

PATHS = ["socket.io", "dibs"]
MODES = ["websocket", "upgrade"]
VIEWER_FIELDS = {"user", "name", "state", "since", "tabs"}
CLAIM_FIELDS = {"action", "user", "name", "since", "token"}

BOOKING = "https://ops.example.com/booking/42?a=1&b=2"
LEGACY_HREF = "https://ops.example.com/booking/7?tab=notes"
MODERN_PAGE = "https://ops.example.com/booking/7?utm_source=mail&tab=notes#top"
FRAGMENT_HREF = "https://ops.example.com/booking/7?tab=notes#history"


def users(presence):
    return [viewer["user"] for viewer in presence["viewers"]]


def assert_connected_over(run, server, mode, *clients):
    """Check each client's first transport, its final one, and the server's log."""
    first = "websocket" if mode == "websocket" else "polling"
    for client in clients:
        connected = run.one("connected", client=client)
        assert connected["transport"] == first

        transport = run.one("transport", client=client)
        assert transport["name"] == "websocket"
        assert transport["upgrades"] == ([] if mode == "websocket" else ["websocket"])

        line = f"connect {connected['id']} user={client} transport={first}"
        wait_until(lambda line=line: line in server.log())


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("mode", MODES)
def test_two_node_clients_use_the_modern_protocol(server, path, mode):
    run = NodeScenario("modern.mjs", server.url, path, mode, server=server).run()

    alice_visit = run.one("reply", client="alice", event="visit")["reply"]
    assert alice_visit["ok"] is True
    assert alice_visit["page"] == BOOKING
    assert alice_visit["presence"]["page"] == BOOKING
    assert alice_visit["presence"]["claims"] == []
    [alice] = alice_visit["presence"]["viewers"]
    assert set(alice) == VIEWER_FIELDS
    assert (alice["user"], alice["name"], alice["state"], alice["tabs"]) == (
        "alice",
        "Alice",
        "viewing",
        1,
    )
    assert abs(alice["since"] - time.time() * 1000) < 60_000

    bob_visit = run.steps("reply", client="bob", event="visit")[0]["reply"]
    assert bob_visit["page"] == BOOKING
    assert users(bob_visit["presence"]) == ["alice", "bob"]
    for client in ("alice", "bob"):
        seen = run.one("both_present", client=client)["data"]
        assert seen["page"] == BOOKING
        assert [v["name"] for v in seen["viewers"]] == ["Alice", "Bob"]

    editing = run.one("bob_editing", client="alice")["data"]
    assert [v["state"] for v in editing["viewers"]] == ["viewing", "editing"]

    claimed = run.one("reply", client="alice", event="claim")["reply"]
    assert claimed["ok"] is True
    claim = claimed["claim"]
    assert set(claim) == CLAIM_FIELDS
    assert (claim["action"], claim["user"], claim["name"]) == (
        "refund",
        "alice",
        "Alice",
    )
    assert isinstance(claim["token"], int) and claim["token"] > 0
    assert run.one("claimed", client="bob")["data"]["claims"] == [claim]
    taken = run.one("reply", client="bob", event="claim")["reply"]
    assert (taken["ok"], taken["error"], taken["claim"]) == (False, "taken", claim)
    assert run.one("reply", client="alice", event="release")["reply"] == {"ok": True}
    assert run.one("released", client="bob")["data"]["claims"] == []

    invalid = run.one("error_invalid", client="bob")["data"]
    assert (invalid["ok"], invalid["error"]) == (False, "invalid")
    assert "action" in invalid["message"]
    not_holder = run.one("error_not_holder", client="bob")["data"]
    assert (not_holder["ok"], not_holder["error"]) == (False, "not_holder")

    assert run.steps("reply", client="bob", event="leave")[0]["reply"] == {"ok": True}
    assert users(run.one("bob_left", client="alice")["data"]) == ["alice"]
    told = run.one("after_leave", client="bob")["events"]
    assert told == ["presence booking:elsewhere"]

    assert_connected_over(run, server, mode, "alice", "bob")


@pytest.mark.parametrize(
    ("path", "mode"), [("dibs", "upgrade"), ("socket.io", "websocket")]
)
def test_legacy_node_clients_meet_a_modern_one(server, path, mode):
    run = NodeScenario(
        "legacy.mjs",
        server.url,
        path,
        mode,
        LEGACY_HREF,
        MODERN_PAGE,
        FRAGMENT_HREF,
        server=server,
    ).run()

    alone = run.one("lena_alone", client="lena")["data"]
    assert list(alone) == [LEGACY_HREF]
    assert list(alone[LEGACY_HREF]) == ["lena"]
    assert isinstance(alone[LEGACY_HREF]["lena"], int)
    assert abs(alone[LEGACY_HREF]["lena"] - time.time() * 1000) < 60_000

    for step, client in [("lena_sees_leo", "lena"), ("leo_sees_lena", "leo")]:
        update = run.one(step, client=client)["data"]
        assert list(update) == [LEGACY_HREF]
        assert sorted(update[LEGACY_HREF]) == ["lena", "leo"]

    mia_visit = run.one("reply", client="mia", event="visit")["reply"]
    assert mia_visit["page"] == LEGACY_HREF
    assert users(mia_visit["presence"]) == ["lena", "leo", "mia"]
    mia_since = mia_visit["presence"]["viewers"][2]["since"]
    with_mia = run.one("lena_sees_mia", client="lena")["data"]
    assert list(with_mia) == [LEGACY_HREF]
    assert with_mia[LEGACY_HREF]["Mia"] == mia_since

    zoe_view = run.one("zoe_sees_all", client="zoe")["data"]
    assert list(zoe_view) == [FRAGMENT_HREF]
    assert sorted(zoe_view[FRAGMENT_HREF]) == ["Mia", "lena", "leo", "zoe"]
    assert list(run.one("lena_sees_zoe", client="lena")["data"]) == [LEGACY_HREF]
    assert "zoe" in users(run.one("mia_sees_zoe", client="mia")["data"])

    gone = run.one("leo_gone", client="lena")["data"]
    assert sorted(gone[LEGACY_HREF]) == ["Mia", "lena", "zoe"]
    # The grace period is 0.3 s: leo must not vanish before it is over.
    assert run.one("leo_removed_after")["ms"] >= 250
    assert users(run.one("mia_sees_leo_gone", client="mia")["data"]) == [
        "lena",
        "mia",
        "zoe",
    ]

    for client in ("lena", "mia"):
        assert run.one("transport", client=client)["name"] == "websocket"


@pytest.mark.parametrize(
    ("path", "mode"), [("socket.io", "upgrade"), ("dibs", "websocket")]
)
def test_python_agent_and_node_client_see_each_other(server, connect, path, mode):
    pat = connect("pat")
    pat.visit(BOOKING + "#notes")

    nora = NodeScenario(
        "peer.mjs", server.url, path, mode, "nora", BOOKING, "pat", server=server
    ).start()
    try:
        pat.wait_for(lambda agent: agent.users() == ["pat", "nora"], timeout=20)
        arrived = nora.wait_for("peer_arrived")["data"]
        assert users(arrived) == ["pat", "nora"]
        assert nora.wait_for("transport")["name"] == "websocket"

        assert pat.call("leave", {}) == {"ok": True}
        nora.finish()
    finally:
        nora.stop()
    assert users(nora.one("peer_left")["data"]) == ["nora"]
