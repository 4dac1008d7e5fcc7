"""GET /metrics: what a real server did and holds, in the Prometheus text format."""

from __future__ import annotations

import jwt
import pytest
import requests
import socketio
from prometheus_client.parser import text_string_to_metric_families
from support import Agent, DibsProcess, wait_until

SECRET = "metrics-secret-" + "s" * 40
PAGE = "booking:metrics"


def scrape(server: DibsProcess, **headers: str) -> dict[tuple[str, tuple], float]:
    """Return every sample of ``/metrics`` by name and sorted labels."""
    answer = requests.get(server.url + "/metrics", headers=headers, timeout=5)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_gauges_follow_connections_pages_viewers_and_claims(server, connect):
    alice = connect("alice")
    bob = connect("bob")
    carol = connect("carol")
    alice.visit(PAGE)
    bob.visit(PAGE)
    carol.visit("booking:other")
    alice.call("claim", {"action": "rebook"})

    samples = scrape(server)
    assert value(samples, "dibs_connections") == 3
    assert value(samples, "dibs_pages") == 2
    assert value(samples, "dibs_viewers") == 3
    assert value(samples, "dibs_claims") == 1

    carol.call("leave", {})
    alice.call("release", {"action": "rebook"})
    samples = scrape(server)
    assert value(samples, "dibs_pages") == 1
    assert value(samples, "dibs_claims") == 0


def test_events_are_counted_by_type_and_outcome_and_timed(server, connect):
    alice = connect("alice")
    bob = connect("bob")
    alice.visit(PAGE)
    bob.visit(PAGE)
    assert alice.call("claim", {"action": "refund"})["ok"]
    assert bob.call("claim", {"action": "refund"})["error"] == "taken"
    assert bob.call("claim", {"action": "not valid!"})["error"] == "invalid"
    bob.send("release", {"action": "refund"})
    bob.wait_for(lambda agent: agent.errors)

    samples = scrape(server)
    counted = {
        (labels[0][1], labels[1][1]): count
        for (name, labels), count in samples.items()
        if name == "dibs_events_total"
    }
    assert counted == {
        ("visit", "ok"): 2,
        ("claim", "ok"): 1,
        ("claim", "taken"): 1,
        ("claim", "invalid"): 1,
        ("release", "not_holder"): 1,
    }
    assert value(samples, "dibs_event_seconds_count", event="claim") == 3
    assert value(samples, "dibs_event_seconds_bucket", event="claim", le="+Inf") == 3
    assert 0 < value(samples, "dibs_event_seconds_sum", event="claim") < 3


def test_refused_connections_are_counted_by_reason(start_dibs):
    server = start_dibs({"DIBS_SECRET": SECRET})
    expired = jwt.encode({"sub": "alice", "exp": 1}, SECRET, algorithm="HS256")
    for auth in (None, {"user": "mallory"}, {"token": expired}):
        with pytest.raises(socketio.exceptions.ConnectionError):
            Agent(server.url, auth=auth).connect()
    foreign = requests.get(
        server.url + "/socket.io/?EIO=4&transport=polling",
        headers={"Origin": "https://evil.example.com"},
        timeout=5,
    )
    assert foreign.status_code == 400

    # Each refusal is counted before the client hears of it.
    samples = scrape(server)
    assert value(samples, "dibs_refused_connections_total", reason="missing") == 2
    assert value(samples, "dibs_refused_connections_total", reason="expired") == 1
    assert value(samples, "dibs_refused_connections_total", reason="origin") == 1
    assert value(samples, "dibs_connections") == 0


def test_metrics_take_the_api_key_when_one_is_set(start_dibs):
    key = "metrics-key-" + "m" * 20
    server = start_dibs({"DIBS_API_KEY": key})

    assert requests.get(server.url + "/metrics", timeout=5).status_code == 401
    samples = scrape(server, Authorization=f"Bearer {key}")
    assert value(samples, "dibs_connections") == 0
    assert value(samples, "process_resident_memory_bytes") > 0


def test_metrics_still_answer_while_redis_is_away(private_redis, start_dibs):
    server = start_dibs({"DIBS_REDIS_URL": private_redis.url})
    assert value(scrape(server), "dibs_registry_up") == 1

    def scrape_while_down() -> dict | None:
        samples = scrape(server)
        return samples if value(samples, "dibs_registry_up") == 0 else None

    private_redis.stop()
    samples = wait_until(scrape_while_down, timeout=15)
    assert ("dibs_connections", ()) not in samples

    private_redis.start()
    wait_until(lambda: value(scrape(server), "dibs_registry_up") == 1, timeout=15)
