"""Shared fixtures: a Dibs server on a free loopback port and agents on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support import Agent, DibsProcess

FAST_SETTINGS = {"DIBS_GRACE_SECONDS": "0.3"}


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., DibsProcess]]:
    """Start Dibs processes with given settings; all are stopped after the test."""
    started: list[DibsProcess] = []

    def start(env: dict[str, str] | None = None, **kwargs: Any) -> DibsProcess:
        log_path = tmp_path / f"dibs-{len(started)}.log"
        server = DibsProcess({**FAST_SETTINGS, **(env or {})}, log_path=log_path, **kwargs)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(start_server: Callable[..., DibsProcess]) -> DibsProcess:
    """A Dibs server on the in-memory registry, with a 0.3 s grace period."""
    return start_server()


@pytest.fixture
def connect(server: DibsProcess) -> Iterator[Callable[..., Agent]]:
    """Connect agents to ``server``; all are disconnected after the test."""
    agents: list[Agent] = []

    def make(user: str | None = None, name: str | None = None, **kwargs: Any) -> Agent:
        auth = kwargs.pop("auth", None)
        if auth is None and user is not None:
            auth = {"user": user, "name": name or user.title()}
        agent = Agent(kwargs.pop("url", server.url), auth=auth, **kwargs)
        agents.append(agent)
        return agent.connect()

    yield make
    for agent in agents:
        agent.close()
