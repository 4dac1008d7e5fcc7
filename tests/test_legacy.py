"""The legacy protocol (``PAGE_VISIT`` / ``PAGEVISITORINFO_UPDATE``), with real
python-socketio clients that connect as the old ones do, without ``auth``."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support import Agent, DibsProcess, wait_until

UPDATE = "PAGEVISITORINFO_UPDATE"
BOOKING = "https://ops.example.com/booking/5?a=2&z=1"
BOOKING_AS_SENT = "https://OPS.example.com/booking/5?z=1&a=2&utm_campaign=spring#notes"
OTHER_BOOKING = "https://ops.example.com/booking/6"


class Inbox:
    """Every event one agent received, in order."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.received: list[tuple[str, Any]] = []

    def updates(self) -> list[dict[str, dict[str, int]]]:
        """Return every ``PAGEVISITORINFO_UPDATE`` received so far."""
        while True:
            try:
                self.received.append(self.agent.events.get_nowait())
            except queue.Empty:
                break
        return [data for event, data in self.received if event == UPDATE]

    def wait_update(
        self, check: Callable[[dict[str, Any]], bool], after: int = 0
    ) -> dict[str, Any]:
        """Wait for an update, from the ``after``-th on, that passes ``check``."""
        return wait_until(
            lambda: next((u for u in self.updates()[after:] if check(u)), None),
            timeout=10,
        )

    def sync(self) -> None:
        """Wait for the answer to a request that changes nothing.

        What the server queued for this agent before the answer arrives first.
        Note that on Redis emits go through its channel and answers do not:
        only an emit already seen by another agent in the same room is sure
        to have been queued for this one.
        """
        self.agent.call("state", {"state": "viewing"})


@pytest.fixture
def agents() -> Iterator[Callable[..., Inbox]]:
    """Connect agents to a server; ``user`` makes a modern one, else a legacy one."""
    connected: list[Agent] = []

    def make(server: DibsProcess, user: str | None = None) -> Inbox:
        auth = {"user": user, "name": user.title()} if user else None
        agent = Agent(server.url, auth=auth)
        connected.append(agent)
        return Inbox(agent.connect())

    yield make
    for agent in connected:
        agent.close()


def page_visit(inbox: Inbox, href: Any, username: Any) -> None:
    """Send a ``PAGE_VISIT`` as old clients do: no acknowledgement asked."""
    inbox.agent.send("PAGE_VISIT", href, username, int(time.time() * 1000))


def names(update: dict[str, Any], href: str) -> list[str]:
    return sorted(update.get(href, {}))


def arrive(inbox: Inbox, href: str, username: str, *everyone: str) -> None:
    """Visit ``href`` as ``username`` and wait to see ``everyone`` there."""
    page_visit(inbox, href, username)
    inbox.wait_update(lambda update: names(update, href) == sorted(everyone))


def test_update_is_keyed_by_the_exact_href_sent(server, agents):
    lena, leo = agents(server), agents(server)

    page_visit(lena, BOOKING_AS_SENT, "lena")
    first = lena.wait_update(lambda u: names(u, BOOKING_AS_SENT) == ["lena"])
    assert list(first) == [BOOKING_AS_SENT]
    since = first[BOOKING_AS_SENT]["lena"]
    assert isinstance(since, int)
    assert abs(since - time.time() * 1000) < 60_000

    page_visit(leo, BOOKING, "leo")
    seen_by_leo = leo.wait_update(lambda u: names(u, BOOKING) == ["lena", "leo"])
    seen_by_lena = lena.wait_update(
        lambda u: names(u, BOOKING_AS_SENT) == ["lena", "leo"]
    )
    assert list(seen_by_leo) == [BOOKING]
    assert list(seen_by_lena) == [BOOKING_AS_SENT]
    assert seen_by_leo[BOOKING] == seen_by_lena[BOOKING_AS_SENT]
    assert seen_by_lena[BOOKING_AS_SENT]["lena"] == since


def test_page_visit_acknowledges_with_the_page_key(server, agents):
    lena = agents(server)

    reply = lena.agent.call("PAGE_VISIT", BOOKING_AS_SENT, "lena", 1)

    assert reply == {"ok": True, "page": BOOKING}


def test_a_legacy_client_hears_nothing_about_other_pages(server, agents):
    lena, leo, ned = agents(server), agents(server), agents(server)
    mia = agents(server, "mia")
    arrive(lena, BOOKING, "lena", "lena")

    arrive(ned, OTHER_BOOKING, "ned", "ned")
    mia.agent.visit(OTHER_BOOKING)
    ned.wait_update(lambda u: names(u, OTHER_BOOKING) == ["Mia", "ned"])
    ned.agent.close()
    mia.agent.wait_for(lambda agent: agent.users() == ["mia"], timeout=10)
    mia.agent.call("leave", {})

    # Told after all of the above, so anything sent to lena before is in.
    arrive(leo, BOOKING, "leo", "lena", "leo")
    lena.wait_update(lambda u: names(u, BOOKING) == ["lena", "leo"])
    assert all(list(update) == [BOOKING] for update in lena.updates())
    assert lena.agent.presence is None


def test_scope_all_sends_every_legacy_client_the_whole_map(start_server, agents):
    server = start_server({"DIBS_LEGACY_SCOPE": "all"})
    lena, leo, mia = agents(server), agents(server), agents(server, "mia")

    page_visit(lena, BOOKING_AS_SENT, "lena")
    lena.wait_update(lambda u: BOOKING_AS_SENT in u)
    page_visit(leo, OTHER_BOOKING, "leo")
    leo.wait_update(lambda u: OTHER_BOOKING in u)
    mia.agent.visit("booking:9")
    whole = {
        BOOKING_AS_SENT: ["lena"],
        OTHER_BOOKING: ["leo"],
        "booking:9": ["Mia"],
    }

    def is_whole(update: dict[str, Any]) -> bool:
        return {href: sorted(visitors) for href, visitors in update.items()} == whole

    assert lena.wait_update(is_whole) == leo.wait_update(is_whole)

    leo.agent.close()
    del whole[OTHER_BOOKING]
    lena.wait_update(is_whole)


def test_navigation_updates_the_page_left_and_the_page_reached(server, agents):
    lena, leo, ned = agents(server), agents(server), agents(server)
    mia = agents(server, "mia")
    arrive(lena, BOOKING, "lena", "lena")
    arrive(leo, BOOKING, "leo", "lena", "leo")
    arrive(ned, OTHER_BOOKING, "ned", "ned")
    mia.agent.visit(BOOKING)
    leo.wait_update(lambda u: names(u, BOOKING) == ["Mia", "lena", "leo"])
    lena.sync()

    mark = len(lena.updates())
    page_visit(lena, OTHER_BOOKING, "lena")

    # Moving away is not a dropped connection: lena leaves at once, no grace.
    leo.wait_update(lambda u: names(u, BOOKING) == ["Mia", "leo"])
    mia.agent.wait_for(lambda agent: sorted(agent.users()) == ["leo", "mia"])
    ned.wait_update(lambda u: names(u, OTHER_BOOKING) == ["lena", "ned"])
    lena.wait_update(lambda u: names(u, OTHER_BOOKING) == ["lena", "ned"], after=mark)

    # The page left must not reach lena any more.
    leo.agent.close()
    mia.agent.wait_for(lambda agent: agent.users() == ["mia"], timeout=10)
    mia.agent.visit(OTHER_BOOKING)
    lena.wait_update(lambda u: names(u, OTHER_BOOKING) == ["Mia", "lena", "ned"])
    assert all(list(update) == [OTHER_BOOKING] for update in lena.updates()[mark:])


def test_a_visit_that_changes_nothing_still_gets_an_update(server, agents):
    lena, leo = agents(server), agents(server)
    arrive(lena, BOOKING, "lena", "lena")
    arrive(leo, BOOKING, "leo", "lena", "leo")
    first = lena.wait_update(lambda u: names(u, BOOKING) == ["lena", "leo"])
    lena.sync()
    leo.sync()
    lena_count, leo_count = len(lena.updates()), len(leo.updates())

    page_visit(lena, BOOKING, "lena")

    again = lena.wait_update(lambda u: True, after=lena_count)
    assert again == first
    leo.sync()
    assert len(leo.updates()) == leo_count


BAD_ARGUMENTS = [
    # (the arguments of a PAGE_VISIT, a word its refusal must name)
    ((12345, "lena", 1), "href"),
    ((None, "lena", 1), "href"),
    (("   ", "lena", 1), "href"),
    (("https://ops.example.com/" + "x" * 2048, "lena", 1), "href"),
    ((), "href"),
    ((BOOKING, "", 1), "username"),
    ((BOOKING, ["lena"], 1), "username"),
    ((BOOKING, "l" * 101, 1), "username"),
    ((BOOKING,), "username"),
    ((BOOKING, "lena", 1, "extra"), "argument"),
]


def test_bad_page_visits_are_refused_and_the_connection_stays(server, agents):
    lena, leo = agents(server), agents(server)
    arrive(lena, OTHER_BOOKING, "lena", "lena")
    arrive(leo, OTHER_BOOKING, "leo", "lena", "leo")
    leo.sync()
    seen_by_leo = len(leo.updates())

    for count, (arguments, word) in enumerate(BAD_ARGUMENTS, start=1):
        lena.agent.sio.emit("PAGE_VISIT", arguments)
        lena.agent.wait_for(lambda agent, count=count: len(agent.errors) == count)
        reply = lena.agent.sio.call("PAGE_VISIT", arguments, timeout=5)

        for refusal in (lena.agent.errors[-1], reply):
            assert (refusal["ok"], refusal["error"]) == (False, "invalid"), arguments
            assert word in refusal["message"], refusal
        assert lena.agent.sio.connected

    # Nothing changed for anyone: lena is still on her page, seen by leo.
    leo.sync()
    assert len(leo.updates()) == seen_by_leo
    # The same connection still works, and moves as it should.
    arrive(lena, BOOKING, "lena", "lena")
    leo.wait_update(lambda u: names(u, OTHER_BOOKING) == ["leo"])


def test_a_connection_that_switches_protocol_hears_only_its_new_page(server, agents):
    lena = agents(server)
    mia = agents(server, "mia")
    arrive(lena, BOOKING, "lena", "lena")
    page_visit(mia, BOOKING, "mia")
    lena.wait_update(lambda u: names(u, BOOKING) == ["lena", "mia"])

    # From a legacy visit to a modern one: no more updates of the old page.
    mia.agent.visit(OTHER_BOOKING)
    lena.wait_update(lambda u: names(u, BOOKING) == ["lena"])
    heard = len(mia.updates())
    arrive(agents(server), BOOKING, "ned", "lena", "ned")
    lena.wait_update(lambda u: names(u, BOOKING) == ["lena", "ned"])
    mia.sync()
    assert [u for u in mia.updates()[heard:] if BOOKING in u] == []

    # And back: no more presence of the modern page.
    page_visit(mia, BOOKING, "mia")
    lena.wait_update(lambda u: names(u, BOOKING) == ["lena", "mia", "ned"])
    last_presence = mia.agent.presence
    bob = agents(server, "bob")
    bob.agent.visit(OTHER_BOOKING)
    mia.sync()
    assert mia.agent.presence == last_presence
    viewers = bob.agent.visit(OTHER_BOOKING)["presence"]["viewers"]
    assert [viewer["user"] for viewer in viewers] == ["bob"]
