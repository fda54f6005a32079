"""Literal classification and date-time normalisation shared by the parser, evaluator and compiler."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

from broker.errors import BadRequestData
from broker.query.ast import Value

NUMBER_RE = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")
DATETIME_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?")
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
TIME_RE = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?Z?")


@lru_cache(maxsize=4096)
def normalize_datetime(text: str) -> str | None:
    """Canonical UTC form ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` of an ISO date-time, else None.

    Stored timestamps have millisecond precision and users write any precision and offset, so the
    comparison has to happen on one canonical spelling; microseconds keep the order of both.
    """
    if not DATETIME_RE.fullmatch(text):
        return None
    body = text.replace(",", ".")
    # fromisoformat (3.11) accepts only 3 or 6 fractional digits: pad/truncate to 6.
    m = re.match(r"(.*T\d{2}:\d{2}:\d{2})\.(\d+)(.*)", body)
    if m:
        body = f"{m.group(1)}.{(m.group(2) + '000000')[:6]}{m.group(3)}"
    try:
        parsed = datetime.fromisoformat(body)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def classify_unquoted(text: str) -> Value:
    """Kind of an unquoted q literal: number, boolean, date-time, date, time, URI or plain string."""
    if text == "true":
        return Value("boolean", True)
    if text == "false":
        return Value("boolean", False)
    if NUMBER_RE.fullmatch(text):
        if any(c in text for c in ".eE"):
            return Value("number", float(text))
        try:
            number = int(text)
        except ValueError:  # beyond Python's 4300-digit limit for int(): no real attribute holds it
            raise BadRequestData(f"Number too long in query: {text[:20]}...") from None
        if not -(2**63) <= number < 2**63:  # stored integers fit 64 bits; MongoDB takes no larger operand
            return Value("number", float(number))
        return Value("number", number)
    if normalize_datetime(text) is not None:
        return Value("datetime", text)
    if DATE_RE.fullmatch(text):
        return Value("date", text)
    if TIME_RE.fullmatch(text):
        return Value("time", text)
    if ":" in text:
        return Value("uri", text)
    return Value("string", text)


def is_datetime_literal(value: Value) -> bool:
    """True when the evaluator compares this literal as a date-time (canonicalised), not raw."""
    return isinstance(value.value, str) and normalize_datetime(value.value) is not None
