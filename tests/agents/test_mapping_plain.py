"""The fast mapping of plain devices (``_build_plain``) gives exactly what the general mapping gives."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agents.errors import IotaError
from agents.mapping import DeviceProfile, _build_group, _build_plain, _plan, build_entities

NOW = datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)

DEVICES = [
    DeviceProfile("d1", "Thing"),
    DeviceProfile("d2", "Thing", entity_name="urn:ngsi-ld:Thing:custom", timestamp=False),
    DeviceProfile("d3", "Sensor", attributes=[{"object_id": "t", "name": "temperature", "type": "Number"},
                                               {"object_id": "l", "name": "location", "type": "geo:point"},
                                               {"object_id": "b", "name": "on", "type": "Boolean"},
                                               {"name": "humidity", "type": "Integer", "skipValue": None}]),
    DeviceProfile("d4", "Sensor", explicit_attrs=True,
                  attributes=[{"object_id": "t", "name": "temperature", "type": "Number"}]),
    DeviceProfile("d5", "Sensor", attributes=[{"object_id": "t", "name": "a", "type": "Number"},
                                               {"object_id": "t", "name": "b", "type": "Text"},
                                               {"object_id": "x", "name": "t", "type": "Number"}]),
]

MEASURES: list[dict[str, Any]] = [
    {}, {"t": 21.5}, {"t": None}, {"t": "21"}, {"t": 1, "h": 2, "id": "x", "type": "y"},
    {"t": 3, "TimeInstant": "2026-01-01T10:00:00Z"}, {"TimeInstant": "2026-01-01T10:00:00+02:00"},
    {"l": "41.3, 2.1", "b": "false", "humidity": 40}, {"temperature": 5, "t": 6}, {"x": 1, "t": 2, "a": 3},
    {"nested": {"a": [1, 2]}, "list": [1, "2"], "s": "text"}, {"TimeInstant": None, "t": 1},
]


@pytest.mark.parametrize("device", DEVICES, ids=lambda d: d.device_id)
@pytest.mark.parametrize("strict", [True, False])
def test_plain_mapping_equals_general(device: DeviceProfile, strict: bool) -> None:
    plan = _plan(device)
    assert plan is not None
    for measures in MEASURES:
        assert _build_plain(device, plan, measures, NOW, strict, "none") == \
            _build_group(device, measures, NOW, strict, "none"), measures


@pytest.mark.parametrize("bad", [{"TimeInstant": "yesterday", "t": 1}, {"l": "not, a point"}])
def test_plain_mapping_refuses_alike(bad: dict[str, Any]) -> None:
    device = DEVICES[2]
    plan = _plan(device)
    assert plan is not None
    errors = []
    for build in (lambda: _build_plain(device, plan, bad, NOW, True, "none"),
                  lambda: _build_group(device, bad, NOW, True, "none")):
        with pytest.raises(IotaError) as exc:
            build()
        errors.append((type(exc.value), exc.value.message))
    assert errors[0] == errors[1]


def test_general_mapping_kept_for_anything_else() -> None:
    assert _plan(DeviceProfile("d", "T", static_attributes=[{"name": "s", "type": "Text", "value": 1}])) is None
    assert _plan(DeviceProfile("d", "T", attributes=[{"object_id": "t", "name": "t2", "expression": "t*2"}])) is None
    assert _plan(DeviceProfile("d", "T", attributes=[{"object_id": "t", "name": "t", "metadata": {}}])) is None
    assert _plan(DeviceProfile("d", "T", explicit_attrs=["t"])) is None
    assert _plan(DeviceProfile("d", "T", entity_name_exp="id")) is None
    assert _plan(DeviceProfile("d", "T", attributes=[{"object_id": "ts", "name": "TimeInstant"}])) is None
    # multimeasures go through the same path, group by group
    device = DEVICES[2]
    groups = [{"t": 1}, {"t": 2, "TimeInstant": "2026-01-01T10:00:00Z"}]
    assert build_entities(device, groups, now=NOW) == [e for g in groups for e in _build_group(device, g, NOW, True, "none")]
