"""Garbage-collector settings for a process that keeps every entity in memory.

Entities are plain JSON trees (no reference cycles), freed by reference counting; the cyclic
collector only costs time walking them. CPython's defaults (a young collection every 700
allocations, a full one as the heap grows by a quarter) spend a third of a batch write in the
collector once 100k entities are resident, and a full pass over millions of objects stalls the
event loop for whole seconds. So: what exists after start-up (the loaded store, modules, contexts)
is frozen out of the collector's sight, and full collections are as rare as with a young threshold
of 50,000 and (50, 100); but the young and middle generations are collected every 10,000 and
100,000 allocations: the work per allocation is the same, the pauses shorter (a middle-generation
pass over 2.5 million objects stopped the loop for 450 ms after a burst of batch upserts; now about
100 ms at most). Cycles made later (asyncio tasks, exceptions) are still collected.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG = 10_000
OLDER = (10, 2500)


def tune() -> None:
    """Called once at process start, before the store loads."""
    gc.set_threshold(YOUNG, *OLDER)


def freeze_startup() -> None:
    """Called once the store and services are up: collect once, then exempt every survivor."""
    gc.collect()
    gc.freeze()


@contextmanager
def paused() -> Iterator[None]:
    """No cyclic collection inside: for loading the store, whose JSON trees hold no cycles. Young
    collections there would walk every document loaded so far again and again (half the load time of
    20,000 entities)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


FREEZE_LOADED = 10_000  # entities; below this a collection pass over them costs little


def freeze_loaded(count: int) -> None:
    """After a large load (inside ``paused``): exempt what exists now from collection at once. Left
    young, the loaded documents would all be walked by the first young collection after the load
    (1.2 s for 100,000 benchmark entities, the whole ``freeze_startup`` pass). A small load is left to
    ``freeze_startup``: freezing in a process that opens many small stores (the tests) would keep
    the cycles of earlier work alive for good."""
    if count >= FREEZE_LOADED:
        gc.freeze()
