"""The ceiling: what this stack can send with no Socket.IO and no Dibs at all.

``python -m bench.ceiling serve`` runs a bare gevent-websocket server (the
same gevent WSGIServer and WebSocketHandler as ``python wsgi.py``) on $PORT.
When a client sends ``COUNT SIZE``, it sends COUNT text messages of SIZE bytes,
spread round-robin over every connected websocket, in one tight loop.

``python -m bench.ceiling drive CONFIG_JSON`` is its load generator: it opens
the connections, then on ``navigate`` asks for the messages and times how
long until every one has arrived.  It speaks the same JSON lines as
:mod:`bench.agents`, so :mod:`bench.run` drives both alike.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import gevent.fileobject  # noqa: E402
import gevent.pool  # noqa: E402

from .wire import Closed, WebSocket  # noqa: E402


def serve(port: int) -> None:
    """Serve the bare websocket endpoint on loopback ``port`` forever."""
    from gevent.pywsgi import WSGIServer
    from geventwebsocket.handler import WebSocketHandler

    clients: list[Any] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        ws = environ.get("wsgi.websocket")
        if ws is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"websocket only\n"]

        # As Dibs does: without it, the tight loop's small writes to one
        # connection would be coalesced, and the ceiling would flatter itself.
        ws.handler.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        clients.append(ws)
        while True:
            message = ws.receive()
            if message is None:
                break
            count, size = (int(word) for word in message.split())
            body = "x" * size
            for n in range(count):
                clients[n % len(clients)].send(body)
        clients.remove(ws)
        return []

    WSGIServer(
        ("127.0.0.1", port), app, handler_class=WebSocketHandler, log=None
    ).serve_forever()


class Driver:
    """Connections to the ceiling server, counting what arrives on them."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.sockets: list[WebSocket] = []
        self.received = 0
        self.last_arrival = 0.0
        self.commands = gevent.fileobject.FileObject(sys.stdin.fileno(), "r")

    def say(self, event: str, **fields: Any) -> None:
        sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
        sys.stdout.flush()

    def join(self) -> None:
        ws = WebSocket(self.config["host"], self.config["port"], "/")
        self.sockets.append(ws)
        gevent.spawn(self.read, ws)

    def read(self, ws: WebSocket) -> None:
        try:
            while True:
                ws.receive()
                self.received += 1
                self.last_arrival = time.perf_counter()
        except (Closed, OSError):
            pass

    def report_progress(self, phase: str, done: Any) -> None:
        while True:
            self.say("progress", phase=phase, done=done(), delivered=self.received)
            gevent.sleep(0.25)

    def run(self) -> None:
        pool = gevent.pool.Pool(100)
        ticker = gevent.spawn(
            self.report_progress, "connect", lambda: len(self.sockets)
        )
        started = time.perf_counter()
        for _ in range(self.config["connections"]):
            pool.spawn(self.join)
        pool.join()
        ticker.kill()
        self.say("ready", connect_seconds=time.perf_counter() - started)

        if self.commands.readline().strip() == "navigate":
            self.say("result", **self.blast())
        self.commands.readline()

    def blast(self) -> dict[str, Any]:
        count, size = self.config["messages"], self.config["size"]
        gevent.spawn(self.report_progress, "send", lambda: self.received)
        cpu_started = time.process_time()
        started = time.perf_counter()
        self.sockets[0].send(f"{count} {size}")
        deadline = started + self.config.get("timeout", 60)
        while self.received < count and time.perf_counter() < deadline:
            gevent.sleep(0.01)
        return {
            "messages": count,
            "size": size,
            "received": self.received,
            "seconds": self.last_arrival - started,
            "cpu_seconds": time.process_time() - cpu_started,
        }


def main() -> None:
    """Serve, or drive, as the first argument says."""
    if sys.argv[1] == "serve":
        serve(int(os.environ["PORT"]))
    else:
        Driver(json.loads(sys.argv[2])).run()


if __name__ == "__main__":
    main()
