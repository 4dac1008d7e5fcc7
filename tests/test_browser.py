"""The test page, the monitor and dibs.js, driven in a real Chromium.

Playwright drives the system's Chromium (Debian's ``chromium`` package); its
own browser download is never used.  Without Chromium or Playwright these
tests skip, except under ``CI=true``, where they fail.  Screenshots go to
``artifacts/``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from support import IN_CI, ROOT, DibsProcess, need_tool

from dibs.tokens import mint

API_KEY = "monitor-test-key"
SECRET = "a-test-secret-that-is-long-enough-for-hs256"
BOOKING = "booking:309208537"
MARKUP = "<img src=x onerror=alert(1)>"
ARTIFACTS = ROOT / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
# A reload must come back within the grace period even on a loaded machine.
SETTINGS = {"DIBS_GRACE_SECONDS": "5", "DIBS_API_KEY": API_KEY}
WAIT_MS = 15_000


def need_playwright() -> Any:
    """Return Playwright's sync API; skip without it, but fail in CI."""
    try:
        from playwright import sync_api
    except ImportError:
        if IN_CI:
            pytest.fail("playwright is required under CI=true: pip install it")
        pytest.skip("playwright is not installed")
    return sync_api


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole module."""
    chromium = need_tool("chromium")
    sync_api = need_playwright()
    sync_api.expect.set_options(timeout=WAIT_MS)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def dibs(start_server: Callable[..., DibsProcess]) -> DibsProcess:
    """A Dibs server with an API key and a grace period long enough for reloads."""
    return start_server(SETTINGS)


@pytest.fixture
def tabs(browser: Any, request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """Open tabs, each in its own browser context (its own session storage),
    on ``server`` or else on the ``dibs`` fixture's server."""
    contexts: list[Any] = []

    def open_tab(path: str, server: DibsProcess | None = None) -> Any:
        server = server or request.getfixturevalue("dibs")
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        contexts.append(context)
        tab = context.new_page()
        tab.dialogs = []
        tab.on(
            "dialog",
            lambda dialog: (tab.dialogs.append(dialog.message), dialog.dismiss()),
        )
        tab.goto(server.url + path)
        return tab

    yield open_tab
    for context in contexts:
        context.close()


@pytest.fixture
def shot(backend: str) -> Callable[[Any, str], None]:
    """Save a full-page screenshot of a tab in ``artifacts/``, named per backend."""

    def take(tab: Any, name: str) -> None:
        tab.screenshot(path=ARTIFACTS / f"{name}-{backend}.png", full_page=True)

    return take


def agent_path(user: str, name: str, page: str = BOOKING) -> str:
    """Return the test page's address that connects as ``user`` on ``page``."""
    query = {
        "user": user,
        "name": name,
        "page": page,
        "topics": "bookings",
        "connect": "1",
    }
    return "/?" + urlencode(query)


def publish(server: DibsProcess, topic: str, event: str, data: Any) -> dict[str, Any]:
    """Publish a notification over HTTP the way a backend does."""
    response = requests.post(
        server.url + "/api/publish",
        json={"topic": topic, "event": event, "data": data},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    return response.json()


def count_enablings(tab: Any, selector: str) -> None:
    """Start counting, in ``tab``, every time the button ``selector`` is enabled."""
    tab.evaluate(
        """(selector) => {
            window.enablings = 0;
            const button = document.querySelector(selector);
            new MutationObserver(() => { if (!button.disabled) window.enablings += 1; })
                .observe(button, { attributes: true, attributeFilter: ["disabled"] });
        }""",
        selector,
    )


def test_claim_story_two_tabs_reload_release_and_monitor(tabs: Any, shot: Any) -> None:
    from playwright.sync_api import expect

    alice = tabs(agent_path("alice", "Alice"))
    bob = tabs(agent_path("bob", "Bob"))
    for tab in (alice, bob):
        expect(tab.locator("#status")).to_have_text("connected")
        expect(tab.locator("#viewers tr")).to_have_count(2)
        expect(tab.locator("#viewers")).to_contain_text("Alice")
        expect(tab.locator("#viewers")).to_contain_text("Bob")

    alice.click("#action-rebook")
    expect(alice.locator("#action-rebook")).to_have_text("Release rebook (yours)")
    shot(alice, "test-page-alice-holds-rebook")
    expect(bob.locator("#action-rebook")).to_be_disabled()
    expect(bob.locator("#action-rebook")).to_contain_text("Alice")
    expect(bob.locator("#action-refund")).to_be_enabled()

    count_enablings(bob, "#action-rebook")
    alice.reload()
    expect(alice.locator("#status")).to_have_text("connected")
    expect(alice.locator("#action-rebook")).to_have_text("Release rebook (yours)")
    expect(bob.locator("#action-rebook")).to_be_disabled()
    expect(bob.locator("#action-rebook")).to_contain_text("Alice")
    assert bob.evaluate("window.enablings") == 0

    monitor = tabs(f"/monitor?key={API_KEY}")
    row = monitor.locator(f'tr[data-page="{BOOKING}"]')
    expect(row).to_have_class(re.compile(r"\bcrowded\b"))
    expect(row.locator("td.who")).to_contain_text("Alice")
    expect(row.locator("td.who")).to_contain_text("Bob")
    expect(row.locator("td.claims")).to_have_text("rebook: Alice")
    expect(monitor.locator("#count-viewers")).to_have_text("2")
    expect(monitor.locator("#count-claims")).to_have_text("1")
    expect(monitor.locator("#count-crowded")).to_have_text("1")
    assert "key=" not in monitor.url
    shot(bob, "test-page-bob-sees-alice-dibs")
    shot(monitor, "monitor-two-agents-one-claim")

    alice.click("#action-rebook")
    expect(bob.locator("#action-rebook")).to_be_enabled()
    expect(bob.locator("#action-rebook")).to_have_text("Call dibs: rebook")
    expect(row.locator("td.claims")).to_have_text("")
    expect(monitor.locator("#count-claims")).to_have_text("0")


def test_published_notification_appears_on_both_tabs(
    tabs: Any, dibs: DibsProcess, shot: Any
) -> None:
    from playwright.sync_api import expect

    alice = tabs(agent_path("alice", "Alice"))
    bob = tabs(agent_path("bob", "Bob"))
    for tab in (alice, bob):
        expect(tab.locator('#topics [data-topic="bookings"]')).to_be_visible()
        expect(tab.locator("#viewers tr")).to_have_count(2)

    publish(dibs, "bookings", "urgent", {"booking": 309208537, "note": "<b>now</b>"})
    for tab in (alice, bob):
        item = tab.locator("#notifications li")
        expect(item).to_have_count(1)
        expect(item).to_contain_text("urgent")
        expect(item).to_contain_text('"note":"<b>now</b>"')
    shot(alice, "test-page-notification")

    publish(dibs, "refunds", "ignored", None)
    publish(dibs, "bookings", "second", [1, 2])
    expect(bob.locator("#notifications li")).to_have_count(2)
    expect(bob.locator("#notifications li").first).to_contain_text("second")
    expect(bob.locator("#notifications")).not_to_contain_text("ignored")


def test_client_reconnects_revisits_and_resubscribes(
    tabs: Any, dibs: DibsProcess
) -> None:
    from playwright.sync_api import expect

    alice = tabs(agent_path("alice", "Alice"))
    bob = tabs(agent_path("bob", "Bob"))
    expect(alice.locator("#viewers tr")).to_have_count(2)
    alice.click("#action-cancel")
    expect(bob.locator("#action-cancel")).to_be_disabled()

    first_sid = alice.evaluate("dibs.socket.id")
    # Dropping the transport, as a network blip does, makes the Socket.IO
    # client reconnect on a new connection by itself.
    alice.evaluate("dibs.socket.io.engine.close()")
    alice.wait_for_function(
        "(sid) => dibs.status === 'connected' && dibs.socket.id !== sid", arg=first_sid
    )

    expect(alice.locator("#action-cancel")).to_have_text("Release cancel (yours)")
    expect(bob.locator("#action-cancel")).to_contain_text("Alice")
    publish(dibs, "bookings", "after-reconnect", {"ok": True})
    expect(alice.locator("#notifications li")).to_contain_text("after-reconnect")
    alice.click("#action-cancel")
    expect(bob.locator("#action-cancel")).to_be_enabled()


# Escaping happens in the browser; the registry behind plays no part.
@pytest.mark.memory_only
def test_markup_in_a_name_appears_as_text(tabs: Any, shot: Any) -> None:
    from playwright.sync_api import expect

    mallory = tabs(agent_path("mallory", MARKUP))
    bob = tabs(agent_path("bob", "Bob"))
    expect(bob.locator("#viewers tr")).to_have_count(2)
    mallory.click("#action-refund")

    expect(bob.locator('#viewers tr[data-user="mallory"] td').first).to_have_text(
        MARKUP
    )
    expect(bob.locator("#action-refund")).to_have_text(f"refund: {MARKUP} has dibs")
    monitor = tabs(f"/monitor?key={API_KEY}")
    row = monitor.locator(f'tr[data-page="{BOOKING}"]')
    expect(row.locator("td.who")).to_contain_text(MARKUP)
    expect(row.locator("td.claims")).to_have_text(f"refund: {MARKUP}")
    shot(bob, "test-page-markup-name")

    for tab in (mallory, bob, monitor):
        assert tab.locator("img").count() == 0
        assert tab.dialogs == []


# The key is checked before the registry is ever asked.
@pytest.mark.memory_only
def test_monitor_needs_the_api_key(tabs: Any, dibs: DibsProcess) -> None:
    from playwright.sync_api import expect

    assert requests.get(dibs.url + "/monitor", timeout=10).status_code == 401
    assert requests.get(dibs.url + "/monitor?key=wrong", timeout=10).status_code == 401
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    assert requests.get(dibs.url + "/monitor", headers=bearer, timeout=10).ok

    monitor = tabs(f"/monitor?key={API_KEY}")
    expect(monitor.locator("#status")).to_have_text("connected")
    refused = monitor.evaluate(
        """() => new Promise((resolve) => {
            const spy = Dibs.watch("", "wrong");
            spy.onStatus(({ status, detail }) => {
                if (status !== "connecting") resolve([status, detail]);
            });
        })"""
    )
    assert refused == ["refused", "unauthorized"]


# Tokens are checked at connect, before the registry is ever asked.
@pytest.mark.memory_only
def test_test_page_speaks_for_its_token_and_shows_a_bad_one_refused(
    tabs: Any, start_server: Callable[..., DibsProcess]
) -> None:
    from playwright.sync_api import expect

    server = start_server({**SETTINGS, "DIBS_SECRET": SECRET})
    token = mint(SECRET, "alice", "Alice")
    # The user and name typed in the page cannot override the token's.
    query = {"user": "mallory", "name": "Mallory", "token": token, "connect": "1"}
    alice = tabs("/?" + urlencode({**query, "page": BOOKING}), server)
    forged = tabs("/?" + urlencode({"token": "not-a-token", "connect": "1"}), server)

    expect(alice.locator("#status")).to_have_text("connected")
    expect(alice.locator("#viewers")).to_have_text(re.compile(r"Alice\s*alice"))
    expect(alice.locator("#viewers")).not_to_contain_text("Mallory")
    alice.click("#action-rebook")
    expect(alice.locator("#action-rebook")).to_have_text("Release rebook (yours)")
    expect(forged.locator("#status")).to_have_text("refused (unauthorized)")


def test_a_token_function_is_asked_again_at_every_reconnection(
    tabs: Any, start_server: Callable[..., DibsProcess]
) -> None:
    server = start_server({**SETTINGS, "DIBS_SECRET": SECRET})
    tokens = [mint(SECRET, "alice", "Alice"), mint(SECRET, "alice", "Alice Again")]
    tab = tabs("/", server)

    tab.evaluate(
        """(tokens) => {
            window.asked = 0;
            window.client = Dibs.connect("", {
                token: () => Promise.resolve(tokens[Math.min(window.asked++, 1)]),
            });
        }""",
        tokens,
    )
    tab.wait_for_function("client.status === 'connected' && client.user === 'alice'")
    first = tab.evaluate("client.visit('booking:1').then((p) => p.viewers[0].name)")
    tab.evaluate("client.socket.io.engine.close()")
    tab.wait_for_function("asked === 2 && client.status === 'connected'")
    second = tab.evaluate("client.visit('booking:1').then((p) => p.viewers[0].name)")

    assert (first, second) == ("Alice", "Alice Again")


# The board's rendering is under test here, fed in the page itself.
@pytest.mark.memory_only
def test_monitor_keeps_hundreds_of_rows_and_updates_them_in_place(
    tabs: Any, dibs: DibsProcess
) -> None:
    from playwright.sync_api import expect

    monitor = tabs(f"/monitor?key={API_KEY}")
    expect(monitor.locator("#status")).to_have_text("connected")
    monitor.evaluate(
        """() => {
            window.fake = (i, viewers, version) => ({
                page: "booking:" + (1000 + i), version,
                viewers: Array.from({ length: viewers }, (_, k) => ({
                    user: "agent-" + i + "-" + k, name: "Agent " + k,
                    state: "viewing", since: 0, tabs: 1 })),
                claims: [],
            });
            const pages = Array.from({ length: 400 }, (_, i) => fake(i, 1 + i % 2, 10));
            monitor.applyDelta({ at: 10, changed: pages, gone: [] });
        }"""
    )
    expect(monitor.locator("#pages tr")).to_have_count(400)
    expect(monitor.locator("#count-crowded")).to_have_text("200")
    untouched = monitor.locator('tr[data-page="booking:1002"]')
    untouched.evaluate("(row) => { row.marked = true; }")

    monitor.evaluate(
        """() => monitor.applyDelta({ at: 20,
            changed: [fake(3, 2, 20), fake(400, 1, 20)],
            gone: [{ page: "booking:1004", version: 20 }] })"""
    )
    expect(monitor.locator("#pages tr")).to_have_count(400)
    expect(monitor.locator('tr[data-page="booking:1003"]')).to_have_class("crowded")
    expect(monitor.locator('tr[data-page="booking:1004"]')).to_have_count(0)
    assert untouched.evaluate("(row) => row.marked === true")
    keys = monitor.locator("#pages tr").evaluate_all(
        "(rows) => rows.map((r) => r.dataset.page)"
    )
    assert keys == sorted(keys) and "booking:1400" in keys

    # A view older than the one shown (another process's late batch) is dropped.
    monitor.evaluate(
        "() => monitor.applyDelta({ at: 30, changed: [fake(3, 1, 15)], gone: [] })"
    )
    monitor.evaluate("() => new Promise((done) => requestAnimationFrame(() => done()))")
    expect(monitor.locator('tr[data-page="booking:1003"] td.number')).to_have_text("2")
