"""Identity with tokens: only a token signed with DIBS_SECRET names a user.

Tokens are made here with PyJWT directly (and once with ``python -m dibs
token``), so that forged, expired and malformed ones are exactly what an
attacker could send.  Every check runs against a real server and real clients.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
import socketio
import websocket
from support import ROOT, Agent, DibsProcess, NodeScenario, wait_until

SECRET = "correct-horse-battery-staple-" + "x" * 40
OTHER_SECRET = "another-secret-entirely-" + "y" * 16
PAGE = "booking:4711"


def token(
    sub: Any = "alice",
    name: Any = "Alice",
    ttl: float = 600,
    secret: str = SECRET,
    algorithm: str = "HS256",
    **extra: Any,
) -> str:
    """Return a JWT as a backend (or an attacker) would make it."""
    claims: dict[str, Any] = {"exp": int(time.time() + ttl), **extra}
    if sub is not None:
        claims["sub"] = sub
    if name is not None:
        claims["name"] = name
    return jwt.encode(claims, secret, algorithm=algorithm)


def unsigned_token() -> str:
    """Return a token with ``alg: none``: no signature at all."""
    claims = {"sub": "mallory", "exp": int(time.time() + 600)}
    return jwt.encode(claims, None, algorithm="none")


def health(server: DibsProcess) -> dict[str, Any]:
    return requests.get(server.url + "/healthz", timeout=5).json()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DibsProcess]:
    """One server requiring tokens, shared by the tests of this module."""
    log_path = tmp_path_factory.mktemp("secured") / "dibs.log"
    env = {"DIBS_SECRET": SECRET, "DIBS_GRACE_SECONDS": "0.3"}
    server = DibsProcess(env, log_path=log_path).start()
    yield server
    server.stop()


@pytest.fixture
def agents(secured: DibsProcess) -> Iterator[list[Agent]]:
    """Agents made by a test; all are disconnected after it."""
    made: list[Agent] = []
    yield made
    for agent in made:
        agent.close()


def join(secured: DibsProcess, agents: list[Agent], auth: Any, **kwargs: Any) -> Agent:
    agent = Agent(secured.url, auth=auth, **kwargs)
    agents.append(agent)
    return agent.connect()


def test_a_token_names_the_user_and_a_claimed_user_is_ignored(secured, agents):
    alice = join(secured, agents, {"token": token(), "user": "mallory", "name": "M"})
    reply = alice.visit("booking:claimed-name")

    assert reply["presence"]["viewers"][0]["user"] == "alice"
    assert reply["presence"]["viewers"][0]["name"] == "Alice"
    claim = alice.call("claim", {"action": "rebook"})
    assert claim["claim"]["user"] == "alice"


def test_a_token_without_a_name_shows_the_user_id(secured, agents):
    bob = join(secured, agents, {"token": token(sub="bob", name=None)})
    assert bob.visit("booking:nameless")["presence"]["viewers"][0]["name"] == "bob"


REFUSED = {
    "no auth": (None, "missing"),
    "no token": ({"user": "mallory"}, "missing"),
    "empty token": ({"token": ""}, "missing"),
    "expired": ({"token": token(ttl=-60)}, "expired"),
    "signed with another secret": (
        {"token": token(secret=OTHER_SECRET)},
        "bad_signature",
    ),
    "alg none": ({"token": unsigned_token()}, "bad_algorithm"),
    "HS512 with the right secret": (
        {"token": token(algorithm="HS512")},
        "bad_algorithm",
    ),
    "no sub": ({"token": token(sub=None)}, "missing_claim"),
    "no exp": (
        {"token": jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256")},
        "missing_claim",
    ),
    "sub not a string": ({"token": token(sub=42)}, "malformed"),
    "sub too long": ({"token": token(sub="a" * 101)}, "bad_claim"),
    "garbage": ({"token": "not.a.jwt"}, "malformed"),
    "not a string": ({"token": {"sub": "alice"}}, "malformed"),
    "huge": ({"token": "a" * 10000}, "malformed"),
}


@pytest.mark.parametrize(("auth", "reason"), REFUSED.values(), ids=REFUSED.keys())
def test_a_bad_or_missing_token_is_refused_at_connect(secured, agents, auth, reason):
    connections = health(secured)["connections"]
    refusals = refusal_lines(secured, reason)
    agent = Agent(secured.url, auth=auth)
    errors: list[Any] = []
    agent.sio.on("connect_error", errors.append)
    agents.append(agent)

    with pytest.raises(socketio.exceptions.ConnectionError):
        agent.connect()

    assert errors == [{"message": "unauthorized"}]
    assert health(secured)["connections"] == connections
    wait_until(lambda: refusal_lines(secured, reason) == refusals + 1)


def refusal_lines(server: DibsProcess, reason: str) -> int:
    """Count the server's log lines refusing a connection for ``reason``."""
    lines = server.log_path.read_text(errors="replace").splitlines()
    return sum(
        "refused connection" in line and f": {reason} (" in line for line in lines
    )


def test_the_browser_client_sees_unauthorized_or_gets_in(secured):
    refused = NodeScenario("token.mjs", secured.url, token(ttl=-60)).run()
    accepted = NodeScenario(
        "token.mjs", secured.url, token(sub="nina", name="Nina")
    ).run()

    assert refused.one("refused")["message"] == "unauthorized"
    viewers = accepted.one("visited")["reply"]["presence"]["viewers"]
    assert [viewer["name"] for viewer in viewers] == ["Nina"]


def test_a_refused_connection_registers_nothing_and_hears_nothing(secured, agents):
    alice = join(secured, agents, {"token": token()})
    alice.visit(PAGE)
    raw = websocket.create_connection(
        secured.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket",
        timeout=5,
    )
    try:
        assert raw.recv().startswith("0")
        raw.send("40" + json.dumps({"token": token(secret=OTHER_SECRET)}))
        assert json.loads(raw.recv()[2:]) == {"message": "unauthorized"}

        # Events on a refused connection are ignored, and changes on the page
        # it tried to visit are not sent to it.
        raw.send("42" + json.dumps(["visit", {"page": PAGE}]))
        bob = join(secured, agents, {"token": token(sub="bob", name="Bob")})
        bob.visit(PAGE)
        alice.call("claim", {"action": "refund"})
        bob.wait_for(lambda agent: (agent.presence or {}).get("claims"))
        assert health(secured)["connections"] == 2

        raw.settimeout(0.5)
        heard = []
        try:
            while True:
                heard.append(raw.recv())
        except websocket.WebSocketTimeoutException:
            pass
        assert [frame for frame in heard if frame != "2"] == []
        assert sorted(bob.users()) == ["alice", "bob"]
    finally:
        raw.close()


def test_a_legacy_username_cannot_override_the_token(secured, agents):
    href = "https://ops.example.com/booking/4711"
    watcher = join(secured, agents, {"token": token(sub="carol", name="Carol")})
    watcher.visit(href)
    alice = join(secured, agents, {"token": token()}, path="dibs")

    alice.send("PAGE_VISIT", href, "mallory", int(time.time() * 1000))

    alice.wait_for(lambda agent: agent.legacy and agent.legacy.get(href))
    assert set(alice.legacy[href]) == {"Alice", "Carol"}
    watcher.wait_for(lambda agent: "alice" in agent.users())
    assert "mallory" not in watcher.users()


def test_a_query_string_token_is_refused_unless_turned_on(secured, start_dibs):
    url = f"{secured.url}?token={token()}"
    with pytest.raises(socketio.exceptions.ConnectionError):
        Agent(url).connect()
    wait_until(lambda: "query_token_off" in secured.log())

    allowing = start_dibs({"DIBS_SECRET": SECRET, "DIBS_ALLOW_QUERY_TOKEN": "true"})
    alice = Agent(f"{allowing.url}?token={token()}").connect()
    try:
        assert alice.visit(PAGE)["presence"]["viewers"][0]["user"] == "alice"
        assert "query_token_off" not in allowing.log()
    finally:
        alice.close()


def test_the_open_mode_says_so_once_and_believes_any_name(start_dibs, secured):
    server = start_dibs({})
    warnings = [
        line for line in server.log().splitlines() if "OPEN DEVELOPMENT" in line
    ]
    assert len(warnings) == 1 and " WARNING " in warnings[0]
    assert "OPEN DEVELOPMENT" not in secured.log_path.read_text()

    mallory = Agent(server.url, auth={"user": "mallory"}).connect()
    try:
        assert mallory.visit(PAGE)["presence"]["viewers"][0]["user"] == "mallory"
    finally:
        mallory.close()


def mint(*args: str, secret: str | None = SECRET) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin"}
    if secret is not None:
        env["DIBS_SECRET"] = secret
    return subprocess.run(
        [sys.executable, "-m", "dibs", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_token_command_mints_a_token_the_server_accepts(secured, agents):
    minted = mint("token", "dave", "--name", "Dave D.", "--ttl", "8h")

    assert minted.returncode == 0, minted.stderr
    value = minted.stdout.strip()
    claims = jwt.decode(value, SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 8 * 3600
    dave = join(secured, agents, {"token": value})
    viewers = dave.visit("booking:minted")["presence"]["viewers"]
    assert [(viewer["user"], viewer["name"]) for viewer in viewers] == [
        ("dave", "Dave D.")
    ]


def test_the_token_command_needs_the_secret():
    minted = mint("token", "dave", secret=None)

    assert minted.returncode == 1
    assert minted.stdout == ""
    assert minted.stderr.count("\n") == 1 and "DIBS_SECRET" in minted.stderr


def test_the_command_line_help_describes_the_commands():
    top = mint("--help")
    token_help = mint("token", "--help")

    assert top.returncode == 0 and "token" in top.stdout and "serve" in top.stdout
    assert token_help.returncode == 0
    for word in ("USER", "--name", "--ttl", "DIBS_SECRET", "8h"):
        assert word in token_help.stdout
    assert mint("token", "dave", "--ttl", "soon").returncode == 2


def test_a_short_secret_stops_the_server_at_start(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "wsgi.py"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "DIBS_SECRET": "hunter2", "PORT": "0"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "DIBS_SECRET" in result.stderr and "hunter2" not in result.stderr
