"""The load generator: one process driving a floor of simulated agents.

Run as ``python -m bench.agents CONFIG_JSON`` by :mod:`bench.run`, which may
start several of them, each with its own agents on its own pages so that no
two generators ever touch the same page.  It reports JSON lines on stdout
(``progress``, ``ready``, ``result``) and takes commands on stdin
(``navigate``, ``quit``).

Everything runs in gevent greenlets of this one process: one reader greenlet
per agent, one scheduler sending navigations at a fixed rate.  A navigation
moves one agent to another page; the pages it touches stay *busy* until every
agent on them has received the matching update, so that what each agent must
receive is known exactly and no navigation can be confused with another.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import gc  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import gevent.fileobject  # noqa: E402
import gevent.pool  # noqa: E402

from .wire import PING, PONG, Closed, SocketIO  # noqa: E402

SITE = "https://ops.example.com/booking/"
LEGACY_UPDATE = "PAGEVISITORINFO_UPDATE"
NAVIGATION_TIMEOUT = 15.0


def page_url(page: int) -> str:
    """Return the URL of page number ``page``."""
    return SITE + str(page)


def page_number(url: str) -> int:
    """Return the number of the page at ``url``."""
    return int(url[url.rindex("/") + 1 :])


class Agent:
    """One simulated agent: a user, a page, a connection, what it last saw."""

    __slots__ = ("index", "user", "page", "seen_page", "seen", "connection")

    def __init__(self, index: int, page: int) -> None:
        self.index = index
        self.user = f"a{index}"
        self.page = page
        self.seen_page: int | None = None
        self.seen: frozenset[str] = frozenset()
        self.connection: SocketIO | None = None


class Navigation:
    """One agent moving from ``source`` to ``target``, and who must hear of it."""

    __slots__ = ("mover", "source", "target", "sent", "pending")

    def __init__(self, mover: Agent, source: int, target: int, sent: float) -> None:
        self.mover = mover
        self.source = source
        self.target = target
        self.sent = sent
        self.pending: dict[int, int] = {}


class Floor:
    """The agents of one generator, their pages, and the measurements."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.mode = config["mode"]
        self.scope_all = self.mode == "legacy-all"
        self.random = random.Random(config.get("seed", 7))
        first_page = config["first_page"]
        per_page = config["per_page"]
        self.agents = [
            Agent(config["first_agent"] + i, first_page + i // per_page)
            for i in range(config["agents"])
        ]
        self.page_numbers = list(range(first_page, first_page + config["pages"]))
        self.pages: dict[int, set[int]] = {page: set() for page in self.page_numbers}
        for position, agent in enumerate(self.agents):
            self.pages[agent.page].add(position)
        self.position = {agent.index: i for i, agent in enumerate(self.agents)}
        self.busy: dict[int, Navigation] = {}
        self.in_flight: dict[int, Navigation] = {}
        self.map_cache: dict[str, dict[str, Any]] = {}
        self.reset_counts()
        self.connected = 0
        self.connect_errors = 0
        self.disconnects = 0
        self.errors = 0
        self.quitting = False

    def reset_counts(self) -> None:
        """Start counting deliveries afresh (at the start of navigation)."""
        self.navigating = False
        self.navigations = 0
        self.skipped = 0
        self.expected = 0
        self.delivered = 0
        self.lost = 0
        self.payload_bytes = 0
        self.latencies: list[float] = []
        self.arrivals: list[float] = []

    # Connecting.

    def join(self, agent: Agent) -> None:
        """Connect ``agent``, start its reader, and visit its first page."""
        config = self.config
        legacy = self.mode != "modern"
        auth = None if legacy else {"user": agent.user, "name": agent.user}
        for attempt in range(5):
            try:
                agent.connection = SocketIO(
                    config["host"],
                    config["port"],
                    "dibs" if legacy else "socket.io",
                    auth,
                )
                break
            except (Closed, OSError):
                gevent.sleep(0.2 * (attempt + 1))
        else:
            self.connect_errors += 1
            return

        self.connected += 1
        gevent.spawn(self.read, agent)
        self.send_visit(agent, agent.page)

    def send_visit(self, agent: Agent, page: int) -> None:
        """Tell the server ``agent`` is now on ``page``, as its protocol says."""
        if self.mode == "modern":
            agent.connection.emit("visit", {"page": page_url(page)}, ack=1)
        else:
            stamp = int(time.time() * 1000)
            agent.connection.emit("PAGE_VISIT", page_url(page), agent.user, stamp)

    # Reading what the server sends.

    def read(self, agent: Agent) -> None:
        """Read ``agent``'s messages until its connection ends."""
        connection = agent.connection
        try:
            while True:
                message = connection.receive()
                if message == PING:
                    connection.send(PONG)
                elif message.startswith("42"):
                    self.on_event(agent, message, time.perf_counter())
                elif message.startswith("43"):
                    self.on_ack(agent, message)
        except (Closed, OSError):
            if not self.quitting:
                self.disconnects += 1

    def on_ack(self, agent: Agent, message: str) -> None:
        reply = json.loads(message[message.index("[") :])[0]
        if not reply.get("ok"):
            self.errors += 1
            return
        presence = reply.get("presence")
        if presence is not None:
            self.saw(agent, page_number(presence["page"]), _users(presence))

    def on_event(self, agent: Agent, message: str, now: float) -> None:
        if self.scope_all:
            self.on_map(agent, message, now)
            return

        name, data = json.loads(message[2:])[:2]
        if name == "presence":
            page, users = page_number(data["page"]), _users(data)
        elif name == LEGACY_UPDATE:
            url, visitors = next(iter(data.items()))
            page, users = page_number(url), frozenset(visitors)
        else:
            self.errors += name == "error"
            return

        self.saw(agent, page, users)
        navigation = self.busy.get(page)
        if navigation is not None and self.navigating:
            self.match(navigation, agent, page, users, now, len(message))

    def on_map(self, agent: Agent, message: str, now: float) -> None:
        everything = self.map_cache.get(message)
        if everything is None:
            if len(self.map_cache) > 64:
                self.map_cache.clear()
            name, everything = json.loads(message[2:])[:2]
            self.map_cache[message] = everything
        self.saw(agent, agent.page, frozenset(everything.get(page_url(agent.page), ())))
        if not self.navigating:
            return

        for navigation in list(self.in_flight.values()):
            if agent.index not in navigation.pending:
                continue
            user = navigation.mover.user
            arrived = user in everything.get(page_url(navigation.target), ())
            gone = user not in everything.get(page_url(navigation.source), ())
            if arrived and gone:
                self.record(navigation, agent, now, len(message))

    def saw(self, agent: Agent, page: int, users: frozenset[str]) -> None:
        if page == agent.page:
            agent.seen_page, agent.seen = page, users

    def match(
        self,
        navigation: Navigation,
        agent: Agent,
        page: int,
        users: frozenset[str],
        now: float,
        size: int,
    ) -> None:
        if navigation.pending.get(agent.index) != page:
            return
        if (page == navigation.target) == (navigation.mover.user in users):
            self.record(navigation, agent, now, size)

    def record(
        self, navigation: Navigation, agent: Agent, now: float, size: int
    ) -> None:
        del navigation.pending[agent.index]
        self.latencies.append(now - navigation.sent)
        self.arrivals.append(now)
        self.delivered += 1
        self.payload_bytes += size
        if not navigation.pending:
            self.finish(navigation)

    def finish(self, navigation: Navigation) -> None:
        self.lost += len(navigation.pending)
        navigation.pending.clear()
        self.in_flight.pop(id(navigation), None)
        for page in (navigation.source, navigation.target):
            if self.busy.get(page) is navigation:
                del self.busy[page]

    # Checking presence.

    def correct(self) -> int:
        """Count the agents whose latest view of their page is the truth."""
        truth = {
            page: frozenset(self.agents[i].user for i in members)
            for page, members in self.pages.items()
        }
        return sum(
            agent.seen_page == agent.page and agent.seen == truth[agent.page]
            for agent in self.agents
            if agent.connection is not None
        )

    # Navigating.

    def navigate(self) -> None:
        """Move one idle agent to another idle page."""
        mover = self.pick_mover()
        target = self.pick_target(mover)
        if mover is None or target is None:
            self.skipped += 1
            return

        source = mover.page
        navigation = Navigation(mover, source, target, time.perf_counter())
        mover_position = self.position[mover.index]
        self.pages[source].discard(mover_position)
        self.pages[target].add(mover_position)
        mover.page = target
        if self.scope_all:
            navigation.pending = {agent.index: target for agent in self.agents}
        else:
            for position in self.pages[source]:
                navigation.pending[self.agents[position].index] = source
            for position in self.pages[target]:
                navigation.pending[self.agents[position].index] = target
        self.busy[source] = self.busy[target] = navigation
        self.in_flight[id(navigation)] = navigation
        self.navigations += 1
        self.expected += len(navigation.pending)

        navigation.sent = time.perf_counter()
        self.send_visit(mover, target)

    def pick_mover(self) -> Agent | None:
        for _ in range(50):
            agent = self.random.choice(self.agents)
            if agent.connection is not None and agent.page not in self.busy:
                return agent
        return None

    def pick_target(self, mover: Agent | None) -> int | None:
        if mover is None:
            return None
        for _ in range(50):
            page = self.random.choice(self.page_numbers)
            if page != mover.page and page not in self.busy:
                return page
        return None

    def expire(self, now: float) -> None:
        """Give up on navigations older than the timeout: their rest is lost."""
        for navigation in list(self.in_flight.values()):
            if now - navigation.sent < NAVIGATION_TIMEOUT:
                break
            self.finish(navigation)


def _users(presence: dict[str, Any]) -> frozenset[str]:
    return frozenset(viewer["user"] for viewer in presence["viewers"])


class Generator:
    """Run a floor through its phases, reporting as it goes."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.floor = Floor(config)
        self.phase = "connect"
        self.commands = gevent.fileobject.FileObject(sys.stdin.fileno(), "r")

    def say(self, event: str, **fields: Any) -> None:
        sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
        sys.stdout.flush()

    def report_progress(self) -> None:
        floor = self.floor
        while True:
            done = floor.navigations
            if self.phase in ("connect", "presence"):
                done = floor.connected
            self.say("progress", phase=self.phase, done=done, delivered=floor.delivered)
            gevent.sleep(0.25)

    def run(self) -> None:
        gevent.spawn(self.report_progress)
        ready = self.connect()
        # The floor is built: freeze it, so that this process's own garbage
        # collections stay short and add no pauses to the latencies it measures.
        gc.collect()
        gc.freeze()
        self.say("ready", **ready)

        while True:
            command = self.commands.readline().strip()
            if command == "navigate":
                self.say("result", **self.navigate())
            elif command in ("quit", ""):
                self.floor.quitting = True
                return

    def connect(self) -> dict[str, Any]:
        floor = self.floor
        pool = gevent.pool.Pool(self.config.get("connect_concurrency", 100))
        started = time.perf_counter()
        cpu_started = time.process_time()
        for agent in floor.agents:
            pool.spawn(floor.join, agent)
        pool.join()
        connected = time.perf_counter() - started

        self.phase = "presence"
        deadline = started + self.config.get("correct_timeout", 120)
        correct = floor.correct()
        while correct < floor.connected and time.perf_counter() < deadline:
            gevent.sleep(0.05)
            correct = floor.correct()
        return {
            "connect_seconds": connected,
            "correct_seconds": time.perf_counter() - started,
            "connected": floor.connected,
            "connect_errors": floor.connect_errors,
            "correct": correct,
            "cpu_seconds": time.process_time() - cpu_started,
        }

    def navigate(self) -> dict[str, Any]:
        floor = self.floor
        config = self.config
        floor.reset_counts()
        self.phase = "navigate"
        rate = config["rate"]
        total = max(1, round(rate * config["duration"]))
        bytes_before = self.bytes_on_wire()
        cpu_started = time.process_time()
        started = time.perf_counter()
        floor.navigating = True

        for n in range(total):
            delay = started + n / rate - time.perf_counter()
            if delay > 0:
                gevent.sleep(delay)
            floor.navigate()
            if n % 64 == 0:
                floor.expire(time.perf_counter())
        sent = time.perf_counter() - started

        self.phase = "drain"
        deadline = time.perf_counter() + config.get("drain_seconds", 10)
        while floor.in_flight and time.perf_counter() < deadline:
            gevent.sleep(0.02)
        for navigation in list(floor.in_flight.values()):
            floor.finish(navigation)
        floor.navigating = False
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        bytes_in, bytes_out = self.bytes_on_wire()

        gevent.sleep(0.2)
        return {
            "navigations": floor.navigations,
            "skipped": floor.skipped,
            "expected": floor.expected,
            "delivered": floor.delivered,
            "lost": floor.lost,
            "latencies_ms": [round(x * 1000, 3) for x in floor.latencies],
            "slowest": slowest(floor, started),
            "payload_bytes": floor.payload_bytes,
            "bytes_in": bytes_in - bytes_before[0],
            "bytes_out": bytes_out - bytes_before[1],
            "send_seconds": sent,
            "wall_seconds": wall,
            "cpu_seconds": cpu,
            "disconnects": floor.disconnects,
            "errors": floor.errors,
            "correct_after": floor.correct(),
            "connected": floor.connected,
        }

    def bytes_on_wire(self) -> tuple[int, int]:
        connections = [a.connection for a in self.floor.agents if a.connection]
        return (
            sum(c.bytes_in for c in connections),
            sum(c.bytes_out for c in connections),
        )


def slowest(floor: Floor, started: float, count: int = 200) -> list[list[float]]:
    """Return ``[seconds into the run, latency ms]`` of the slowest deliveries."""
    pairs = zip(floor.latencies, floor.arrivals, strict=True)
    pairs = sorted(pairs, reverse=True)[:count]
    return [[round(at - started, 3), round(latency * 1000, 2)] for latency, at in pairs]


def main() -> None:
    """Run one generator with the JSON configuration given as argument."""
    Generator(json.loads(sys.argv[1])).run()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
