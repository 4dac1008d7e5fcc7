"""The heap keeper: keeps Python's cyclic garbage collector from stalling Dibs.

A process holding thousands of connections holds about a hundred tracked
objects for each, and a full collection walks every one of them: about a
second at ten thousand connections on a small machine, during which no
presence goes out.  CPython starts a full collection whenever the objects
that survived young collections since the last one reach a quarter of the
heap, and the pings of ten thousand connections get there every few seconds.

So every second the keeper freezes what has survived so far
(:func:`gc.freeze`): automatic collections then walk only newer objects.
Frozen objects are still freed the moment nothing refers to them; only
reference *cycles* among them wait, for a full collection every
``FULL_COLLECTION_SECONDS``.  It also stops gevent from recording the
spawning stack of every greenlet, a dozen objects per greenlet kept only for
debugging.  One background greenlet per process; the collector is
process-wide.

Note that the periodic full collection still pauses the process for as long
as it walks the heap (see docs/benchmarks.md for the figure at 10,000
connections); it is a pause every ten minutes instead of every few seconds.
"""

from __future__ import annotations

import gc
import logging
import time

import gevent

from .service import Service

logger = logging.getLogger(__name__)

FREEZE_SECONDS = 1.0
FULL_COLLECTION_SECONDS = 600.0


def run(service: Service) -> None:
    """Freeze survivors often and collect everything rarely, forever."""
    last_full = time.monotonic()
    while True:
        service.sio.sleep(FREEZE_SECONDS)
        if time.monotonic() - last_full >= FULL_COLLECTION_SECONDS:
            started = time.perf_counter()
            gc.unfreeze()
            found = gc.collect()
            last_full = time.monotonic()
            logger.debug(
                "full collection: %d unreachable objects, %.0f ms",
                found,
                (time.perf_counter() - started) * 1000,
            )
        gc.freeze()


def start(service: Service) -> None:
    """Start keeping the heap in the background."""
    gevent.config.track_greenlet_tree = False
    gc.freeze()
    service.sio.start_background_task(run, service)
