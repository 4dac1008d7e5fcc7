"""Dibs served by real gunicorn, with each worker class ops may start it with.

Both must give clients a real WebSocket: gunicorn's own gevent worker, which
hands Dibs the raw socket, and gevent-websocket's worker, which upgrades the
connection itself.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import Agent, DibsProcess, NodeScenario, free_port, wait_until

GUNICORN = str(Path(sys.executable).parent / "gunicorn")
WORKERS = {
    "gevent": "gevent",
    "gevent-websocket": "geventwebsocket.gunicorn.workers.GeventWebSocketWorker",
}
PAGE = "https://ops.example.com/booking/309208537"


@pytest.fixture(params=list(WORKERS))
def gunicorn(request, start_server: Callable[..., DibsProcess]) -> DibsProcess:
    """Dibs under ``gunicorn -k WORKER -w 1 wsgi:app`` on a free loopback port."""
    port = free_port()
    command = [
        GUNICORN,
        "-k",
        WORKERS[request.param],
        "-w",
        "1",
        "-b",
        f"127.0.0.1:{port}",
        # gunicorn's control socket has one default path in the home directory:
        # gunicorns started side by side would remove each other's.
        "--no-control-socket",
        # Clients are gone by the time it stops; do not wait 30 s for stragglers.
        "--graceful-timeout",
        "3",
        "wsgi:app",
    ]
    return start_server(command=command, port=port)


@pytest.fixture
def agents(gunicorn: DibsProcess) -> Iterator[Callable[..., Agent]]:
    """Connect python-socketio agents to ``gunicorn``; all leave after the test."""
    connected: list[Agent] = []

    def make(user: str, **kwargs: Any) -> Agent:
        agent = Agent(gunicorn.url, auth={"user": user, "name": user.title()}, **kwargs)
        connected.append(agent)
        return agent.connect(timeout=10)

    yield make
    for agent in connected:
        agent.close()


def meet(gunicorn: DibsProcess, pat: Agent, path: str, mode: str) -> NodeScenario:
    """Put ``pat`` and a Node agent, nora, on one page until both saw each other."""
    pat.visit(PAGE)
    nora = NodeScenario(
        "peer.mjs", gunicorn.url, path, mode, "nora", PAGE, "pat", server=gunicorn
    ).start()
    try:
        pat.wait_for(lambda agent: agent.users() == ["pat", "nora"], timeout=20)
        assert nora.wait_for("peer_arrived")["data"]["viewers"][0]["user"] == "pat"
        nora.wait_for("transport")

        assert pat.call("leave", {}) == {"ok": True}
        nora.finish()
    finally:
        nora.stop()
    return nora


def test_websocket_only_clients_meet_under_gunicorn(gunicorn, agents):
    pat = agents("pat", transports=["websocket"])
    assert pat.sio.transport() == "websocket"

    nora = meet(gunicorn, pat, "socket.io", "websocket")

    transport = nora.one("transport", client="nora")
    assert (transport["first"], transport["name"]) == ("websocket", "websocket")
    assert transport["upgrades"] == []
    for sid, user in [
        (pat.sio.get_sid(), "pat"),
        (nora.one("connected")["id"], "nora"),
    ]:
        line = f"connect {sid} user={user} transport=websocket"
        wait_until(lambda line=line: line in gunicorn.log())


def test_polling_clients_upgrade_to_websocket_under_gunicorn(gunicorn, agents):
    pat = agents("pat", transports=["polling", "websocket"])

    nora = meet(gunicorn, pat, "dibs", "upgrade")

    assert pat.sio.transport() == "websocket"
    transport = nora.one("transport", client="nora")
    assert (transport["first"], transport["name"]) == ("polling", "websocket")
    assert transport["upgrades"] == ["websocket"]
    line = f"connect {nora.one('connected')['id']} user=nora transport=polling"
    wait_until(lambda: line in gunicorn.log())
