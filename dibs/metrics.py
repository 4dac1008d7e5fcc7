"""Metrics: what this process has done and holds, in the Prometheus text format.

Counters and the event-time histogram are per process and module-level, so
the guard every event runs in can record into them without being handed
anything; the gauges of connections, pages, viewers and claims are read from
the registry at scrape time.  ``GET /metrics`` takes the same API key as the
HTTP API when one is configured.  Note that each process counts for itself:
Dibs serves from one process, and a second one would need its own scrape.
Recording never yields.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from .access import require_api_key
from .errors import DibsError
from .registry import Registry

# The *_created series of every counter would double what a scrape carries,
# for a time Prometheus does not need.
disable_created_metrics()
REGISTRY = CollectorRegistry()

EVENTS = Counter(
    "dibs_events",
    "Socket.IO events handled, by event and outcome (ok or the error code).",
    ["event", "outcome"],
    registry=REGISTRY,
)
EVENT_SECONDS = Histogram(
    "dibs_event_seconds",
    "Seconds spent handling one Socket.IO event, from payload to reply.",
    ["event"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0),
    registry=REGISTRY,
)
REFUSED = Counter(
    "dibs_refused_connections",
    "Connections refused before they were registered, by reason.",
    ["reason"],
    registry=REGISTRY,
)
ProcessCollector(registry=REGISTRY)


class PresenceCollector:
    """Report the registry's counts as gauges, read afresh at each scrape."""

    GAUGES = {
        "connections": "Socket.IO connections registered.",
        "pages": "Pages with at least one viewer or claim.",
        "viewers": "Viewers, counting each user once per page.",
        "claims": "Claims held.",
    }

    def __init__(self) -> None:
        self.registry: Registry | None = None

    UP_HELP = "1 when the registry answered this scrape, 0 when it could not."

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("dibs_registry_up", self.UP_HELP)
        for name, help_text in self.GAUGES.items():
            yield GaugeMetricFamily(f"dibs_{name}", help_text)

    def collect(self) -> Iterator[Metric]:
        if self.registry is None:
            return
        try:
            stats = self.registry.stats()
        except DibsError:
            # Redis is away: the registry logs that itself, once; the scrape
            # still answers, with the counters and without the counts.
            yield GaugeMetricFamily("dibs_registry_up", self.UP_HELP, value=0)
            return

        yield GaugeMetricFamily("dibs_registry_up", self.UP_HELP, value=1)
        for name, help_text in self.GAUGES.items():
            yield GaugeMetricFamily(
                f"dibs_{name}", help_text, value=getattr(stats, name)
            )


PRESENCE = PresenceCollector()
REGISTRY.register(PRESENCE)


def watch(registry: Registry) -> None:
    """Report the counts of ``registry`` from now on."""
    PRESENCE.registry = registry


def record_event(event: str, reply: Any, seconds: float) -> None:
    """Count one handled event by its outcome, and how long it took."""
    outcome = "ok"
    if isinstance(reply, dict) and reply.get("ok") is False:
        outcome = str(reply.get("error", "error"))
    EVENTS.labels(event=event, outcome=outcome).inc()
    EVENT_SECONDS.labels(event=event).observe(seconds)


def record_refusal(reason: str) -> None:
    """Count one connection refused at the door for ``reason``."""
    REFUSED.labels(reason=reason).inc()


blueprint = Blueprint("metrics", __name__)
blueprint.before_request(require_api_key)


@blueprint.get("/metrics")
def scrape() -> Response:
    """Serve every metric of this process in the Prometheus text format."""
    return Response(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


@blueprint.errorhandler(DibsError)
def refused(error: DibsError) -> Any:
    body = error.reply()
    del body["ok"]
    return jsonify(body), error.status
