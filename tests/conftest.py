"""Shared fixtures: a Dibs server on a free loopback port and agents on it.

Every test that starts a server runs twice, once per registry backend:
``memory`` (one process, no Redis) and ``redis`` (a private Redis started for
the session, emptied before each test).  Mark a test ``memory_only`` when it
cannot hold on Redis, and say why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import Agent, DibsProcess, RedisProcess, redis_server_path

FAST_SETTINGS = {"DIBS_GRACE_SECONDS": "0.3"}
REDIS_FAST_SETTINGS = {"DIBS_PROCESS_TIMEOUT_SECONDS": "3"}
BACKENDS = ("memory", "redis")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "memory_only: run on the in-memory registry only (say why)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    only_memory = metafunc.definition.get_closest_marker("memory_only")
    backends = ["memory"] if only_memory else list(BACKENDS)
    metafunc.parametrize("backend", backends, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The registry a server runs on: ``memory`` or ``redis``."""
    return request.param


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """A private Redis on a free loopback port, for the whole session."""
    directory = tmp_path_factory.mktemp("redis")
    redis = RedisProcess(redis_server_path(), directory).start()
    yield redis
    redis.stop()


@pytest.fixture
def backend_settings(backend: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """The settings that put a server on ``backend``, Redis emptied first."""
    if backend == "memory":
        return {}
    redis: RedisProcess = request.getfixturevalue("redis_server")
    redis.flushall()
    return {"DIBS_REDIS_URL": redis.url, **REDIS_FAST_SETTINGS}


@pytest.fixture
def start_server(
    tmp_path: Path, backend_settings: dict[str, str]
) -> Iterator[Callable[..., DibsProcess]]:
    """Start Dibs processes with given settings; all are stopped after the test.

    On the ``redis`` backend they all share the same Redis, as a cluster.
    """
    started: list[DibsProcess] = []

    def start(env: dict[str, str] | None = None, **kwargs: Any) -> DibsProcess:
        log_path = tmp_path / f"dibs-{len(started)}.log"
        settings = {**FAST_SETTINGS, **backend_settings, **(env or {})}
        server = DibsProcess(settings, log_path=log_path, **kwargs)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(start_server: Callable[..., DibsProcess]) -> DibsProcess:
    """A Dibs server on each registry backend, with a 0.3 s grace period."""
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


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A Redis of this test's own, which it may stop and start again."""
    redis = RedisProcess(redis_server_path(), tmp_path).start()
    yield redis
    redis.stop()


@pytest.fixture
def start_dibs(tmp_path: Path) -> Iterator[Callable[..., DibsProcess]]:
    """Start Dibs processes with exactly the settings given, on no backend
    parameter: for tests that build their own cluster on Redis."""
    started: list[DibsProcess] = []

    def start(env: dict[str, str], **kwargs: Any) -> DibsProcess:
        log_path = tmp_path / f"dibs-{len(started)}.log"
        server = DibsProcess({**FAST_SETTINGS, **env}, log_path=log_path, **kwargs)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def on_redis(
    redis_server: RedisProcess, start_dibs: Callable[..., DibsProcess]
) -> Callable[[], DibsProcess]:
    """Start Dibs processes that share the session's private Redis."""
    redis_server.flushall()
    return lambda: start_dibs({"DIBS_REDIS_URL": redis_server.url})
