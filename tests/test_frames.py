"""Malformed Engine.IO and Socket.IO input, raw, over WebSocket and long-polling.

Each serving command is attacked in turn with garbage, invalid JSON, a wrong
namespace, absurd binary attachment counts, oversized frames, a frame header
declaring 2^63 bytes sent slowly, many small fragments, floods of pongs, a
session that never connects and clients that go silent.  After every attack
the server answers, two bystanders (one on WebSocket, one on long-polling)
still see each other and the claim one of them holds, and at the end the
server's memory and greenlets are where they started.
"""

from __future__ import annotations

import re
import socket
import struct
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import requests
from rawclient import (
    BINARY,
    CONTINUATION,
    TEXT,
    Closed,
    Polling,
    RawSocketIO,
    RawWebSocket,
    frame,
    frame_header,
)
from support import Agent, DibsProcess, free_port, wait_until

pytestmark = pytest.mark.memory_only  # transport limits: the registry plays no part

GUNICORN = str(Path(sys.executable).parent / "gunicorn")
SERVERS = {
    "wsgi": None,
    "gunicorn-gevent": "gevent",
    "gunicorn-websocket": "dibs.workers.WebSocketWorker",
}
SETTINGS = {
    "DIBS_PING_INTERVAL": "1",
    "DIBS_PING_TIMEOUT": "2",
    "DIBS_CONNECT_TIMEOUT": "2",
    "DIBS_GRACE_SECONDS": "0.3",
}
LIMIT = 64 * 1024
PAGE = "booking:309208537"
ACTION = "rebook"
# ping interval + ping timeout + grace + the session watch's second
GONE_WITHIN = 1 + 2 + 0.3 + 1
MAX_RSS_GROWTH = 16 * 1024 * 1024


@pytest.fixture(params=list(SERVERS))
def served(
    request, start_server: Callable[..., DibsProcess]
) -> tuple[str, DibsProcess]:
    """Dibs under one serving command, with short ping and connect timeouts."""
    worker = SERVERS[request.param]
    if worker is None:
        return request.param, start_server(SETTINGS)

    port = free_port()
    command = [GUNICORN, "-k", worker, "-w", "1", "-b", f"127.0.0.1:{port}"]
    command += ["--no-control-socket", "--graceful-timeout", "3", "wsgi:app"]
    return request.param, start_server(SETTINGS, command=command, port=port)


class Bystanders:
    """Alice on WebSocket holding a claim, Bob on long-polling, both on one page."""

    def __init__(self, server: DibsProcess) -> None:
        self.server = server
        self.alice = Agent(server.url, auth={"user": "alice", "name": "Alice"})
        self.bob = Agent(
            server.url, auth={"user": "bob", "name": "Bob"}, transports=["polling"]
        )
        self.alice.connect(timeout=10).visit(PAGE)
        self.bob.connect(timeout=10).visit(PAGE)
        self.claim = self.alice.call("claim", {"action": ACTION})["claim"]
        self.state = "viewing"

    def check(self, after: str) -> None:
        """Assert both still see each other and the claim, and hear a change."""
        presence = requests.get(
            self.server.url + "/api/presence", params={"page": PAGE}, timeout=10
        ).json()
        assert [v["user"] for v in presence["viewers"]] == ["alice", "bob"], after
        assert presence["claims"] == [self.claim], after

        self.state = "editing" if self.state == "viewing" else "viewing"
        assert self.alice.call("state", {"state": self.state})["ok"], after
        self.bob.wait_for(lambda bob: self.state_of(bob, "alice") == self.state, 10)

    @staticmethod
    def state_of(agent: Agent, user: str) -> str | None:
        for viewer in (agent.presence or {}).get("viewers", []):
            if viewer["user"] == user:
                return viewer["state"]
        return None

    def close(self) -> None:
        self.alice.close()
        self.bob.close()


@pytest.fixture
def bystanders(served: tuple[str, DibsProcess]) -> Iterator[Bystanders]:
    crowd = Bystanders(served[1])
    yield crowd
    crowd.close()


def serving_process(server: DibsProcess) -> psutil.Process:
    """Return the process that serves: gunicorn's worker, or the server itself."""
    process = psutil.Process(server.process.pid)
    workers = process.children()
    return workers[0] if workers else process


def gauge(server: DibsProcess, name: str) -> float:
    """Return the value of gauge ``name`` on the server's /metrics."""
    text = requests.get(server.url + "/metrics", timeout=10).text
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    assert found, f"{name} missing from /metrics"
    return float(found.group(1))


# Attacks over WebSocket.  Each takes the serving command's name and the server.


def garbage(kind: str, server: DibsProcess) -> None:
    ws = RawWebSocket(server.port)
    assert ws.receive_text().startswith("0{")
    ws.send_text("not an engine.io packet")
    assert ws.close_code() == 1002


def invalid_json(kind: str, server: DibsProcess) -> None:
    mallory = RawSocketIO(server.port, {"user": "mallory"})
    reply, _ = mallory.call_raw('["visit",{"page":')
    assert reply["error"] == "invalid" and "malformed" in reply["message"]
    reply, _ = mallory.call("visit", {"page": "booking:mallory"})
    assert reply["ok"], "the connection stays up"
    mallory.close()


def wrong_namespace(kind: str, server: DibsProcess) -> None:
    mallory = RawSocketIO(server.port, {"user": "mallory"})
    mallory.ws.send_text("40/nowhere,")
    assert mallory.ws.receive_text().startswith("44/nowhere,")
    mallory.ws.send_text('42/nowhere,900["visit",{"page":"booking:x"}]')
    reply, _ = mallory.call("leave", {})
    assert reply == {"ok": True}, "no ack came for the other namespace first"
    mallory.close()


def absurd_attachments(kind: str, server: DibsProcess) -> None:
    mallory = RawSocketIO(server.port, {"user": "mallory"})
    mallory.ws.send_text('451000000000-900["visit",{"_placeholder":true,"num":0}]')
    reply, _ = mallory.ack(900)
    assert reply["error"] == "invalid" and "binary" in reply["message"]
    mallory.ws.send_text('4599999999999-["visit",{"page":"booking:x"}]')
    mallory.ws.send_text("451-")
    # Nothing is waited for: the next event is answered at once.
    reply, events = mallory.call("visit", {"page": "booking:mallory"})
    assert reply["ok"]
    errors = [data for name, data in events if name == "error"]
    assert [error["error"] for error in errors] == ["invalid", "invalid"]
    mallory.close()


def binary_frame(kind: str, server: DibsProcess) -> None:
    mallory = RawSocketIO(server.port, {"user": "mallory"})
    mallory.ws.send(frame(BINARY, b"\x00\x01binary junk"))
    reply, events = mallory.call("leave", {})
    assert reply == {"ok": True}
    assert events and events[0][1]["error"] == "invalid"
    mallory.close()


def oversized_frame(kind: str, server: DibsProcess) -> None:
    ws = RawWebSocket(server.port)
    ws.receive_text()
    payload = b"4" + b"x" * LIMIT
    try:
        ws.send(frame(TEXT, payload))
    except OSError:
        pass  # the server may close before all of it is sent
    assert ws.close_code() == 1009


def declared_2_63_slowly(kind: str, server: DibsProcess) -> None:
    ws = RawWebSocket(server.port)
    ws.receive_text()
    header = struct.pack("!BBQ", 0x81, 0xFF, 1 << 63) + b"\x00\x00\x00\x00"
    try:
        for byte in header:
            ws.send(bytes([byte]))
            time.sleep(0.02)
    except OSError:
        pass  # refused before the mask: simple-websocket stops at the length
    # Refused from the header alone, before a byte of payload: gevent-websocket
    # through Dibs's handler says too big; wsproto (simple-websocket) refuses
    # a length with its top bit set as a protocol error.
    expected = 1002 if kind == "gunicorn-gevent" else 1009
    assert ws.close_code(timeout=5) == expected


def declared_2_62(kind: str, server: DibsProcess) -> None:
    ws = RawWebSocket(server.port)
    ws.receive_text()
    ws.send(frame_header(TEXT, 1 << 62))
    sent, code = 0, None
    while code is None and sent <= 2 * LIMIT:
        try:
            ws.send(b"4" * 4096)
            sent += 4096
            ws.receive(timeout=0.05)
        except Closed as closed:
            code = closed.code
        except OSError:
            pass  # nothing yet, or the server stopped reading: look again
    assert code == 1009
    # gevent-websocket through Dibs's handler refuses from the header;
    # simple-websocket once the payload passes the limit.
    most = LIMIT + 3 * 4096 if kind == "gunicorn-gevent" else 4096
    assert sent <= most, f"refused once the limit was known ({sent} bytes sent)"


def compressed_frame(kind: str, server: DibsProcess) -> None:
    offer = "Sec-WebSocket-Extensions: permessage-deflate\r\n"
    ws = RawWebSocket(server.port, headers=offer)
    assert "extensions" not in ws.response_head.lower(), "compression declined"
    ws.receive_text()
    inflating = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = inflating.compress(b"4" + b"a" * (64 * LIMIT)) + inflating.flush()
    compressed = bytearray(frame(TEXT, bomb))
    compressed[0] |= 0x40  # RSV1: "this frame is compressed"
    try:
        ws.send(bytes(compressed))
    except OSError:
        pass
    assert ws.close_code() == 1002


def fragments(kind: str, server: DibsProcess) -> None:
    ws = RawWebSocket(server.port)
    ws.receive_text()
    pieces = [frame(TEXT, b"4" * 100, fin=False)]
    pieces += [frame(CONTINUATION, b"y" * 100, fin=False)] * (LIMIT // 100 + 50)
    try:
        for piece in pieces:
            ws.send(piece)
    except OSError:
        pass
    assert ws.close_code() == 1009


def pong_flood(kind: str, server: DibsProcess) -> None:
    mallory = RawSocketIO(server.port, {"user": "mallory"})
    mallory.ws.send(frame(TEXT, b"3") * 5000)
    reply, _ = mallory.call("leave", {})
    assert reply == {"ok": True}
    mallory.close()


def flood_without_reading(kind: str, server: DibsProcess) -> None:
    mallory = RawSocketIO(server.port, {"user": "mallory"})
    pongs, events = frame(TEXT, b"3") * 2000, frame(TEXT, b'42["nope"]') * 2000
    flooding = threading.Thread(target=flood, args=(mallory, [pongs, events]))
    flooding.start()

    worst = 0.0
    while flooding.is_alive():
        started = time.monotonic()
        assert requests.get(server.url + "/healthz", timeout=10).ok
        worst = max(worst, time.monotonic() - started)
        time.sleep(0.1)
    assert worst < 2, f"the server stayed responsive (worst {worst:.2f} s)"
    # Its replies piled up unread: the server closed it.
    wait_until(lambda: connections(server) == 2, timeout=10)
    mallory.close()


def flood(mallory: RawSocketIO, chunks: list[bytes], seconds: float = 1.5) -> None:
    """Send each chunk over and over for ``seconds``, reading nothing."""
    for chunk in chunks:
        until = time.monotonic() + seconds
        try:
            while time.monotonic() < until:
                mallory.ws.send(chunk)
        except OSError:
            return  # closed by the server


def connections(server: DibsProcess) -> int:
    return requests.get(server.url + "/healthz", timeout=10).json()["connections"]


def never_connects(kind: str, server: DibsProcess) -> None:
    ws = RawWebSocket(server.port)
    opened = time.monotonic()
    assert ws.receive_text().startswith("0{")
    with pytest.raises(Closed):
        while time.monotonic() - opened < 15:
            ws.receive_text(timeout=15)  # answers pings: alive, but never joins
    assert time.monotonic() - opened < 2 + 1 + 2, "closed after the connect timeout"
    ws.close()


def vanishes(kind: str, server: DibsProcess) -> None:
    ghost = RawSocketIO(server.port, {"user": "ghost"})
    reply, _ = ghost.call("visit", {"page": PAGE})
    assert reply["ok"]
    gone_by = time.monotonic() + GONE_WITHIN + 3
    # The ghost neither reads nor answers pings from now on, and never closes.
    users = wait_until(
        lambda: "ghost" not in page_users(server) and page_users(server),
        timeout=GONE_WITHIN + 5,
        every=0.1,
    )
    assert time.monotonic() < gone_by, "gone within the documented bound"
    assert users == ["alice", "bob"]
    ghost.close()


def page_users(server: DibsProcess) -> list[str]:
    presence = requests.get(
        server.url + "/api/presence", params={"page": PAGE}, timeout=10
    ).json()
    return [viewer["user"] for viewer in presence["viewers"]]


# Attacks over long-polling.


def polling_garbage(kind: str, server: DibsProcess) -> None:
    assert Polling(server.url).post("not an engine.io payload").status_code == 400


def polling_invalid_json(kind: str, server: DibsProcess) -> None:
    mallory = Polling(server.url)
    mallory.connect({"user": "mallory"})
    assert mallory.post('42["visit",{"page":').ok
    seen = mallory.events_until(lambda packet: packet.startswith('42["error"'))
    assert '"invalid"' in next(p for p in seen if p.startswith('42["error"'))


def polling_wrong_namespace(kind: str, server: DibsProcess) -> None:
    mallory = Polling(server.url)
    mallory.connect({"user": "mallory"})
    assert mallory.post("40/nowhere,").ok
    mallory.events_until(lambda packet: packet.startswith("44/nowhere,"))


def polling_absurd_attachments(kind: str, server: DibsProcess) -> None:
    mallory = Polling(server.url)
    mallory.connect({"user": "mallory"})
    assert mallory.post('451000000000-["visit",{"_placeholder":true,"num":0}]').ok
    mallory.events_until(lambda packet: "binary attachments" in packet)
    assert mallory.post('42["visit",{"page":"booking:mallory"}]').ok


def polling_oversized(kind: str, server: DibsProcess) -> None:
    mallory = Polling(server.url)
    assert mallory.post("4" + "x" * LIMIT).status_code == 413


def polling_declared_huge(kind: str, server: DibsProcess) -> None:
    mallory = Polling(server.url)
    request = (
        f"POST /socket.io/?EIO=4&transport=polling&sid={mallory.sid} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\nContent-Length: {1 << 40}\r\n"
        "Content-Type: text/plain\r\n\r\n4"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.sendall(request.encode())
        # Answered before the body: refused from its declared length.
        assert raw.recv(200).startswith(b"HTTP/1.1 413")


def polling_unexpected_packets(kind: str, server: DibsProcess) -> None:
    for body in ("6", "2", "3\x1e" * 40 + "3"):
        started = time.monotonic()
        assert Polling(server.url).post(body).status_code == 400
        assert time.monotonic() - started < 5, "answered, not left waiting"


def polling_pong_flood(kind: str, server: DibsProcess) -> None:
    mallory = Polling(server.url)
    mallory.connect({"user": "mallory"})
    for _ in range(100):
        assert mallory.post("3\x1e" * 15 + "3").ok


def polling_vanishes(kind: str, server: DibsProcess) -> None:
    ghost = Polling(server.url)
    ghost.connect({"user": "ghost"})
    assert ghost.post(f'42["visit",{{"page":"{PAGE}"}}]').ok
    wait_until(lambda: "ghost" in page_users(server), timeout=10)
    started = time.monotonic()
    wait_until(lambda: "ghost" not in page_users(server), timeout=GONE_WITHIN + 5)
    assert time.monotonic() - started < GONE_WITHIN + 3


ATTACKS = [
    garbage,
    invalid_json,
    wrong_namespace,
    absurd_attachments,
    binary_frame,
    oversized_frame,
    declared_2_63_slowly,
    declared_2_62,
    compressed_frame,
    fragments,
    pong_flood,
    flood_without_reading,
    never_connects,
    vanishes,
    polling_garbage,
    polling_invalid_json,
    polling_wrong_namespace,
    polling_absurd_attachments,
    polling_oversized,
    polling_declared_huge,
    polling_unexpected_packets,
    polling_pong_flood,
    polling_vanishes,
]


def test_malformed_input_leaves_the_server_and_bystanders_unharmed(
    served: tuple[str, DibsProcess], bystanders: Bystanders
) -> None:
    kind, server = served
    process = serving_process(server)
    bystanders.check("before any attack")
    rss_before = process.memory_info().rss
    greenlets_before = gauge(server, "dibs_greenlets")

    for attack in ATTACKS:
        attack(kind, server)
        assert requests.get(server.url + "/healthz", timeout=10).ok, attack.__name__
        bystanders.check(f"after {attack.__name__}")

    # Closed connections finish within the linger and read timeouts.
    wait_until(
        lambda: gauge(server, "dibs_greenlets") <= greenlets_before + 2, timeout=20
    )
    greenlets_after = gauge(server, "dibs_greenlets")
    rss_after = process.memory_info().rss
    print(
        f"{kind}: RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB, "
        f"greenlets {greenlets_before:.0f} -> {greenlets_after:.0f}"
    )
    assert rss_after - rss_before < MAX_RSS_GROWTH
    wait_until(lambda: gauge(server, "dibs_sessions") == 2, timeout=20)
    assert "Traceback" not in server.log_path.read_text(errors="replace")
