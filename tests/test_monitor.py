"""The monitoring board's feed: the ``/monitor`` namespace, its key, its
snapshot and its batched ``pages`` deltas, against real servers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import socketio
from support import Agent, DibsProcess, wait_until

API_KEY = "monitor-test-key"
INTERVAL = 0.25


class Monitor:
    """A python-socketio client on ``/monitor`` that records every batch."""

    def __init__(self, url: str, auth: Any = None) -> None:
        self.url = url
        self.auth = auth
        self.batches: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("pages", self._record, namespace="/monitor")

    def _record(self, delta: dict[str, Any]) -> None:
        with self.lock:
            self.batches.append(delta)

    def connect(self) -> Monitor:
        """Connect, or raise ``socketio.exceptions.ConnectionError``."""
        self.sio.connect(
            self.url,
            auth=self.auth,
            namespaces=["/monitor"],
            transports=["websocket"],
            wait_timeout=10,
        )
        return self

    def snapshot(self) -> dict[str, Any]:
        """Ask for every page, as a monitor does when it connects."""
        return self.sio.call("snapshot", {}, namespace="/monitor", timeout=10)

    def latest(self, page: str) -> Any:
        """Return the last news of ``page`` in a batch: its view, ``"gone"``, or
        None when no batch told of it."""
        with self.lock:
            batches = list(self.batches)
        for delta in reversed(batches):
            if page in [entry["page"] for entry in delta["gone"]]:
                return "gone"
            for entry in delta["changed"]:
                if entry["page"] == page:
                    return entry
        return None

    def view(self, page: str) -> dict[str, Any]:
        """Return the last view of ``page`` received, or an empty one."""
        news = self.latest(page)
        return news if isinstance(news, dict) else {"viewers": [], "claims": []}

    def close(self) -> None:
        """Disconnect."""
        if self.sio.connected:
            self.sio.disconnect()


@pytest.fixture
def watch() -> Iterator[Callable[..., Monitor]]:
    """Connect monitors; all are closed after the test."""
    monitors: list[Monitor] = []

    def make(url: str, key: str | None = API_KEY) -> Monitor:
        monitor = Monitor(url, None if key is None else {"monitor": key})
        monitors.append(monitor)
        return monitor.connect()

    yield make
    for monitor in monitors:
        monitor.close()


def users(view: dict[str, Any]) -> list[str]:
    return [viewer["user"] for viewer in view["viewers"]]


# The key is checked at connect, before the registry is ever asked.
@pytest.mark.memory_only
def test_monitor_socket_needs_the_api_key(
    start_server: Callable[..., DibsProcess], watch: Callable[..., Monitor]
) -> None:
    server = start_server({"DIBS_API_KEY": API_KEY})

    for key in (None, "", "wrong", API_KEY + "x"):
        with pytest.raises(socketio.exceptions.ConnectionError):
            watch(server.url, key)

    assert watch(server.url).snapshot()["ok"] is True
    page = requests.get(server.url + "/monitor?key=" + API_KEY, timeout=10)
    assert page.ok and page.headers["Cache-Control"] == "no-store"
    refused = requests.get(server.url + "/monitor?key=wrong", timeout=10)
    assert refused.status_code == 401
    assert refused.headers["Content-Type"].startswith("text/plain")


def test_monitor_gets_a_snapshot_then_batches_of_changed_pages(
    server: DibsProcess, connect: Callable[..., Agent], watch: Callable[..., Monitor]
) -> None:
    alice = connect("alice", "Alice")
    alice.visit("booking:1")
    monitor = watch(server.url)

    snapshot = monitor.snapshot()
    assert [view["page"] for view in snapshot["pages"]] == ["booking:1"]
    assert users(snapshot["pages"][0]) == ["alice"]

    bob = connect("bob", "Bob")
    bob.visit("booking:1")
    assert bob.call("claim", {"action": "rebook"})["ok"]
    wait_until(lambda: monitor.view("booking:1")["claims"], 10)
    seen = monitor.view("booking:1")
    assert users(seen) == ["alice", "bob"]
    assert seen["claims"][0]["user"] == "bob"
    assert seen["version"] > snapshot["pages"][0]["version"]

    alice.call("leave", {})
    assert bob.call("visit", {"page": "booking:2"})["ok"]
    # Bob's claim on booking:1 outlives his leaving by the grace period.
    wait_until(lambda: monitor.latest("booking:1") == "gone", 10)
    assert users(monitor.view("booking:2")) == ["bob"]
    assert requests.get(server.url + "/api/pages", timeout=10).json()["counts"] == {
        "pages": 1,
        "viewers": 1,
        "claims": 0,
        "crowded": 0,
    }


def test_monitor_batches_a_burst_of_changes(
    start_server: Callable[..., DibsProcess], watch: Callable[..., Monitor]
) -> None:
    # A burst well past the per-connection event rate a browser needs.
    server = start_server({"DIBS_RATE_PER_SECOND": "1000", "DIBS_RATE_BURST": "1000"})
    monitor = watch(server.url)
    monitor.snapshot()
    alice = Agent(server.url, {"user": "alice"}).connect()
    alice.visit("booking:1")
    wait_until(lambda: monitor.latest("booking:1"), 10)
    before = len(monitor.batches)

    started = time.monotonic()
    changes = 60
    for number in range(changes):
        alice.send("state", {"state": "editing" if number % 2 == 0 else "viewing"})
    alice.send("state", {"state": "idle"})

    wait_until(lambda: monitor.view("booking:1")["viewers"][0]["state"] == "idle", 10)
    elapsed = time.monotonic() - started
    batches = len(monitor.batches) - before
    # One batch per interval at most, whatever the number of changes.
    assert batches <= elapsed / INTERVAL + 2, (batches, elapsed)
    assert batches < changes
    alice.close()


def test_monitor_is_not_a_viewer_and_unknown_events_are_answered(
    server: DibsProcess, connect: Callable[..., Agent], watch: Callable[..., Monitor]
) -> None:
    monitor = watch(server.url)
    alice = connect("alice")
    alice.visit("booking:1")

    reply = monitor.sio.call("visit", {"page": "booking:1"}, namespace="/monitor")

    assert reply["ok"] is False and reply["error"] == "unknown_event"
    listing = requests.get(server.url + "/api/pages", timeout=10).json()
    assert [users(view) for view in listing["pages"]] == [["alice"]]
    assert users(alice.visit("booking:1")["presence"]) == ["alice"]


def test_monitor_on_one_process_sees_changes_made_on_another(
    on_redis: Callable[[], DibsProcess], watch: Callable[..., Monitor]
) -> None:
    first = on_redis()
    second = on_redis()
    alice = Agent(first.url, {"user": "alice"}).connect()
    bob = Agent(second.url, {"user": "bob"}).connect()
    try:
        alice.visit("booking:1")
        monitor = watch(second.url)
        assert [users(v) for v in monitor.snapshot()["pages"]] == [["alice"]]

        bob.visit("booking:1")
        assert alice.call("claim", {"action": "refund"})["ok"]

        wait_until(lambda: monitor.view("booking:1")["claims"], 10)
        assert users(monitor.view("booking:1")) == ["alice", "bob"]
    finally:
        alice.close()
        bob.close()
