"""Presence over the modern protocol, with real clients on a real server."""

import pytest


def test_two_agents_on_one_page_see_each_other(connect):
    alice = connect("alice")
    bob = connect("bob")

    reply = alice.visit("https://ops.example.com/booking/1?b=2&a=1#top")
    assert reply["page"] == "https://ops.example.com/booking/1?a=1&b=2"
    assert [v["user"] for v in reply["presence"]["viewers"]] == ["alice"]

    bob.visit("https://ops.example.com/booking/1?a=1&b=2&utm_source=mail")
    alice.wait_for(lambda a: a.users() == ["alice", "bob"])
    assert bob.presence["viewers"][1]["name"] == "Bob"


@pytest.mark.parametrize("path", ["socket.io", "dibs"])
@pytest.mark.parametrize("transports", [["websocket"], ["polling", "websocket"]])
def test_both_paths_and_transports_work(connect, path, transports):
    alice = connect("alice", path=path, transports=transports)
    reply = alice.visit("booking:1")
    assert reply["presence"]["viewers"][0]["user"] == "alice"


def test_visit_ack_carries_the_page_key_and_presence(connect):
    alice = connect("alice", "Alice Adams")

    reply = alice.call("visit", {"page": "booking:309208537", "state": "editing"})

    assert reply["ok"] is True
    assert reply["page"] == "booking:309208537"
    [viewer] = reply["presence"]["viewers"]
    assert viewer["user"] == "alice"
    assert viewer["name"] == "Alice Adams"
    assert viewer["state"] == "editing"
    assert viewer["tabs"] == 1
    assert isinstance(viewer["since"], int)
    assert reply["presence"]["claims"] == []


def test_a_connection_without_identity_gets_an_anonymous_one(connect):
    stranger = connect()

    [viewer] = stranger.visit("booking:1")["presence"]["viewers"]

    assert viewer["user"].startswith("anonymous-")


def test_two_tabs_of_one_user_count_as_one_viewer(connect):
    alice_tab1 = connect("alice")
    alice_tab2 = connect("alice")
    bob = connect("bob")
    bob.visit("booking:1")

    alice_tab1.visit("booking:1")
    alice_tab2.visit("booking:1", state="editing")

    def alice_seen_by_bob(tabs, state):
        viewers = {v["user"]: v for v in (bob.presence or {}).get("viewers", [])}
        alice = viewers.get("alice")
        return alice and alice["tabs"] == tabs and alice["state"] == state

    bob.wait_for(lambda b: alice_seen_by_bob(2, "editing"))
    alice_tab2.call("leave", {})
    bob.wait_for(lambda b: alice_seen_by_bob(1, "viewing"))
    alice_tab1.call("leave", {})
    bob.wait_for(lambda b: b.users() == ["bob"])


def test_presence_goes_only_to_the_page_that_changed(connect):
    alice = connect("alice")
    bob = connect("bob")
    carol = connect("carol")
    alice.visit("booking:1")
    carol.visit("booking:2")
    carol.presence = None

    bob.visit("booking:1")
    alice.wait_for(lambda a: a.users() == ["alice", "bob"])

    assert carol.presence is None


def test_navigating_moves_a_viewer_between_pages(connect):
    alice = connect("alice")
    bob = connect("bob")
    carol = connect("carol")
    alice.visit("booking:1")
    carol.visit("booking:2")
    bob.visit("booking:1")

    bob.visit("booking:2")

    alice.wait_for(lambda a: a.users() == ["alice"])
    carol.wait_for(lambda c: c.users() == ["carol", "bob"])


def test_state_changes_reach_the_other_viewers(connect):
    alice = connect("alice")
    bob = connect("bob")
    alice.visit("booking:1")
    bob.visit("booking:1")

    assert bob.call("state", {"state": "idle"}) == {"ok": True}

    def bob_state(agent):
        return {v["user"]: v["state"] for v in agent.presence["viewers"]}.get("bob")

    alice.wait_for(lambda a: bob_state(a) == "idle")


def test_a_disconnected_viewer_leaves_after_the_grace(connect):
    alice = connect("alice")
    bob = connect("bob")
    alice.visit("booking:1")
    bob.visit("booking:1")
    alice.wait_for(lambda a: a.users() == ["alice", "bob"])

    bob.close()

    alice.wait_for(lambda a: a.users() == ["alice"], timeout=5)


def test_a_killed_client_process_disappears(server, connect, tmp_path):
    import subprocess
    import sys

    alice = connect("alice")
    alice.visit("booking:1")
    script = tmp_path / "agent.py"
    script.write_text(
        "import sys, time, socketio\n"
        "sio = socketio.Client()\n"
        f"sio.connect({server.url!r}, auth={{'user': 'bob'}},"
        " transports=['websocket'])\n"
        "sio.call('visit', {'page': 'booking:1'})\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    bob = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE)
    try:
        assert bob.stdout.readline().strip() == b"ready"
        alice.wait_for(lambda a: a.users() == ["alice", "bob"])
        bob.kill()
        alice.wait_for(lambda a: a.users() == ["alice"], timeout=10)
    finally:
        bob.kill()
        bob.wait(10)


def test_failed_requests_keep_the_connection_up(connect):
    alice = connect("alice")

    reply = alice.call("visit", {"page": ""})
    assert reply["ok"] is False
    assert reply["error"] == "invalid"
    assert reply["message"]

    reply = alice.call("state", {"state": "dancing"})
    assert reply["error"] == "invalid"

    assert alice.visit("booking:1")["ok"]


def test_a_failure_without_ack_arrives_as_an_error_event(connect):
    alice = connect("alice")

    alice.send("visit", {"page": 42})

    alice.wait_for(lambda a: a.errors)
    assert alice.errors[0]["ok"] is False
    assert alice.errors[0]["error"] == "invalid"


def test_unknown_events_are_refused(connect):
    alice = connect("alice")

    reply = alice.call("teleport", {"page": "x"})

    assert reply["error"] == "unknown_event"
    assert alice.visit("booking:1")["ok"]


def test_healthz_counts_connections(server, connect):
    import requests

    connect("alice")
    connect("bob")

    body = requests.get(server.url + "/healthz", timeout=5).json()
    assert body["status"] == "ok"
    assert body["connections"] == 2
