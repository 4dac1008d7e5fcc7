"""The heap keeper: keeps Python's cyclic garbage collector from stalling Dibs.

A process holding thousands of connections holds about a hundred tracked
objects for each, and a full collection walks every one of them: about a
second at ten thousand connections on a small machine, during which no
presence goes out.  CPython starts a full collection whenever the objects
that survived young collections since the last one reach a quarter of the
heap, and the pings of ten thousand connections get there every few seconds.

So four times a second the keeper freezes what has survived so far
(:func:`gc.freeze`): automatic collections then walk only newer objects.
Frozen objects are still freed the moment nothing refers to them; only
reference *cycles* among them wait (each closed connection leaves a few).
The heap grows and such garbage builds up as connections open and close, so
the keeper runs a full collection when the connections opened or closed
since the last one reach a quarter of those open then (CPython's own rule,
counted in connections rather than in objects), and at least once an hour.
It also stops gevent from recording the spawning stack of every greenlet, a
dozen objects per greenlet kept only for debugging.  One background greenlet
per process; the collector is process-wide.

Note that a full collection still pauses the process for as long as it walks
the heap (see docs/benchmarks.md for the figure at 10,000 connections); it
happens while connections come or go in numbers, not while a steady floor of
agents moves between pages.
"""

from __future__ import annotations

import gc
import logging
import time

import gevent

from .service import Service

logger = logging.getLogger(__name__)

FREEZE_SECONDS = 0.25
CHURN_BEFORE_FULL_COLLECTION = 0.25
FEWEST_CONNECTIONS_COUNTED = 1000
LONGEST_WITHOUT_FULL_COLLECTION = 3600.0


def run(service: Service) -> None:
    """Freeze survivors often; collect fully after enough connections came or went."""
    sockets = service.sio.eio.sockets
    open_before = open_at_last = len(sockets)
    churn = 0
    last_full = time.monotonic()
    while True:
        service.sio.sleep(FREEZE_SECONDS)
        gc.freeze()
        churn += abs(len(sockets) - open_before)
        open_before = len(sockets)
        if not full_collection_due(churn, open_at_last, last_full):
            continue

        started = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        open_at_last, churn, last_full = len(sockets), 0, time.monotonic()
        logger.debug(
            "full collection at %d connections: %d unreachable, %.0f ms",
            open_at_last,
            found,
            (time.perf_counter() - started) * 1000,
        )


def full_collection_due(churn: int, open_at_last: int, last_full: float) -> bool:
    """Tell whether enough connections came or went, or time passed, to collect."""
    counted = max(open_at_last, FEWEST_CONNECTIONS_COUNTED)
    if churn >= counted * CHURN_BEFORE_FULL_COLLECTION:
        return True
    return time.monotonic() - last_full >= LONGEST_WITHOUT_FULL_COLLECTION


def start(service: Service) -> None:
    """Start keeping the heap in the background."""
    gevent.config.track_greenlet_tree = False
    gc.freeze()
    service.sio.start_background_task(run, service)
