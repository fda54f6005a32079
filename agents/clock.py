"""The server time of measures, read once per millisecond.

Every measure needs "now" twice (``observedAt`` when the device sends no ``TimeInstant``, and the
``createdAt``/``modifiedAt`` of the write), both at millisecond precision. Under load several measures
arrive per millisecond: they share one ``datetime`` object and its ISO text instead of formatting it
each time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from agents.jexl import iso_string

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_last: tuple[int, datetime, str] = (-1, _EPOCH, "")


def _tick() -> tuple[int, datetime, str]:
    global _last
    ms = time.time_ns() // 1_000_000
    if ms != _last[0]:
        dt = _EPOCH + timedelta(milliseconds=ms)
        _last = (ms, dt, iso_string(dt))
    return _last


def now() -> datetime:
    """UTC now, truncated to the millisecond (the same object within one millisecond)."""
    return _tick()[1]


def now_iso() -> str:
    """``now()`` as ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    return _tick()[2]


def iso_of(dt: datetime) -> str:
    """``iso_string(dt)``, free when ``dt`` is the current ``now()``."""
    last = _last
    return last[2] if dt is last[1] else iso_string(dt)
