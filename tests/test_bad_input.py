"""Bad payloads, generated: every event answers a success or a clear refusal.

Hypothesis throws generated arguments at every event a client can send, from
a real client to a real server, and checks each reply's shape; afterwards two
bystanders must still see each other and the claim one of them holds, exactly
as before, and the attacker's connection must still work.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from typing import Any

import pytest
import requests
import socketio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rawclient import RawSocketIO
from support import Agent, DibsProcess, wait_until

PAGE = "https://ops.example.com/booking/309208537"
ACTION = "rebook"
BYSTANDERS = ("alice", "bob")
NO_LIMIT = {"DIBS_RATE_PER_SECOND": "100000", "DIBS_RATE_BURST": "100000"}
EXAMPLES = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# JSON values of every kind, nested a little, with huge numbers and odd text.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.text(alphabet="\x00\x1f\x7f\u200b\ufeff\U0001f600 ab", max_size=8)
    | st.sampled_from(["", " ", "a" * 101, "x" * 3000, "booking:1", "legacy:all"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
pages = (
    st.sampled_from([PAGE, "booking:7", "https://ops.example.com/b?x=1#top"]) | values
)
states = st.sampled_from(["editing", "viewing", "idle"]) | values
actions = st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True) | values
usernames = (st.sampled_from(["mallory", "Mallory M."]) | values).filter(
    lambda name: not (isinstance(name, str) and name.strip() in BYSTANDERS)
)


def payload(fields: dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    """Objects with some of ``fields`` and maybe extra keys, or any value at all."""
    objects = st.fixed_dictionaries({}, optional=fields).flatmap(
        lambda base: st.dictionaries(st.text(max_size=8), values, max_size=2).map(
            lambda extra: {**extra, **base}
        )
    )
    return objects | values


def arguments(first: st.SearchStrategy) -> st.SearchStrategy:
    """Usually one argument; sometimes none, or extra ones."""
    return st.one_of(
        first.map(lambda one: [one]),
        st.just([]),
        st.tuples(first, values).map(list),
    )


EVENTS = {
    "visit": arguments(payload({"page": pages, "state": states})),
    "leave": arguments(payload({})),
    "state": arguments(payload({"state": states})),
    "claim": arguments(payload({"action": actions})),
    "release": arguments(payload({"action": actions})),
    "PAGE_VISIT": st.lists(st.one_of(pages, usernames, values), max_size=4)
    | st.tuples(pages, usernames, st.integers() | values).map(list),
    "subscribe": arguments(payload({"topic": actions})),
    "unknown": arguments(values),
}
UNKNOWN_NAMES = st.text(alphabet=string.printable, min_size=1, max_size=20).filter(
    lambda name: name not in EVENTS
)


def assert_reply(reply: Any) -> None:
    """Assert ``reply`` is a success or a refusal with a code and a message."""
    assert isinstance(reply, dict), reply
    if reply.get("ok") is True:
        return
    assert reply.get("ok") is False, reply
    assert isinstance(reply.get("error"), str) and reply["error"] != "internal", reply
    assert isinstance(reply.get("message"), str) and reply["message"], reply
    assert len(json.dumps(reply)) < 2000, "a refusal does not echo the payload"


class Scene:
    """Alice and Bob on a page, Alice holding a claim, and Mallory attacking."""

    def __init__(self, server: DibsProcess) -> None:
        self.server = server
        self.alice = self.agent("alice")
        self.bob = self.agent("bob")
        self.alice.visit(PAGE)
        self.bob.visit(PAGE, state="editing")
        self.claim = self.alice.call("claim", {"action": ACTION})["claim"]
        self.mallory = self.agent("mallory")

    def agent(self, user: str, **kwargs: Any) -> Agent:
        auth = {"user": user, "name": user.title()}
        return Agent(self.server.url, auth=auth, **kwargs).connect(timeout=10)

    def attack(self, event: str, args: list[Any], ack: bool) -> None:
        if not ack:
            self.mallory.sio.emit(event, tuple(args))
            return
        reply = self.mallory.sio.call(event, tuple(args), timeout=10)
        assert_reply(reply)

    def check(self) -> None:
        """Assert the bystanders' page is exactly as they left it."""
        assert self.mallory.sio.connected, "the attacker's connection stays up"
        assert self.mallory.call("leave", {}) == {"ok": True}
        for error in self.mallory.errors:
            assert_reply(error)

        key = self.alice.call("visit", {"page": PAGE})["page"]
        expected = ([("alice", "viewing"), ("bob", "editing")], [self.claim])
        # Whatever Mallory held there lapses after the grace period.
        wait_until(lambda: self.page(key) == expected, timeout=10)

        self.bob.wait_for(lambda bob: bob.presence["claims"] == [self.claim])
        carol = self.agent("carol")
        seen = carol.visit(PAGE)["presence"]
        assert [v["user"] for v in seen["viewers"]] == ["alice", "bob", "carol"]
        assert seen["claims"] == [self.claim]
        carol.close()
        log = self.server.log_path.read_text(errors="replace")
        assert "Traceback" not in log and " ERROR " not in log

    def api_presence(self, key: str) -> dict[str, Any]:
        url = self.server.url + "/api/presence"
        return requests.get(url, params={"page": key}, timeout=10).json()

    def page(self, key: str) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
        presence = self.api_presence(key)
        viewers = [(v["user"], v["state"]) for v in presence["viewers"]]
        return viewers, presence["claims"]

    def close(self) -> None:
        for agent in (self.alice, self.bob, self.mallory):
            agent.close()


@pytest.fixture
def scene(start_server: Callable[..., DibsProcess]) -> Scene:
    crowd = Scene(start_server(NO_LIMIT))
    yield crowd
    crowd.close()


def test_every_event_answers_generated_payloads_and_harms_nobody(scene) -> None:
    for event, arguments_of in EVENTS.items():
        names = UNKNOWN_NAMES if event == "unknown" else st.just(event)

        @EXAMPLES
        @given(names, arguments_of, st.booleans())
        def attack(name: str, args: list[Any], ack: bool) -> None:
            scene.attack(name, args, ack)

        attack()
        scene.check()


auth_payloads = st.one_of(
    st.fixed_dictionaries({}, optional={"user": usernames, "name": values}),
    values,
)


@pytest.mark.memory_only  # refused at the door: the registry is never reached
def test_connect_answers_generated_auth_payloads(server: DibsProcess) -> None:
    @settings(
        max_examples=30,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(auth_payloads)
    def connect(auth: Any) -> None:
        agent = Agent(server.url, auth=auth)
        try:
            agent.connect(timeout=10)
        except socketio.exceptions.ConnectionError:
            assert requests.get(server.url + "/healthz", timeout=10).ok
            return
        viewer = agent.visit("booking:1")["presence"]["viewers"][0]
        assert isinstance(viewer["user"], str) and 0 < len(viewer["user"]) <= 100
        agent.close()

    connect()
    wait_until(lambda: requests.get(server.url + "/healthz").json()["connections"] == 0)


def test_ackless_bad_events_get_one_error_event_each(connect) -> None:
    mallory = connect("mallory")
    mallory.send("visit", "not an object")
    mallory.send("claim", {"action": "no spaces allowed"})
    mallory.send("no-such-event", 1)
    mallory.send("visit", {"page": "booking:1"})

    mallory.wait_for(lambda m: len(m.errors) == 3)
    assert [error["error"] for error in mallory.errors] == [
        "invalid",
        "invalid",
        "unknown_event",
    ]
    assert mallory.call("leave", {}) == {"ok": True}
    assert len(mallory.errors) == 3, "the good event got no error"


@pytest.mark.parametrize("event", ["connect", "disconnect", "*", "connect_error"])
def test_reserved_event_names_cannot_run_the_servers_handlers(connect, event) -> None:
    mallory = connect("mallory")
    bob = connect("bob")
    mallory.visit(PAGE)

    reply = mallory.call(event, {}, {"user": "alice", "name": "Alice"})
    assert reply["error"] == "unknown_event"

    bob.visit(PAGE)
    assert bob.wait_for(lambda b: b.users() == ["mallory", "bob"])
    assert mallory.call("claim", {"action": ACTION})["claim"]["user"] == "mallory"


def test_extra_arguments_and_binary_payloads_are_refused(connect) -> None:
    mallory = connect("mallory")
    reply = mallory.call("visit", {"page": PAGE}, "extra")
    assert reply["error"] == "invalid" and "at most" in reply["message"]

    reply = mallory.sio.call("visit", {"page": b"\x00\x01"}, timeout=10)
    assert reply["error"] == "invalid" and "binary" in reply["message"]
    assert mallory.visit(PAGE)["ok"], "the connection stays up"


@pytest.mark.memory_only  # room names are the Socket.IO server's, not the registry's
def test_pages_named_like_rooms_reach_nobody_else(start_server) -> None:
    server = start_server({"DIBS_LEGACY_SCOPE": "all"})
    alice = RawSocketIO(server.port, {"user": "alice"})
    alice.call("visit", {"page": PAGE})
    legacy = RawSocketIO(server.port)
    legacy.call("PAGE_VISIT", "https://ops.example.com/old", "olga", 1)
    mallory = Agent(server.url, auth={"user": "mallory"}).connect()

    for page in (alice.sid, "legacy:all", "href:https://ops.example.com/old", "/"):
        assert mallory.visit(page)["ok"]
        # Anything sent to Alice or Olga because of that visit is queued before
        # the acks of the calls below, which they read in order.
        _, events = alice.call("state", {"state": "viewing"})
        assert all(data["page"] == PAGE for name, data in events), (page, events)
        _, events = legacy.call("PAGE_VISIT", "https://ops.example.com/old", "olga")
        assert not [name for name, data in events if name == "presence"], page

    alice.close()
    legacy.close()
    mallory.close()
