"""The sweeper: the one background greenlet that keeps the registry up to date.

Grace periods and claim lifetimes end in the registry's :meth:`maintain`
(which with Redis also beats this process's heartbeat, cleans up after dead
processes and recovers from an outage); this loop calls it a few times per
grace period, at least once a second, and fans out what changed.
"""

from __future__ import annotations

import logging

from .errors import Unavailable
from .service import Service

logger = logging.getLogger(__name__)


def interval(grace_seconds: float) -> float:
    """Return how often to sweep: often enough to honour the grace closely."""
    return min(1.0, max(0.05, grace_seconds / 5))


def run(service: Service) -> None:
    """Sweep forever; a failed sweep is logged and the next one goes on."""
    pause = interval(service.settings.grace_seconds)
    while True:
        service.sio.sleep(pause)
        try:
            service.fanout.publish(service.registry.maintain(service.now()))
        except Unavailable:
            pass  # the registry logged the outage once; the next sweep knocks again
        except Exception:
            logger.exception("sweep failed")


def start(service: Service) -> None:
    """Start the sweeper in the background."""
    service.sio.start_background_task(run, service)
