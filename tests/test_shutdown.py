"""Stopping Dibs: on SIGTERM it closes every connection so that clients
reconnect, and exits promptly, under ``python wsgi.py`` and under gunicorn."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import socketio
from support import DibsProcess, NodeScenario, free_port, wait_until

GUNICORN = str(Path(sys.executable).parent / "gunicorn")
EXIT_SECONDS = 5.0


def terminate(server: DibsProcess) -> float:
    """Send SIGTERM; return how long the process took to exit, which must be 0."""
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    try:
        status = server.process.wait(EXIT_SECONDS + 5)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {EXIT_SECONDS + 5} s after SIGTERM: {server.log()}")
    assert status == 0, server.log()
    return time.monotonic() - started


@pytest.fixture
def client() -> Iterator[socketio.Client]:
    """A Python client that reconnects by itself, quickly."""
    sio = socketio.Client(reconnection_delay=0.1, reconnection_delay_max=0.3)
    yield sio
    sio.disconnect()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_sigterm_closes_connections_and_clients_reconnect_to_the_next_server(
    start_dibs, client, transport
):
    server = start_dibs({})
    reasons: list[str] = []
    client.on("disconnect", lambda reason=None: reasons.append(reason))
    client.connect(server.url, transports=[transport], auth={"user": "rita"})
    assert client.call("visit", {"page": "booking:1"}, timeout=5)["ok"]
    first_sid = client.get_sid()

    assert terminate(server) < EXIT_SECONDS
    assert reasons and reasons[0] != "server disconnect"
    assert "closed 1 connections" in server.log()
    assert f"disconnect {first_sid} user=rita" in server.log()

    successor = start_dibs({}, port=server.port)
    wait_until(lambda: client.connected and client.get_sid() != first_sid, timeout=15)
    wait_until(lambda: "user=rita" in successor.log())


@pytest.mark.parametrize("mode", ["websocket", "upgrade"])
def test_the_browser_client_reconnects_after_a_restart(start_dibs, mode):
    server = start_dibs({})
    node = NodeScenario("restart.mjs", server.url, mode).start()
    try:
        node.wait_for("connected")

        assert terminate(server) < EXIT_SECONDS
        dropped = node.wait_for("disconnected")
        assert dropped["reason"] in ("transport close", "transport error")

        start_dibs({}, port=server.port)
        node.wait_for("reconnected")
        node.finish()
    finally:
        node.stop()


WORKERS = {
    "gevent": "gevent",
    "size-limited gevent-websocket": "dibs.workers.WebSocketWorker",
}


@pytest.mark.parametrize("worker", WORKERS.values(), ids=WORKERS.keys())
def test_gunicorn_exits_promptly_with_a_websocket_open(tmp_path, client, worker):
    port = free_port()
    # gunicorn's default graceful timeout (30 s) on purpose: the checkout's
    # gunicorn.conf.py must make the worker close its connections itself.
    command = [GUNICORN, "-k", worker, "-w", "1", "-b", f"127.0.0.1:{port}"]
    command += ["--no-control-socket", "wsgi:app"]
    server = DibsProcess(command=command, port=port, log_path=tmp_path / "g.log")
    server.start(timeout=30)
    try:
        reasons: list[str] = []
        client.on("disconnect", lambda reason=None: reasons.append(reason))
        client.connect(server.url, transports=["websocket"], auth={"user": "gus"})

        assert terminate(server) < EXIT_SECONDS
        assert reasons
        assert "closed 1 connections" in server.log()
    finally:
        server.kill()


def test_python_m_dibs_serve_serves_and_stops_like_wsgi_py(tmp_path, client):
    command = [sys.executable, "-m", "dibs", "serve"]
    server = DibsProcess(command=command, log_path=tmp_path / "serve.log").start()
    try:
        client.connect(server.url, transports=["websocket"], auth={"user": "sam"})
        assert client.call("visit", {"page": "booking:serve"}, timeout=5)["ok"]

        assert terminate(server) < EXIT_SECONDS
        assert "closed 1 connections" in server.log()
    finally:
        server.kill()
