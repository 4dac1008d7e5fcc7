"""One table of scenarios, run on the in-memory and on the Redis registry alike.

Each scenario is a list of registry calls with made-up times.  Both registries
must give the same transcript, call by call (fencing tokens are compared by
order only, since Redis also follows its own clock); some steps also pin the
expected answer, so that the two cannot drift together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dibs.errors import DibsError
from dibs.registry import Identity, MemoryRegistry, PageView, RedisRegistry, Registry

LIMITS = {"grace_seconds": 1.0, "claim_ttl_seconds": 60.0, "max_claims_per_user": 2}

Step = tuple[Any, ...]


def users(view: dict[str, Any]) -> list[str]:
    return [viewer["user"] for viewer in view["viewers"]]


def holders(view: dict[str, Any]) -> dict[str, str]:
    return {claim["action"]: claim["user"] for claim in view["claims"]}


SCENARIOS: dict[str, list[Step]] = {
    "agents on one page see each other, tabs counted": [
        ("connect", "a1", "alice", 100),
        ("connect", "a2", "alice", 100),
        ("connect", "b1", "bob", 100),
        ("visit", "a1", "p", "idle", 100.0),
        ("visit", "b1", "p", "viewing", 100.5),
        ("visit", "a2", "p", "editing", 101.0),
        ("view", "p"),
        ("stats",),
    ],
    "state shows a user's most active tab": [
        ("connect", "a1", "alice", 100),
        ("connect", "a2", "alice", 100),
        ("visit", "a1", "p", "editing", 100),
        ("visit", "a2", "p", "idle", 100),
        ("state", "a2", "viewing", 101),
        ("state", "a1", "idle", 102),
        ("state", "a2", "idle", 103),
        ("view", "p"),
    ],
    "a reload within the grace keeps since and claims": [
        ("connect", "a1", "alice", 100),
        ("connect", "b1", "bob", 100),
        ("visit", "a1", "p", "editing", 100),
        ("visit", "b1", "p", "viewing", 100),
        ("claim", "a1", "rebook", 100),
        ("disconnect", "a1", 101),
        ("expire", 101.5),
        ("connect", "a3", "alice", 101.6),
        ("visit", "a3", "p", "viewing", 101.6),
        ("expire", 103),
        ("view", "p"),
        ("claim", "b1", "rebook", 103),
    ],
    "a drop past the grace ends presence and claims": [
        ("connect", "a1", "alice", 100),
        ("connect", "b1", "bob", 100),
        ("visit", "a1", "p", "viewing", 100),
        ("visit", "b1", "p", "viewing", 100),
        ("claim", "a1", "rebook", 100),
        ("disconnect", "a1", 101),
        ("view", "p"),
        ("expire", 101.9),
        ("expire", 102.0),
        ("view", "p"),
        ("claim", "b1", "rebook", 102.1),
    ],
    "leaving ends presence at once; the claim waits out the grace": [
        ("connect", "a1", "alice", 100),
        ("visit", "a1", "p", "viewing", 100),
        ("claim", "a1", "rebook", 100),
        ("leave", "a1", 100.5),
        ("view", "p"),
        ("expire", 101.6),
        ("view", "p"),
        ("views",),
        ("leave", "a1", 102),
    ],
    "visiting elsewhere moves the connection": [
        ("connect", "a1", "alice", 100),
        ("connect", "b1", "bob", 100),
        ("visit", "a1", "p", "viewing", 100),
        ("visit", "b1", "p", "viewing", 100),
        ("visit", "a1", "q", "viewing", 101),
        ("views",),
        ("visit", "a1", "q", "editing", 102),
    ],
    "claims: taken, held again, not holder, not visiting, too many": [
        ("connect", "a1", "alice", 100),
        ("connect", "a2", "alice", 100),
        ("connect", "b1", "bob", 100),
        ("claim", "a1", "rebook", 100),
        ("release", "a1", "rebook", 100),
        ("state", "a1", "idle", 100),
        ("visit", "a1", "p", "viewing", 100),
        ("visit", "a2", "p", "viewing", 100),
        ("visit", "b1", "p", "viewing", 100),
        ("claim", "a1", "rebook", 101),
        ("claim", "a2", "rebook", 102),
        ("claim", "b1", "rebook", 102),
        ("release", "b1", "rebook", 102),
        ("release", "b1", "refund", 102),
        ("claim", "a1", "refund", 103),
        ("claim", "a1", "cancel", 103),
        ("release", "a2", "rebook", 104),
        ("claim", "b1", "rebook", 104),
    ],
    "a claim lapses after its lifetime, tokens keep rising": [
        ("connect", "a1", "alice", 100),
        ("connect", "b1", "bob", 100),
        ("visit", "a1", "p", "viewing", 100),
        ("visit", "b1", "p", "viewing", 100),
        ("claim", "a1", "rebook", 100),
        ("expire", 159),
        ("expire", 160),
        ("claim", "b1", "rebook", 161),
        ("release", "b1", "rebook", 162),
        ("claim", "a1", "rebook", 162),
        ("expire", 221),
        ("view", "p"),
    ],
    "force release, and nothing to release": [
        ("connect", "a1", "alice", 100),
        ("visit", "a1", "p", "viewing", 100),
        ("claim", "a1", "rebook", 100),
        ("force", "p", "rebook", 101),
        ("force", "p", "rebook", 101),
        ("force", "nowhere", "rebook", 101),
        ("release", "a1", "rebook", 102),
    ],
    "legacy hrefs are counted per page, and a visit can rename": [
        ("connect", "l1", "legacy-1", 100),
        ("connect", "l2", "legacy-2", 100),
        ("visit", "l1", "p", "viewing", 100, "http://x/p?a=1", "ann"),
        ("visit", "l2", "p", "viewing", 100, "http://x/p?a=1&utm_x=2", "bea"),
        ("visit", "l2", "p", "viewing", 101, "http://x/p?a=1", "bea"),
        ("view", "p"),
        ("visit", "l1", "p", "viewing", 102, "http://x/p?a=1", "cid"),
        ("disconnect", "l2", 103),
        ("view", "p"),
        ("expire", 104.5),
        ("views",),
    ],
    "a released claim's old deadlines do nothing": [
        ("connect", "a1", "alice", 100),
        ("visit", "a1", "p", "viewing", 100),
        ("claim", "a1", "rebook", 100),
        ("leave", "a1", 100.1),
        ("visit", "a1", "p", "viewing", 100.2),
        ("release", "a1", "rebook", 100.3),
        ("claim", "a1", "rebook", 100.4),
        ("expire", 101.5),
        ("expire", 160.2),
        ("view", "p"),
        ("expire", 160.5),
        ("view", "p"),
    ],
    "a stranger's disconnect and leave change nothing": [
        ("disconnect", "ghost", 100),
        ("leave", "ghost", 100),
        ("connect", "a1", "alice", 100),
        ("disconnect", "a1", 101),
        ("stats",),
    ],
}

EXPECTED: dict[str, dict[int, Callable[[Any], bool]]] = {
    "agents on one page see each other, tabs counted": {
        6: lambda view: (
            users(view) == ["alice", "bob"]
            and view["viewers"][0]["tabs"] == 2
            and view["viewers"][0]["state"] == "editing"
        ),
    },
    "state shows a user's most active tab": {
        4: lambda changes: changes == {},
        5: lambda changes: "p" in changes,
        7: lambda view: view["viewers"][0]["state"] == "idle",
    },
    "a reload within the grace keeps since and claims": {
        6: lambda changes: changes == {},
        10: lambda view: (
            view["viewers"][0]["since"] == 100_000
            and holders(view) == {"rebook": "alice"}
        ),
        11: lambda result: result == ("error", "taken"),
    },
    "a drop past the grace ends presence and claims": {
        6: lambda view: (
            users(view) == ["alice", "bob"] and view["viewers"][0]["tabs"] == 0
        ),
        7: lambda changes: changes == {},
        9: lambda view: users(view) == ["bob"] and view["claims"] == [],
        10: lambda result: result[0] == "claimed",
    },
    "leaving ends presence at once; the claim waits out the grace": {
        4: lambda view: users(view) == [] and holders(view) == {"rebook": "alice"},
        6: lambda view: view == {"page": "p", "viewers": [], "claims": [], "hrefs": []},
        7: lambda views: views == [],
    },
    "claims: taken, held again, not holder, not visiting, too many": {
        3: lambda result: result == ("error", "not_visiting"),
        10: lambda result: result[0] == "claimed" and result[2] == {},
        11: lambda result: result == ("error", "taken"),
        13: lambda result: result == ("error", "not_holder"),
        15: lambda result: result == ("error", "too_many_claims"),
    },
    "a claim lapses after its lifetime, tokens keep rising": {
        6: lambda changes: holders(changes["p"]) == {},
    },
    "force release, and nothing to release": {
        4: lambda result: result == ("error", "not_claimed"),
        6: lambda result: result == ("error", "not_holder"),
    },
    "legacy hrefs are counted per page, and a visit can rename": {
        5: lambda view: (
            view["hrefs"] == ["http://x/p?a=1"] and users(view) == ["ann", "bea"]
        ),
        10: lambda views: [users(view) for view in views] == [["cid"]],
    },
}


class Transcript:
    """Run steps on a registry and record every answer, comparably."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.tokens: dict[int, int] = {}

    def run(self, step: Step) -> Any:
        try:
            return self.normal(self.call(step))
        except DibsError as error:
            return ("error", error.code)

    def call(self, step: Step) -> Any:
        registry = self.registry
        match step:
            case ("connect", sid, user, now):
                return registry.connect(sid, Identity(user, user.title()), now)
            case ("visit", sid, page, state, now):
                return registry.visit(sid, page, state, now)
            case ("visit", sid, page, state, now, href, name):
                identity = Identity(name, name)
                return registry.visit(sid, page, state, now, href, identity)
            case ("leave", sid, now):
                return registry.leave(sid, now)
            case ("state", sid, state, now):
                return registry.set_state(sid, state, now)
            case ("disconnect", sid, now):
                return registry.disconnect(sid, now)
            case ("claim", sid, action, now):
                return ("claimed", *registry.claim(sid, action, now))
            case ("release", sid, action, now):
                return registry.release(sid, action, now)
            case ("force", page, action, now):
                return ("released", *registry.force_release(page, action, now))
            case ("expire", now):
                return registry.expire(now)
            case ("view", page):
                return registry.view(page)
            case ("views",):
                return registry.views()
            case ("stats",):
                return vars(registry.stats())
        raise AssertionError(f"unknown step {step!r}")

    def normal(self, value: Any) -> Any:
        if isinstance(value, PageView):
            return {
                "page": value.page,
                "viewers": value.viewers,
                "claims": [self.normal(claim) for claim in value.claims],
                "hrefs": sorted(value.legacy_hrefs),
            }
        if isinstance(value, dict) and "token" in value:
            # Tokens by order of appearance: Redis also follows its own clock.
            token = self.tokens.setdefault(value["token"], len(self.tokens))
            return {**value, "token": token}
        if isinstance(value, dict):
            return {key: self.normal(item) for key, item in value.items()}
        if isinstance(value, tuple | list):
            return type(value)(self.normal(item) for item in value)
        return value


@pytest.fixture
def redis_registry(redis_server: Any) -> Iterator[Callable[[], RedisRegistry]]:
    """Make Redis registries on the session's Redis, emptied first."""
    redis_server.flushall()
    made: list[RedisRegistry] = []

    def make(**kwargs: Any) -> RedisRegistry:
        registry = RedisRegistry(redis_server.url, **{**LIMITS, **kwargs})
        made.append(registry)
        return registry

    yield make
    for registry in made:
        registry._client.close()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_both_registries_answer_alike(name: str, redis_registry: Callable) -> None:
    steps = SCENARIOS[name]
    memory = Transcript(MemoryRegistry(**LIMITS))
    shared = Transcript(redis_registry())

    for number, step in enumerate(steps):
        expected = memory.run(step)
        assert shared.run(step) == expected, f"step {number}: {step}"
        check = EXPECTED.get(name, {}).get(number)
        assert check is None or check(expected), f"step {number}: {step}: {expected}"


def test_tokens_rise_on_every_claim(redis_registry: Callable) -> None:
    for registry in (MemoryRegistry(**LIMITS), redis_registry()):
        registry.connect("a", Identity("alice", "Alice"), 100)
        registry.visit("a", "p", "viewing", 100)
        tokens = []
        for _ in range(5):
            claim, _ = registry.claim("a", "rebook", 100)
            registry.release("a", "rebook", 100)
            tokens.append(claim["token"])
        assert tokens == sorted(set(tokens)), tokens
