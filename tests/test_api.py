"""The HTTP API a booking backend calls, against a running server."""

import pytest
import requests

PAGE_URL = "https://ops.example.com/booking/309208537?tab=rebook&utm_source=mail#notes"
PAGE_KEY = "https://ops.example.com/booking/309208537?tab=rebook"


def get(server, path, **params):
    return requests.get(server.url + path, params=params, timeout=5)


def test_presence_uses_the_same_page_keys_as_the_sockets(server, connect):
    alice = connect("alice", "Alice")
    alice.visit(PAGE_URL)

    response = get(server, "/api/presence", page=PAGE_KEY + "#other")

    assert response.status_code == 200
    body = response.json()
    assert body["page"] == PAGE_KEY
    assert [v["user"] for v in body["viewers"]] == ["alice"]
    assert body["claims"] == []


def test_presence_of_an_empty_page_is_empty(server):
    body = get(server, "/api/presence", page="booking:1").json()

    assert body == {"page": "booking:1", "viewers": [], "claims": [], "version": 0}


def test_a_backend_can_ask_who_holds_a_claim(server, connect):
    alice = connect("alice", "Alice")
    alice.visit(PAGE_URL)
    claim = alice.call("claim", {"action": "rebook"})["claim"]

    assert get(server, "/api/claims", page=PAGE_KEY, action="rebook").json() == claim
    missing = get(server, "/api/claims", page=PAGE_KEY, action="refund")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_claimed"


def test_a_backend_can_check_the_holder_and_the_token(server, connect):
    alice = connect("alice", "Alice")
    alice.visit(PAGE_URL)
    claim = alice.call("claim", {"action": "rebook"})["claim"]
    token = str(claim["token"])

    ok = get(
        server, "/api/claims", page=PAGE_KEY, action="rebook", user="alice", token=token
    )
    assert ok.status_code == 200

    wrong_user = get(server, "/api/claims", page=PAGE_KEY, action="rebook", user="bob")
    assert wrong_user.status_code == 409
    assert wrong_user.json()["error"] == "not_holder"
    assert wrong_user.json()["claim"] == claim

    old_token = get(
        server, "/api/claims", page=PAGE_KEY, action="rebook", user="alice", token="1"
    )
    assert old_token.status_code == 409
    assert old_token.json()["claim"]["token"] == claim["token"]


def test_a_lapsed_holder_is_refused_after_a_colleague_took_over(server, connect):
    alice = connect("alice")
    bob = connect("bob")
    alice.visit(PAGE_URL)
    bob.visit(PAGE_URL)
    old = alice.call("claim", {"action": "rebook"})["claim"]
    requests.delete(
        server.url + "/api/claims",
        params={"page": PAGE_KEY, "action": "rebook"},
        timeout=5,
    )
    new = bob.call("claim", {"action": "rebook"})["claim"]

    stale = get(
        server,
        "/api/claims",
        page=PAGE_KEY,
        action="rebook",
        user="alice",
        token=str(old["token"]),
    )

    assert new["token"] > old["token"]
    assert stale.status_code == 409
    assert stale.json()["claim"]["user"] == "bob"


def test_force_release_of_nothing_is_404(server):
    response = requests.delete(
        server.url + "/api/claims",
        params={"page": "booking:1", "action": "rebook"},
        timeout=5,
    )

    assert response.status_code == 404
    assert response.json()["error"] == "not_claimed"


@pytest.mark.parametrize(
    "path, params",
    [
        ("/api/presence", {}),
        ("/api/presence", {"page": ""}),
        ("/api/presence", {"page": "x" * 3000}),
        ("/api/claims", {"page": "booking:1"}),
        ("/api/claims", {"page": "booking:1", "action": "no spaces"}),
        ("/api/claims", {"page": "booking:1", "action": "rebook", "token": "abc"}),
    ],
)
def test_bad_parameters_get_a_json_400(server, path, params):
    response = get(server, path, **params)

    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == "invalid"
    assert body["message"]


def test_unknown_api_paths_and_methods_answer_json(server):
    missing = get(server, "/api/nothing")
    wrong_method = requests.put(server.url + "/api/presence", timeout=5)

    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "method_not_allowed"
