"""The doors: which web origins may open a socket, and the API key of the HTTP API.

Browsers name the page opening a socket in the ``Origin`` header; the tests
send it as a browser would, over a raw WebSocket (as a browser's handshake)
and over long-polling with the Python client, against a real server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import socketio
import websocket
from support import Agent, DibsProcess

LISTED = "https://ops.example.com"
FOREIGN = "https://evil.example.com"
API_KEY = "k3y-" + "z" * 28


def health(server: DibsProcess) -> int:
    return requests.get(server.url + "/healthz", timeout=5).json()["connections"]


def websocket_handshake(server: DibsProcess, origin: str | None) -> websocket.WebSocket:
    """Open an Engine.IO WebSocket as a browser would, sending ``origin``."""
    url = server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    if origin is None:
        return websocket.create_connection(url, timeout=5, suppress_origin=True)
    return websocket.create_connection(url, timeout=5, origin=origin)


def socketio_connects_over_websocket(server: DibsProcess, origin: str | None) -> bool:
    """Say whether a WebSocket from ``origin`` gets as far as a Socket.IO connect."""
    try:
        raw = websocket_handshake(server, origin)
    except websocket.WebSocketBadStatusException as refusal:
        assert refusal.status_code == 400
        return False
    try:
        assert raw.recv().startswith("0")
        raw.send('40{"user":"raw"}')
        return raw.recv().startswith("40")
    finally:
        raw.close()


def connects_over_polling(server: DibsProcess, origin: str | None) -> bool:
    """Say whether long-polling from ``origin`` gets as far as a Socket.IO connect."""
    url = server.url + "/socket.io/?EIO=4&transport=polling"
    headers = {"Origin": origin} if origin else {}
    with requests.Session() as session:
        session.headers.update(headers)
        opened = session.get(url, timeout=5)
        if opened.status_code == 400:
            return False
        sid = json.loads(opened.text[1:])["sid"]
        session.post(f"{url}&sid={sid}", data='40{"user":"polly"}', timeout=5)
        connected = session.get(f"{url}&sid={sid}", timeout=5).text.startswith("40")
        session.post(f"{url}&sid={sid}", data="1", timeout=5)
    return connected


@pytest.fixture(scope="module")
def listing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DibsProcess]:
    """A server allowing one listed origin (written with a trailing slash)."""
    log_path = tmp_path_factory.mktemp("listing") / "dibs.log"
    env = {"DIBS_ALLOWED_ORIGINS": f" {LISTED}/ , http://localhost:8080"}
    server = DibsProcess(env, log_path=log_path).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DibsProcess]:
    """A server with no allowed origins configured, and an API key."""
    log_path = tmp_path_factory.mktemp("default") / "dibs.log"
    server = DibsProcess({"DIBS_API_KEY": API_KEY}, log_path=log_path).start()
    yield server
    server.stop()


CONNECTS = [socketio_connects_over_websocket, connects_over_polling]


@pytest.mark.parametrize("connects", CONNECTS, ids=["websocket", "polling"])
def test_a_listed_origin_its_own_origin_and_no_origin_connect(listing, connects):
    assert connects(listing, LISTED)
    assert connects(listing, "http://localhost:8080")
    assert connects(listing, listing.url)
    assert connects(listing, None)


@pytest.mark.parametrize("connects", CONNECTS, ids=["websocket", "polling"])
def test_a_foreign_origin_is_refused_before_anything_is_registered(listing, connects):
    before = health(listing)

    assert not connects(listing, FOREIGN)
    assert not connects(listing, "https://ops.example.com.evil.example.com")
    assert not connects(listing, "http://ops.example.com")

    assert health(listing) == before
    assert f"origin {FOREIGN!r} is not allowed" in listing.log()


def test_the_python_client_sending_an_origin_is_let_in_or_refused(listing):
    listed = Agent(listing.url, transports=["polling"], headers={"Origin": LISTED})
    foreign = Agent(listing.url, transports=["polling"], headers={"Origin": FOREIGN})

    listed.connect()
    try:
        assert listed.visit("booking:doors")["ok"]
    finally:
        # A polite close over polling can wait a whole ping interval.
        listed.sio.eio.disconnect(abort=True)
    with pytest.raises(socketio.exceptions.ConnectionError, match="400"):
        foreign.connect()


def test_a_refused_polling_handshake_gets_a_400_and_no_session(listing):
    answer = requests.get(
        listing.url + "/socket.io/?EIO=4&transport=polling",
        headers={"Origin": FOREIGN},
        timeout=5,
    )

    assert answer.status_code == 400
    assert "sid" not in answer.text
    assert "Access-Control-Allow-Origin" not in answer.headers


def test_a_listed_origin_gets_cors_headers_for_polling(listing):
    answer = requests.get(
        listing.url + "/socket.io/?EIO=4&transport=polling",
        headers={"Origin": LISTED},
        timeout=5,
    )

    assert answer.status_code == 200 and '"sid"' in answer.text
    assert answer.headers["Access-Control-Allow-Origin"] == LISTED


def test_by_default_only_the_servers_own_origin_is_allowed(default):
    for connects in CONNECTS:
        assert connects(default, default.url)
        assert connects(default, None)
        assert not connects(default, LISTED)


def test_a_star_allows_any_origin(start_dibs):
    anything = start_dibs({"DIBS_ALLOWED_ORIGINS": "*"})
    for connects in CONNECTS:
        assert connects(anything, FOREIGN)


def api(server: DibsProcess, path: str, key: str | None = None, **kwargs: Any) -> Any:
    headers = kwargs.pop("headers", {})
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return requests.get(server.url + path, headers=headers, timeout=5, **kwargs)


API_PATHS = ["/api/presence?page=booking:1", "/metrics"]
WRONG_HEADERS = {
    "none": {},
    "wrong key": {"Authorization": "Bearer " + "x" * len(API_KEY)},
    "key prefix": {"Authorization": "Bearer " + API_KEY[:-1]},
    "key with more": {"Authorization": "Bearer " + API_KEY + "0"},
    "not bearer": {"Authorization": "Basic " + API_KEY},
    "bare key": {"Authorization": API_KEY},
}


@pytest.mark.parametrize("path", API_PATHS)
@pytest.mark.parametrize("headers", WRONG_HEADERS.values(), ids=WRONG_HEADERS.keys())
def test_without_the_api_key_the_api_answers_401_in_json(default, path, headers):
    answer = api(default, path, headers=dict(headers))

    assert answer.status_code == 401
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.json()["error"] == "unauthorized"
    assert API_KEY not in answer.text


@pytest.mark.parametrize("path", API_PATHS)
def test_the_right_api_key_opens_the_api(default, path):
    assert api(default, path, key=API_KEY).status_code == 200
    lowercase = {"Authorization": f"bearer {API_KEY}"}
    assert api(default, path, headers=lowercase).status_code == 200


@pytest.mark.parametrize("path", API_PATHS)
def test_with_no_api_key_configured_the_api_is_open(listing, path):
    assert api(listing, path).status_code == 200
    assert api(listing, path, key="anything").status_code == 200
