"""Timestamps as the broker stores them: ISO 8601, UTC, millisecond precision, ``Z`` suffix.

One fixed format keeps stored timestamps comparable as plain strings in both stores.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

_ISO = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$")


_SECOND: list[Any] = [-1, ""]  # the last whole second formatted, and its text up to the "."


def now_iso() -> str:
    """The current time in the stored form; the date and time of day are formatted once a second
    (``strftime`` per call was a visible cost at thousands of writes and notifications a second)."""
    t = time.time()
    second = int(t)
    if second != _SECOND[0]:
        _SECOND[1] = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        _SECOND[0] = second
    return f"{_SECOND[1]}{int((t - second) * 1000):03d}Z"


def format_iso(dt: datetime) -> str:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> datetime:
    """Parse an NGSI-LD DateTime; raise ValueError when it is not one."""
    if not isinstance(text, str) or not _ISO.match(text):
        raise ValueError(f"not an ISO 8601 date-time: {text!r}")
    t = text
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    frac = re.search(r"\.(\d+)", t)
    if frac and len(frac.group(1)) > 6:  # Python parses at most microseconds
        t = t.replace(frac.group(0), "." + frac.group(1)[:6])
    dt = datetime.fromisoformat(t)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt


_CANONICAL = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
_MONTH_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@lru_cache(maxsize=8192)
def _normalize_parsed(text: str) -> str:
    return format_iso(parse_iso(text))


CHECKED_ISO: dict[str, str] = {}  # text → canonical form, for texts already checked (bounded)


def normalize_iso(text: str) -> str:
    """Canonical stored form of a client-supplied date-time (raises ValueError if invalid).

    Text already in the canonical form (what the broker itself emits, and most clients send) is
    range-checked by slicing instead of parsed: this runs for every ``observedAt`` written, and
    the same few timestamps recur across a batch, so checked texts are remembered.
    """
    hit = CHECKED_ISO.get(text) if type(text) is str else None
    if hit is not None:
        return hit
    out = _normalize(text)
    if len(CHECKED_ISO) >= 4096:
        CHECKED_ISO.clear()
    CHECKED_ISO[text] = out
    return out


def _normalize(text: str) -> str:
    if isinstance(text, str) and _CANONICAL.match(text):
        month, day = int(text[5:7]), int(text[8:10])
        if (1 <= month <= 12 and 1 <= day <= _MONTH_DAYS[month] and int(text[11:13]) < 24
                and int(text[14:16]) < 60 and int(text[17:19]) < 60):
            if month != 2 or day < 29:
                return text
    if not isinstance(text, str):
        raise ValueError(f"not an ISO 8601 date-time: {text!r}")
    return _normalize_parsed(text)  # devices repeat timestamps: one parse per distinct text
