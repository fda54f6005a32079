"""Stored timestamps: one canonical form, invalid dates refused (also on the fast path)."""

from __future__ import annotations

import pytest

from broker.timeutil import normalize_iso


@pytest.mark.parametrize(("given", "stored"), [
    ("2024-01-01T00:00:00.000Z", "2024-01-01T00:00:00.000Z"),
    ("2024-02-29T10:00:00.123Z", "2024-02-29T10:00:00.123Z"),
    ("2024-01-01T10:00:00Z", "2024-01-01T10:00:00.000Z"),
    ("2024-01-01T10:00:00.5+02:00", "2024-01-01T08:00:00.500Z"),
    ("2024-01-01T10:00", "2024-01-01T10:00:00.000Z"),
])
def test_normalize(given: str, stored: str) -> None:
    assert normalize_iso(given) == stored


@pytest.mark.parametrize("bad", ["2023-02-29T10:00:00.000Z", "2024-13-01T00:00:00.000Z",
                                 "2024-01-32T00:00:00.000Z", "2024-01-01T24:00:00.000Z",
                                 "2024-01-01T10:60:00.000Z", "yesterday", "", "2024-01-01"])
def test_invalid(bad: str) -> None:
    with pytest.raises(ValueError):
        normalize_iso(bad)
