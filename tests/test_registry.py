"""The in-memory registry on its own: semantics, deadlines, and gevent safety."""

import random

import gevent
import pytest

from dibs.errors import NotClaimed, NotHolder, NotVisiting, Taken, TooManyClaims
from dibs.registry import Identity, MemoryRegistry

ALICE = Identity("alice", "Alice")
BOB = Identity("bob", "Bob")
T0 = 1_700_000_000.0


@pytest.fixture
def registry():
    return MemoryRegistry(grace_seconds=5, claim_ttl_seconds=60, max_claims_per_user=2)


def viewers(registry, page):
    return {v["user"]: v for v in registry.view(page).viewers}


def test_visit_returns_the_changed_page(registry):
    registry.connect("a1", ALICE, T0)

    changes = registry.visit("a1", "p", "viewing", T0)

    assert list(changes) == ["p"]
    assert changes["p"].presence() == {
        "page": "p",
        "viewers": [
            {
                "user": "alice",
                "name": "Alice",
                "state": "viewing",
                "since": 1_700_000_000_000,
                "tabs": 1,
            }
        ],
        "claims": [],
        "version": changes["p"].version,
    }


def test_every_change_gets_a_higher_version(registry):
    registry.connect("a1", ALICE, T0)
    registry.connect("b1", BOB, T0)

    first = registry.visit("a1", "p", "viewing", T0)["p"].version
    moved = registry.visit("a1", "q", "viewing", T0)
    second = registry.visit("b1", "q", "viewing", T0)["q"].version

    assert 0 < first < moved["p"].version == moved["q"].version < second
    assert registry.view("q").version == second
    assert registry.view("nowhere").version == 0


def test_two_tabs_of_one_user_show_once_with_the_most_active_state(registry):
    registry.connect("a1", ALICE, T0)
    registry.connect("a2", ALICE, T0)
    registry.visit("a1", "p", "idle", T0)
    registry.visit("a2", "p", "editing", T0 + 1)

    alice = viewers(registry, "p")["alice"]
    assert alice["tabs"] == 2
    assert alice["state"] == "editing"
    assert alice["since"] == 1_700_000_000_000

    registry.leave("a2", T0 + 2)
    alice = viewers(registry, "p")["alice"]
    assert (alice["tabs"], alice["state"]) == (1, "idle")


def test_viewers_are_sorted_by_arrival(registry):
    registry.connect("b1", BOB, T0)
    registry.connect("a1", ALICE, T0)
    registry.visit("b1", "p", "viewing", T0)
    registry.visit("a1", "p", "viewing", T0 + 1)

    assert [v["user"] for v in registry.view("p").viewers] == ["bob", "alice"]


def test_navigation_moves_the_connection_and_changes_both_pages(registry):
    registry.connect("a1", ALICE, T0)
    registry.visit("a1", "p", "viewing", T0)

    changes = registry.visit("a1", "q", "viewing", T0 + 1)

    assert set(changes) == {"p", "q"}
    assert changes["p"].viewers == []
    assert registry.page_of("a1") == "q"
    assert registry.stats().pages == 1


def test_a_dropped_connection_stays_present_for_the_grace_period(registry):
    registry.connect("a1", ALICE, T0)
    registry.visit("a1", "p", "editing", T0)

    registry.disconnect("a1", T0 + 1)
    assert viewers(registry, "p")["alice"]["tabs"] == 0
    assert registry.expire(T0 + 5.9) == {}

    registry.connect("a2", ALICE, T0 + 2)
    registry.visit("a2", "p", "viewing", T0 + 2)
    assert viewers(registry, "p")["alice"]["since"] == 1_700_000_000_000
    assert registry.expire(T0 + 10) == {}
    assert "alice" in viewers(registry, "p")


def test_presence_ends_when_the_grace_runs_out(registry):
    registry.connect("a1", ALICE, T0)
    registry.visit("a1", "p", "viewing", T0)
    registry.disconnect("a1", T0)

    changes = registry.expire(T0 + 5)

    assert changes["p"].viewers == []
    assert registry.stats().pages == 0


def test_leaving_ends_presence_at_once(registry):
    registry.connect("a1", ALICE, T0)
    registry.visit("a1", "p", "viewing", T0)

    assert registry.leave("a1", T0)["p"].viewers == []


def test_the_first_claimer_wins_and_later_ones_learn_the_holder(registry):
    registry.connect("a1", ALICE, T0)
    registry.connect("b1", BOB, T0)
    registry.visit("a1", "p", "viewing", T0)
    registry.visit("b1", "p", "viewing", T0)

    claim, changes = registry.claim("a1", "rebook", T0)
    with pytest.raises(Taken) as taken:
        registry.claim("b1", "rebook", T0)

    assert claim["user"] == "alice"
    assert changes["p"].claims == [claim]
    assert taken.value.details["claim"] == claim


def test_claiming_again_as_holder_is_a_quiet_success(registry):
    registry.connect("a1", ALICE, T0)
    registry.connect("a2", ALICE, T0)
    registry.visit("a1", "p", "viewing", T0)
    registry.visit("a2", "p", "viewing", T0)
    first, _ = registry.claim("a1", "rebook", T0)

    again, changes = registry.claim("a2", "rebook", T0 + 1)

    assert again == first
    assert changes == {}


def test_tokens_strictly_increase_even_within_one_microsecond(registry):
    registry.connect("a1", ALICE, T0)
    registry.visit("a1", "p", "viewing", T0)
    tokens = []
    for _ in range(3):
        claim, _ = registry.claim("a1", "rebook", T0)
        tokens.append(claim["token"])
        registry.release("a1", "rebook", T0)

    assert tokens == sorted(set(tokens))
    assert tokens[0] >= int(T0 * 1_000_000)


def test_claims_need_a_page_and_a_holder(registry):
    registry.connect("a1", ALICE, T0)
    registry.connect("b1", BOB, T0)
    with pytest.raises(NotVisiting):
        registry.claim("a1", "rebook", T0)
    registry.visit("a1", "p", "viewing", T0)
    registry.visit("b1", "p", "viewing", T0)
    registry.claim("a1", "rebook", T0)

    with pytest.raises(NotHolder):
        registry.release("b1", "rebook", T0)
    with pytest.raises(NotHolder):
        registry.release("b1", "refund", T0)


def test_a_user_holds_at_most_the_configured_number_of_claims(registry):
    registry.connect("a1", ALICE, T0)
    registry.visit("a1", "p", "viewing", T0)
    registry.claim("a1", "one", T0)
    registry.claim("a1", "two", T0)

    with pytest.raises(TooManyClaims):
        registry.claim("a1", "three", T0)


def test_a_claim_survives_a_reload_within_the_grace(registry):
    registry.connect("a1", ALICE, T0)
    registry.visit("a1", "p", "viewing", T0)
    claim, _ = registry.claim("a1", "rebook", T0)
    registry.disconnect("a1", T0 + 1)
    registry.connect("a2", ALICE, T0 + 2)
    registry.visit("a2", "p", "viewing", T0 + 2)

    registry.expire(T0 + 30)

    assert registry.view("p").claims == [claim]


def test_an_orphaned_claim_is_released_after_the_grace(registry):
    registry.connect("a1", ALICE, T0)
    registry.visit("a1", "p", "viewing", T0)
    registry.claim("a1", "rebook", T0)
    registry.leave("a1", T0 + 1)
    assert registry.view("p").claims != []

    changes = registry.expire(T0 + 6)

    assert changes["p"].claims == []
    assert registry.stats().claims == 0


def test_a_claim_lapses_after_its_lifetime_even_while_held(registry):
    registry.connect("a1", ALICE, T0)
    registry.visit("a1", "p", "viewing", T0)
    registry.claim("a1", "rebook", T0)

    assert registry.expire(T0 + 59) == {}
    assert registry.expire(T0 + 60)["p"].claims == []


def test_force_release_frees_any_claim(registry):
    registry.connect("a1", ALICE, T0)
    registry.visit("a1", "p", "viewing", T0)
    claim, _ = registry.claim("a1", "rebook", T0)

    released, changes = registry.force_release("p", "rebook", T0)

    assert released == claim
    assert changes["p"].claims == []
    with pytest.raises(NotClaimed):
        registry.force_release("p", "rebook", T0)


def test_legacy_hrefs_are_counted_per_page(registry):
    registry.connect("a1", ALICE, T0)
    registry.connect("b1", BOB, T0)
    registry.visit("a1", "p", "viewing", T0, href="https://x/p?utm_source=a")
    registry.visit("b1", "p", "viewing", T0, href="https://x/p")

    assert sorted(registry.view("p").legacy_hrefs) == [
        "https://x/p",
        "https://x/p?utm_source=a",
    ]
    registry.leave("a1", T0)
    assert registry.view("p").legacy_hrefs == ["https://x/p"]


def test_a_legacy_visit_can_rename_the_connection(registry):
    registry.connect("a1", Identity("anonymous-1", "Anonymous"), T0)

    changes = registry.visit("a1", "p", "viewing", T0, href="u", identity=ALICE)

    assert changes["p"].legacy_visitors() == {"Alice": 1_700_000_000_000}
    assert registry.identity_of("a1") == ALICE


def check_invariants(registry, connections):
    on_pages = {sid: registry.page_of(sid) for sid in connections}
    tabs_by_page = {}
    for view in registry.views():
        assert not view.is_empty
        tabs_by_page[view.page] = sum(v["tabs"] for v in view.viewers)
        users = [v["user"] for v in view.viewers]
        assert len(users) == len(set(users))
    for page in set(on_pages.values()) - {None}:
        assert tabs_by_page[page] == sum(1 for p in on_pages.values() if p == page)
    stats = registry.stats()
    assert stats.connections == len(connections)
    assert stats.pages == len(tabs_by_page)


def test_many_greenlets_visiting_and_leaving_keep_the_registry_consistent():
    registry = MemoryRegistry(grace_seconds=0.05, claim_ttl_seconds=60)
    users = [Identity(f"user{n}", f"User {n}") for n in range(20)]
    pages = [f"booking:{n}" for n in range(5)]
    connections = [f"sid{n}" for n in range(200)]
    for n, sid in enumerate(connections):
        registry.connect(sid, users[n % len(users)], T0)
    winners = []

    def agent(sid, seed):
        rng = random.Random(seed)
        for step in range(50):
            now = T0 + step / 100
            move = rng.random()
            if move < 0.5:
                registry.visit(
                    sid,
                    rng.choice(pages),
                    rng.choice(["viewing", "editing", "idle"]),
                    now,
                )
            elif move < 0.7:
                registry.leave(sid, now)
            elif move < 0.9 and registry.page_of(sid):
                try:
                    registry.claim(sid, "rebook", now)
                    winners.append(sid)
                except Taken:
                    pass
            else:
                registry.expire(now)
            gevent.sleep(0)

    greenlets = [gevent.spawn(agent, sid, n) for n, sid in enumerate(connections)]
    gevent.joinall(greenlets, timeout=30, raise_error=True)

    check_invariants(registry, connections)
    for view in registry.views():
        assert len({c["action"] for c in view.claims}) == len(view.claims)
    assert winners


def test_claiming_and_releasing_in_a_loop_does_not_grow_the_registry(registry):
    registry.connect("a1", ALICE, T0)
    registry.visit("a1", "p", "viewing", T0)

    for step in range(10_000):
        registry.claim("a1", "rebook", T0 + step / 1000)
        registry.release("a1", "rebook", T0 + step / 1000)

    assert len(registry._deadlines) < 2 * 1024
    registry.claim("a1", "rebook", T0 + 20)
    assert registry.expire(T0 + 20 + 60)["p"].claims == []
