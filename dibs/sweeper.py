"""The sweeper: a background greenlet that ends lapsed presence and claims.

Grace periods and claim lifetimes end in the registry's :meth:`expire`; this
loop calls it a few times per grace period and fans out what changed.
"""

from __future__ import annotations

import logging

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
            service.fanout.publish(service.registry.expire(service.now()))
        except Exception:
            logger.exception("sweep failed")


def start(service: Service) -> None:
    """Start the sweeper in the background."""
    service.sio.start_background_task(run, service)
