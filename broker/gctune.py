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

YOUNG = 10_000
OLDER = (10, 2500)


def tune() -> None:
    """Called once at process start, before the store loads."""
    gc.set_threshold(YOUNG, *OLDER)


def freeze_startup() -> None:
    """Called once the store and services are up: collect once, then exempt every survivor."""
    gc.collect()
    gc.freeze()
