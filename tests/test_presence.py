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
