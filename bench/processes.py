"""The processes a benchmark run starts: the server under test and its generators.

Each is a child process on a loopback port, watched with psutil for CPU and
resident memory.  Generators talk JSON lines on their stdout and take one-word
commands on their stdin; a thread per generator reads its lines.
"""

from __future__ import annotations

import json
import os
import queue
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent


def raise_file_limit() -> int:
    """Raise this process's open-file limit to its hard limit; return it.

    Children inherit it: the server holds one file per connection and the
    generators another, so ten thousand agents need twenty thousand.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port() -> int:
    """Return a loopback TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def load_average() -> list[float]:
    """Return the machine's 1, 5 and 15 minute load averages, as uptime shows."""
    return [round(value, 2) for value in os.getloadavg()]


class ServerProcess:
    """A server started as its own process on a free loopback port."""

    def __init__(self, command: list[str], env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.command = command
        self.env = {**os.environ, **env, "PORT": str(self.port)}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.watch: psutil.Process | None = None

    def start(self, timeout: float = 30.0) -> ServerProcess:
        """Start the process and wait until its port accepts connections."""
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.watch = psutil.Process(self.process.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not listen within {timeout} s")

    def cpu_seconds(self) -> float:
        """Return the CPU time (user + system) the server has used so far."""
        times = self.watch.cpu_times()
        return times.user + times.system

    def rss(self) -> int:
        """Return the server's resident memory in bytes."""
        return self.watch.memory_info().rss

    def alive(self) -> bool:
        """Tell whether the server is still running."""
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL if it lingers)."""
        if not self.alive():
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def log_tail(self) -> str:
        """Return the end of what the server wrote."""
        return self.log_path.read_text(errors="replace")[-2000:]


DIBS_COMMAND = [sys.executable, "wsgi.py"]
"""How a Dibs server is started; ``--server-command`` replaces it (profiling)."""


def dibs_server(settings: dict[str, str], log_path: Path) -> ServerProcess:
    """Return (not started) a Dibs server as ``python wsgi.py`` serves it."""
    env = {"DIBS_HOST": "127.0.0.1", "DIBS_LOG_LEVEL": "warning", **settings}
    return ServerProcess(list(DIBS_COMMAND), env, log_path)


class GeneratorProcess:
    """A load-generator child process, speaking JSON lines."""

    def __init__(self, args: list[str], config: dict[str, Any], log_path: Path) -> None:
        self.log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", *args, json.dumps(config)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            bufsize=1,
        )
        self.watch = psutil.Process(self.process.pid)
        self.progress: dict[str, Any] = {}
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            event = json.loads(line)
            if event["event"] == "progress":
                self.progress = event
            else:
                self.events.put(event)
        self.events.put({"event": "exit"})

    def send(self, command: str) -> None:
        """Send one command line."""
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def wait(self, name: str, timeout: float) -> dict[str, Any]:
        """Return the next event called ``name``; fail after ``timeout``."""
        try:
            event = self.events.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(
                f"no {name!r} from the generator in {timeout} s"
            ) from None
        if event["event"] != name:
            raise RuntimeError(f"expected {name!r} from the generator, got {event}")
        return event

    def cpu_seconds(self) -> float:
        """Return the CPU time the generator has used so far."""
        times = self.watch.cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        """Ask the generator to quit, and make sure it does."""
        if self.process.poll() is None:
            try:
                self.send("quit")
                self.process.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(10)
        self.log.close()
