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
reference *cycles* among them wait (a closed connection leaves a few), for a
full collection the keeper runs when the frozen heap has grown by a quarter
since the last one: CPython's own rule, applied to what stays rather than to
everything that passes through.  It also stops gevent from recording the
spawning stack of every greenlet, a dozen objects per greenlet kept only for
debugging.  One background greenlet per process; the collector is
process-wide.

Note that a full collection still pauses the process for as long as it walks
the heap (see docs/benchmarks.md for the figure at 10,000 connections); it
happens while connections are added or closed in numbers, not while a steady
floor of agents comes and goes between pages.
"""

from __future__ import annotations

import gc
import logging
import time

import gevent

from .service import Service

logger = logging.getLogger(__name__)

FREEZE_SECONDS = 1.0
GROWTH_BEFORE_FULL_COLLECTION = 0.25


def run(service: Service) -> None:
    """Freeze survivors every second; collect fully when they grew by a quarter."""
    baseline = gc.get_freeze_count()
    while True:
        service.sio.sleep(FREEZE_SECONDS)
        gc.freeze()
        if gc.get_freeze_count() <= baseline * (1 + GROWTH_BEFORE_FULL_COLLECTION):
            continue

        started = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        baseline = gc.get_freeze_count()
        logger.debug(
            "full collection: %d unreachable, %d kept, %.0f ms",
            found,
            baseline,
            (time.perf_counter() - started) * 1000,
        )


def start(service: Service) -> None:
    """Start keeping the heap in the background."""
    gevent.config.track_greenlet_tree = False
    gc.freeze()
    service.sio.start_background_task(run, service)
