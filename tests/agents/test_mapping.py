"""Measure → NGSI-LD mapping, checked against iotagent-node-lib ``test/unit/ngsi-ld/examples/contextRequests``.

Each expected body is re-typed from the fixture named in the test, without its ``@context``. Device
configurations are those of the lib's tests (``types`` in ``active-devices-test.js``,
``jexlBasedTransformations-test.js``, ``multientity-plugin_test.js``, ``value-types-test.js``); those tests
run with the timestamp flag off unless stated.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agents.errors import BadGeocoordinates, BadTimestamp, TypeNotFound
from agents.mapping import (
    DeviceProfile,
    build_entities,
    command_attributes,
    command_entity,
    convert_attribute,
    effective_device,
    geo_value,
    ngsi_ld_id,
    parse_iso8601,
)

FROZEN = datetime.fromtimestamp(1438760101.468, UTC)  # 2015-08-05T07:35:01.468Z, the lib's timekeeper
FROZEN_ISO = "2015-08-05T07:35:01.468Z"


def profile(device_id: str, entity_type: str, timestamp: bool = False, **kw: Any) -> DeviceProfile:
    return effective_device({"device_id": device_id, "entity_type": entity_type, "timestamp": timestamp, **kw})


def p(value: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, **extra}


LAMP_STATICS = [
    {"name": "controlledAsset", "type": "Relationship", "value": "urn:ngsi-ld:Building:001"},
    {"name": "controlledProperty", "type": "Property", "value": "StaticValue",
     "metadata": {"includes": {"type": "Property", "value": "bell"}}},
]
LAMP_ACTIVE = [{"name": "luminosity", "type": "Number", "metadata": {"unitCode": {"type": "Property", "value": "CAL"}}}]


# --- active-devices-test.js ------------------------------------------------------------------------


def test_update_context() -> None:  # updateContext.json
    out = build_entities(profile("light1", "Light"), {"state": True, "dimming": 87})
    assert out == [{"id": "urn:ngsi-ld:Light:light1", "type": "Light", "state": p(True), "dimming": p(87)}]


def test_timestamp_flag_uses_server_time() -> None:  # updateContextTimestamp.json
    out = build_entities(profile("light1", "Light", True), {"state": True, "dimming": 87}, now=FROZEN)
    assert out == [{"id": "urn:ngsi-ld:Light:light1", "type": "Light",
                    "state": p(True, observedAt=FROZEN_ISO), "dimming": p(87, observedAt=FROZEN_ISO)}]


def test_timezone_does_not_change_observed_at() -> None:  # updateContextTimestampTimezone.json
    dev = profile("light1", "Light", True, timezone="America/Los_Angeles")
    out = build_entities(dev, {"state": True, "dimming": 87}, now=FROZEN)
    assert out[0]["dimming"]["observedAt"] == FROZEN_ISO


@pytest.mark.parametrize(
    ("instant", "observed"),
    [("2015-12-14T08:06:01.468Z", "2015-12-14T08:06:01.468Z"),  # updateContextTimestampOverride.json
     ("2022-10-22T22:22:22Z", "2022-10-22T22:22:22.000Z"),  # ...OverrideWithoutMilis.json
     ("2015-12-14T09:06:01.468+01:00", "2015-12-14T08:06:01.468Z")],
)
def test_time_instant_measure_overrides(instant: str, observed: str) -> None:
    for tz in (None, "America/Los_Angeles"):
        dev = profile("light1", "Light", True, timezone=tz)
        out = build_entities(dev, {"state": True, "TimeInstant": instant}, now=FROZEN)
        assert out == [{"id": "urn:ngsi-ld:Light:light1", "type": "Light", "state": p(True, observedAt=observed)}]


def test_bad_time_instant_is_bad_timestamp() -> None:
    dev = profile("light1", "Light", True)
    with pytest.raises(BadTimestamp) as info:
        build_entities(dev, {"state": "true", "TimeInstant": "2018-10-05T11:03:56 00:00Z"})
    assert info.value.to_body()["name"] == "BAD_TIMESTAMP" and info.value.status == 400
    # doc/api.md variant: fall back to the server time
    out = build_entities(dev, {"state": True, "TimeInstant": "yesterday"}, now=FROZEN, strict_timestamp=False)
    assert out[0]["state"]["observedAt"] == FROZEN_ISO


def test_time_instant_dropped_when_flag_off() -> None:  # updateContextExpressionPlugin34.json
    dev = effective_device({"device_id": "gps1"}, {
        "apikey": "k", "resource": "/iot/d", "entity_type": "GPS", "explicitAttrs": True, "timestamp": False,
        "attributes": [{"name": "location", "type": "geo:json", "expression": "{coordinates: [lon,lat], type: 'Point'}"}],
    })
    out = build_entities(dev, {"lat": 52, "lon": 13, "TimeInstant": "2015-08-05T07:35:01.468+00:00"})
    assert out == [{"id": "urn:ngsi-ld:GPS:gps1", "type": "GPS",
                    "location": {"type": "GeoProperty", "value": {"coordinates": [13, 52], "type": "Point"}}}]
    # bad timestamps are not even looked at with the flag off
    assert build_entities(dev, {"lat": 1, "lon": 2, "TimeInstant": "junk"})


def test_static_attributes() -> None:  # updateContextStaticAttributes.json
    dev = profile("motion1", "Motion", static_attributes=[{"name": "location", "type": "geo:point", "value": "153,523"}],
                  attributes=[{"name": "humidity", "type": "percentage"}])
    out = build_entities(dev, {"moving": True})
    assert out == [{"id": "urn:ngsi-ld:Motion:motion1", "type": "Motion", "moving": p(True),
                    "location": {"type": "GeoProperty", "value": {"coordinates": [153, 523], "type": "Point"}}}]


def test_static_attributes_with_metadata() -> None:  # updateContextStaticAttributesMetadata.json
    dev = profile("lamp1", "Lamp", static_attributes=LAMP_STATICS, attributes=LAMP_ACTIVE)
    out = build_entities(dev, {"luminosity": "100"})
    assert out == [{
        "id": "urn:ngsi-ld:Lamp:lamp1", "type": "Lamp",
        "controlledProperty": p("StaticValue", includes=p("bell")),
        "controlledAsset": {"type": "Relationship", "object": "urn:ngsi-ld:Building:001"},
        "luminosity": p(100, unitCode="CAL"),
    }]


def test_static_linked_attributes() -> None:  # updateContextStaticLinkedAttributes.json
    statics = [dict(LAMP_STATICS[0], link={"attributes": ["luminosity"], "name": "providedBy", "type": "Building"}),
               LAMP_STATICS[1]]
    dev = profile("lamp1", "Lamp", static_attributes=statics, attributes=LAMP_ACTIVE)
    lum = p(87, unitCode="CAL", providedBy={"type": "Relationship", "object": "urn:ngsi-ld:Lamp:lamp1"})
    assert build_entities(dev, {"luminosity": 87}) == [
        {"id": "urn:ngsi-ld:Lamp:lamp1", "type": "Lamp",
         "controlledAsset": {"type": "Relationship", "object": "urn:ngsi-ld:Building:001"},
         "controlledProperty": p("StaticValue", includes=p("bell")), "luminosity": lum},
        {"id": "urn:ngsi-ld:Building:001", "type": "Building", "luminosity": lum},
    ]


# --- attribute types ----------------------------------------------------------------------------------

LIGHT_VALUE_TYPES = [
    {"object_id": "p", "name": "pressure", "type": "Number"},
    {"object_id": "e", "name": "consumption", "type": "Number"},
    {"object_id": "a", "name": "alive", "type": "Property"},
    {"object_id": "u", "name": "updated", "type": "Boolean"},
    {"object_id": "m", "name": "manufacturer", "type": "Object"},
    {"object_id": "r", "name": "revisions", "type": "Array"},
    {"object_id": "d", "name": "date", "type": "Date"},
    {"object_id": "t", "name": "time", "type": "Time"},
    {"object_id": "dt", "name": "datetime", "type": "DateTime"},
]
VALUE_TYPE_MEASURES = {"e": 1, "a": "foo", "u": False, "m": '{"hello": "world"}', "r": "[1,2]",
                       "d": "2025-07-18", "t": "14:22:11Z", "dt": "2025-07-18T14:22:11Z"}


def test_value_type_data_type() -> None:  # updateContextValueType1.json
    dev = profile("ws1", "Light", attributes=LIGHT_VALUE_TYPES)
    out = build_entities(dev, VALUE_TYPE_MEASURES, data_type="valueType")
    assert out == [{
        "id": "urn:ngsi-ld:Light:ws1", "type": "Light",
        "consumption": p(1, valueType="Number"), "alive": p("foo"), "updated": p(False, valueType="Boolean"),
        "manufacturer": p({"hello": "world"}, valueType="Object"), "revisions": p([1, 2], valueType="Array"),
        "date": p("2025-07-18", valueType="Date"), "time": p("14:22:11", valueType="Time"),
        "datetime": p("2025-07-18T14:22:11.000Z", valueType="DateTime"),
    }]


def test_at_type_data_type() -> None:  # updateContextValueType2.json
    dev = profile("ws1", "Light", attributes=LIGHT_VALUE_TYPES)
    out = build_entities(dev, VALUE_TYPE_MEASURES, data_type="@type")
    assert out[0]["consumption"] == p({"@type": "Number", "@value": 1})
    assert out[0]["alive"] == p("foo")
    assert out[0]["datetime"] == p({"@type": "DateTime", "@value": "2025-07-18T14:22:11.000Z"})
    assert out[0]["time"] == p({"@type": "Time", "@value": "14:22:11"})


GEO = [
    ("geo:point", "23, 12.5", {"coordinates": [23, 12.5], "type": "Point"}),  # updateContextGeoproperties1
    ("geo:linestring", "23, 12.5, 22, 12.5",
     {"coordinates": [[23, 12.5], [22, 12.5]], "type": "LineString"}),  # ...2
    ("geo:polygon", "23, 12.5, 22, 13.5, 22, 13.5",
     {"coordinates": [[23, 12.5], [22, 13.5], [22, 13.5]], "type": "Polygon"}),  # ...4 (sic, no ring)
    ("Point", [23, 12.5], {"coordinates": [23, 12.5], "type": "Point"}),
    ("GeoProperty", "23,12.5", {"coordinates": [23, 12.5], "type": "Point"}),
    ("geo:json", {"type": "Point", "coordinates": [1, 2]}, {"type": "Point", "coordinates": [1, 2]}),
    ("MultiPoint", [[1, 2], [3, 4]], {"coordinates": [[1, 2], [3, 4]], "type": "MultiPoint"}),
]


@pytest.mark.parametrize(("attr_type", "value", "expected"), GEO)
def test_geo_properties_keep_coordinate_order(attr_type: str, value: Any, expected: dict) -> None:
    dev = profile("light1", "Light", attributes=[{"name": "location", "type": attr_type}])
    out = build_entities(dev, {"location": value})
    assert out == [{"id": "urn:ngsi-ld:Light:light1", "type": "Light",
                    "location": {"type": "GeoProperty", "value": expected}}]


@pytest.mark.parametrize("value", ["23, 12.5, 22", "23, abc", [1, 2, 3]])
def test_bad_coordinates(value: Any) -> None:
    dev = profile("light1", "Light", attributes=[{"name": "location", "type": "geo:point"}])
    with pytest.raises(BadGeocoordinates) as info:
        build_entities(dev, {"location": value})
    assert info.value.to_body()["name"] == "BAD_GEOCOORDINATES"
    with pytest.raises(ValueError):
        geo_value("Point", "1,2,3")


@pytest.mark.parametrize(
    ("attr_type", "value", "expected"),
    [
        ("Relationship", "urn:ngsi-ld:Building:1", {"type": "Relationship", "object": "urn:ngsi-ld:Building:1"}),
        ("LanguageProperty", {"en": "hi", "es": "hola"}, {"type": "LanguageProperty", "languageMap": {"en": "hi", "es": "hola"}}),
        ("VocabProperty", "Bus", {"type": "VocabProperty", "vocab": "Bus"}),
        ("JsonProperty", {"a": [1]}, {"type": "JsonProperty", "json": {"a": [1]}}),
        ("ListProperty", [1, 2], {"type": "ListProperty", "listValue": [1, 2]}),
        ("ListRelationship", ["urn:a", "urn:b"], {"type": "ListRelationship", "listObject": ["urn:a", "urn:b"]}),
        ("Text", 12, p(12)),
        ("Number", "12.50", p(12.5)),
        ("Number", "12", p(12)),
        ("Integer", "12.7", p(12)),
        ("Float", "3", p(3)),
        ("Boolean", 1, p(True)),
        ("Boolean", "false", p(False)),
        ("Boolean", 0, p(False)),
        ("Object", "not json", p("not json")),
        ("Array", [1], p([1])),
        ("DateTime", 1438760101468, p(FROZEN_ISO)),
        ("Date", "2025-07-18T23:59:59Z", p("2025-07-18")),
        ("centigrades", "21", p("21")),
    ],
)
def test_type_table(attr_type: str, value: Any, expected: dict) -> None:
    assert convert_attribute(attr_type, value) == expected


@pytest.mark.parametrize(
    ("attr_type", "value"),
    [("Number", "abc"), ("Number", None), ("Text", float("nan")), ("Integer", "x"), ("DateTime", "not a date"),
     ("Float", [1, 2])],
)
def test_unsendable_values_are_dropped(attr_type: str, value: Any) -> None:
    assert convert_attribute(attr_type, value) is None


# --- expressions (jexlBasedTransformations-test.js) -----------------------------------------------

LIGHT = [
    {"object_id": "p", "name": "pressure", "type": "Number"},
    {"object_id": "e", "name": "consumption", "type": "Number"},
    {"object_id": "x", "name": "consumption_x", "type": "Number", "expression": "pressure * 20"},
]
WEATHER = [
    {"object_id": "p", "name": "pressure", "type": "Number", "expression": "pressure * 20"},
    {"object_id": "e", "name": "consumption", "type": "Number", "expression": "consumption * 20"},
    {"object_id": "h", "name": "humidity", "type": "Percentage"},
    {"name": "weather", "type": "Summary",
     "expression": '"Humidity " + (humidity / 2) + " and pressure " + (pressure * 20)'},
]


def test_expressions_see_previous_results() -> None:  # updateContextExpressionPlugin13.json
    dev = profile("light1", "Light", attributes=LIGHT)
    expected = [{"id": "urn:ngsi-ld:Light:light1", "type": "Light", "pressure": p(10), "consumption_x": p(200)}]
    assert build_entities(dev, {"p": 10}) == expected
    assert build_entities(dev, {"x": 0.44, "p": 10}) == expected  # the expression wins over the measure


def test_expression_results_feed_later_expressions() -> None:
    dev = profile("ws1", "WeatherStation", attributes=WEATHER)
    out = build_entities(dev, {"p": 52, "h": "12"})  # updateContextExpressionPlugin2-like
    assert out[0]["pressure"] == p(1040)
    assert out[0]["weather"] == p("Humidity 6 and pressure 20800")


def test_absent_variables_skip_the_attribute() -> None:
    # updateContextExpressionPlugin29.json has "weather": "Humidity NaN and pressure 20800"; we skip it instead
    dev = profile("ws1", "WeatherStation", attributes=WEATHER)
    out = build_entities(dev, {"p": "52"})
    assert out == [{"id": "urn:ngsi-ld:WeatherStation:ws1", "type": "WeatherStation", "pressure": p(1040)}]


def test_undefined_properties_and_falsy_results() -> None:  # updateContextExpressionPlugin31.json
    dev = profile("ws1", "WeatherStation", attributes=[
        {"object_id": "u", "name": "undef", "type": "json", "expression": 'u["no"]'},
        {"object_id": "n", "name": "nil", "type": "json", "expression": 'u["no"]?u["no"]:null'},
        {"object_id": "f", "name": "falsy", "type": "Boolean", "expression": 'u["no"]?u["no"]:false'},
        {"object_id": "z", "name": "zero", "type": "Number", "expression": 'u["no"]?u["no"]:0'},
    ])
    assert build_entities(dev, {"u": "{}"}) == [
        {"id": "urn:ngsi-ld:WeatherStation:ws1", "type": "WeatherStation", "falsy": p(False), "zero": p(0)}]


def test_invalid_expression_nulls_the_attribute() -> None:  # LightError: 'pressure * / 20'
    dev = profile("light1", "Light", attributes=[
        {"object_id": "p", "name": "pressure", "type": "Number", "expression": "pressure * / 20"}])
    assert build_entities(dev, {"p": 10, "other": 1}) == [
        {"id": "urn:ngsi-ld:Light:light1", "type": "Light", "other": p(1)}]


def test_computed_time_instant_and_explicit_attrs() -> None:  # updateContextExpressionPlugin32/33.json
    attrs = [{"name": "location", "type": "geo:json", "expression": "{coordinates: [lon,lat], type: 'Point'}"},
             {"name": "TimeInstant", "type": "DateTime", "expression": "ts|toisodate"}]
    geo = {"type": "GeoProperty", "value": {"coordinates": [13, 52], "type": "Point"}}
    dev = profile("gps1", "GPS", attributes=attrs, explicitAttrs=True)
    assert build_entities(dev, {"lat": 52, "lon": 13, "ts": 1}) == [{"id": "urn:ngsi-ld:GPS:gps1", "type": "GPS", "location": geo}]
    dev = profile("gps1", "GPS", True, attributes=attrs[:1], explicitAttrs=True)
    assert build_entities(dev, {"lat": 52, "lon": 13, "ts": 1}, now=FROZEN) == [
        {"id": "urn:ngsi-ld:GPS:gps1", "type": "GPS", "location": dict(geo, observedAt=FROZEN_ISO)}]
    dev = profile("gps1", "GPS", True, attributes=attrs, explicitAttrs=True)
    out = build_entities(dev, {"lat": 52, "lon": 13, "ts": 1438760101468}, now=datetime(2020, 1, 1, tzinfo=UTC))
    assert out[0]["location"]["observedAt"] == FROZEN_ISO
    assert "TimeInstant" not in out[0]


def test_skip_value() -> None:
    dev = profile("d1", "T", attributes=[
        {"object_id": "t", "name": "temperature", "type": "Number", "expression": "t > 100 ? 'skip' : t",
         "skipValue": "skip"},
        {"object_id": "h", "name": "humidity", "type": "Number", "expression": "h?h*2:null"},
    ])
    assert build_entities(dev, {"t": 500, "h": 2}) == [{"id": "urn:ngsi-ld:T:d1", "type": "T", "humidity": p(4)}]
    assert build_entities(dev, {"t": 20}) == [{"id": "urn:ngsi-ld:T:d1", "type": "T", "temperature": p(20)}]
    # h: 0 → null, skipped; temperature is null too but its skipValue is "skip", so (as in the lib) it
    # still counts and the entity goes out with no attributes
    assert build_entities(dev, {"h": 0}) == [{"id": "urn:ngsi-ld:T:d1", "type": "T"}]
    dev.attributes = dev.attributes[1:]
    assert build_entities(dev, {"h": 0}) == []


def test_alias_and_id_type_measures() -> None:
    dev = profile("d1", "T", attributes=[{"object_id": "t", "name": "temperature", "type": "Number"}])
    out = build_entities(dev, {"t": "21.5", "id": "x", "type": "y", "extra": "e"})
    assert out == [{"id": "urn:ngsi-ld:T:d1", "type": "T", "temperature": p(21.5),
                    "measure_id": p("x"), "measure_type": p("y"), "extra": p("e")}]


# --- explicitAttrs ---------------------------------------------------------------------------------

EXPLICIT_ATTRS = [
    {"object_id": "t", "name": "temperature", "type": "Number"},
    {"object_id": "h", "name": "humidity", "type": "Number"},
]
EXPLICIT_STATIC = [{"name": "site", "type": "Text", "value": "S1"}]


@pytest.mark.parametrize(
    ("explicit", "keys"),
    [
        (False, {"temperature", "humidity", "site", "other"}),
        (True, {"temperature", "humidity", "site"}),
        ("['temperature']", {"temperature"}),
        (["temperature", "site"], {"temperature", "site"}),
        ("['site', {object_id:'h'}]", {"site", "humidity"}),
        ("t > 20 ? ['temperature'] : true", {"temperature"}),
        ("t > 50 ? ['temperature'] : true", {"temperature", "humidity", "site"}),
        ("nosuchvar", {"temperature", "humidity", "site", "other"}),  # null → default (false)
        ("['other']", set()),  # undefined measures are never sent with a list
    ],
)
def test_explicit_attrs(explicit: Any, keys: set[str]) -> None:
    dev = profile("d1", "T", attributes=EXPLICIT_ATTRS, static_attributes=EXPLICIT_STATIC, explicitAttrs=explicit)
    out = build_entities(dev, {"t": 30, "h": 50, "other": 1})
    assert (set(out[0]) - {"id", "type"} if out else set()) == keys


# --- entity names and multi-entity (multientity-plugin_test.js) -------------------------------------

WEATHER_MULTI = [
    {"object_id": "p", "name": "pressure", "type": "Hgmm"},
    {"object_id": "h", "name": "humidity", "type": "Percentage", "entity_name": "Higro2000", "entity_type": "Higrometer"},
]


def test_multientity() -> None:  # updateContextMultientityPlugin1.json
    dev = profile("ws4", "WeatherStation", attributes=WEATHER_MULTI)
    assert build_entities(dev, {"p": "52", "h": "12"}) == [
        {"id": "urn:ngsi-ld:WeatherStation:ws4", "type": "WeatherStation", "pressure": p("52")},
        {"id": "urn:ngsi-ld:Higrometer:Higro2000", "type": "Higrometer", "humidity": p("12")},
    ]


def test_multientity_name_expression() -> None:  # updateContextMultientityPlugin3.json
    attrs = [WEATHER_MULTI[0], {"object_id": "h", "name": "humidity", "type": "Percentage",
                                "entity_name": '"Station Number "+sn*10'}]
    dev = profile("ws4", "WeatherStation", attributes=attrs)
    assert build_entities(dev, {"p": "52", "h": "12", "sn": 5}) == [
        {"id": "urn:ngsi-ld:WeatherStation:ws4", "type": "WeatherStation", "pressure": p("52"), "sn": p(5)},
        {"id": "urn:ngsi-ld:WeatherStation:Station Number 50", "type": "WeatherStation", "humidity": p("12")},
    ]


def test_multientity_timestamps() -> None:  # updateContextMultientityTimestampPlugin1/3.json
    dev = profile("ws4", "WeatherStation", True, attributes=WEATHER_MULTI)
    out = build_entities(dev, {"p": "52", "h": "12", "TimeInstant": "2016-05-30T16:25:22.304Z"}, now=FROZEN)
    assert out[0]["pressure"] == p("52", observedAt="2016-05-30T16:25:22.304Z")
    assert out[1]["humidity"]["observedAt"] == "2016-05-30T16:25:22.304Z"  # the lib uses server time here
    out = build_entities(dev, {"h": "16", "TimeInstant": "2018-06-13T13:28:34.611Z"}, now=FROZEN)
    assert out == [
        {"id": "urn:ngsi-ld:WeatherStation:ws4", "type": "WeatherStation"},
        {"id": "urn:ngsi-ld:Higrometer:Higro2000", "type": "Higrometer",
         "humidity": p("16", observedAt="2018-06-13T13:28:34.611Z")},
    ]


def test_same_attribute_name_in_several_entities() -> None:
    attrs = [{"type": "number", "name": "vol", "object_id": f"cont{i}", "entity_name": f"SO{i}", "entity_type": "WM"}
             for i in (1, 2, 3)]
    dev = profile("s1", "Sensor", attributes=attrs)
    out = build_entities(dev, {"cont1": "38763", "cont3": "3"})
    assert out == [{"id": "urn:ngsi-ld:WM:SO1", "type": "WM", "vol": p(38763)},
                   {"id": "urn:ngsi-ld:WM:SO3", "type": "WM", "vol": p(3)}]


def test_entity_names() -> None:
    assert ngsi_ld_id("light1", "Light") == "urn:ngsi-ld:Light:light1"
    assert ngsi_ld_id("urn:ngsi-ld:Other:x", "Light") == "urn:ngsi-ld:Other:x"
    dev = profile("dev1", "T", entity_name="MyName")
    assert build_entities(dev, {"a": 1})[0]["id"] == "urn:ngsi-ld:T:MyName"
    dev = profile("dev1", "T", entity_name="urn:ngsi-ld:T:full")
    assert build_entities(dev, {"a": 1})[0]["id"] == "urn:ngsi-ld:T:full"


def test_entity_name_exp_comes_from_the_group() -> None:
    group = {"apikey": "k", "resource": "/iot/json", "entity_type": "Meter", "entityNameExp": "id + '__' + sn"}
    dev = effective_device({"device_id": "m1", "timestamp": False}, group)
    assert build_entities(dev, {"sn": "A7", "v": 1})[0]["id"] == "urn:ngsi-ld:Meter:m1__A7"
    # failing expression: keep the device's name
    assert build_entities(dev, {"v": 1})[0]["id"] == "urn:ngsi-ld:Meter:m1"


def test_multimeasure_keeps_order_and_repeats_ids() -> None:
    dev = profile("d1", "T", True)
    out = build_entities(dev, [{"t": 1, "TimeInstant": "2020-01-01T00:00:00Z"}, {"t": 2}], now=FROZEN)
    assert [e["t"] for e in out] == [p(1, observedAt="2020-01-01T00:00:00.000Z"), p(2, observedAt=FROZEN_ISO)]
    assert out[0]["id"] == out[1]["id"]


def test_explicit_true_with_nothing_known_sends_nothing() -> None:
    dev = profile("d1", "T", attributes=EXPLICIT_ATTRS, explicitAttrs=True)
    assert build_entities(dev, {"unknown": 1}) == []


def test_metadata_expression() -> None:
    dev = profile("d1", "T", attributes=[{"object_id": "t", "name": "temperature", "type": "Number",
                                          "metadata": {"unitCode": {"type": "Text", "value": "CEL"},
                                                       "accuracy": {"type": "Number", "expression": "t / 100"}}}])
    assert build_entities(dev, {"t": 20}) == [{"id": "urn:ngsi-ld:T:d1", "type": "T",
                                              "temperature": p(20, unitCode="CEL", accuracy=p(0.2))}]


# --- effective device ------------------------------------------------------------------------------


def test_effective_device_merges_group() -> None:
    group = {"apikey": "k", "resource": "/iot/d", "entity_type": "Thing", "timestamp": False, "explicitAttrs": True,
             "attributes": [{"object_id": "t", "name": "temperature", "type": "Number"},
                            {"object_id": "h", "name": "humidity", "type": "Number"}],
             "static_attributes": [{"name": "site", "type": "Text", "value": "G"}],
             "commands": [{"name": "ping", "type": "command"}]}
    device = {"device_id": "d1", "attributes": [{"object_id": "t", "name": "temp", "type": "Text"}],
              "static_attributes": [{"name": "site", "type": "Text", "value": "D"}], "explicitAttrs": False}
    dev = effective_device(device, group, service="smart", subservice="/gardens")
    assert dev.entity_type == "Thing" and dev.timestamp is False and dev.explicit_attrs is False
    assert [(a["object_id"], a["name"]) for a in dev.attributes] == [("t", "temp"), ("h", "humidity")]
    assert [s["value"] for s in dev.static_attributes] == ["D"]
    assert dev.commands == [{"name": "ping", "type": "command", "object_id": "ping"}]
    assert (dev.service, dev.subservice, dev.entity_id) == ("smart", "/gardens", "urn:ngsi-ld:Thing:d1")
    assert effective_device({"device_id": "x", "entity_type": "T"}).timestamp is True  # default true


def test_effective_device_accepts_models() -> None:
    from models.iota import ConfigGroup, Device

    dev = effective_device(Device(device_id="d1"), ConfigGroup(apikey="k", resource="/iot/d", entity_type="T"))
    assert dev.entity_type == "T"


def test_effective_device_needs_a_type() -> None:
    with pytest.raises(TypeNotFound):
        effective_device({"device_id": "d1"}, {"apikey": "k", "resource": "/iot/d"})
    with pytest.raises(TypeNotFound):
        effective_device({"entity_type": "T"})


# --- commands (updateContextCommand*.json, updateContextMultientityTimestampPlugin4.json) ------------


def test_command_fragments() -> None:
    assert command_attributes("position", "PENDING") == {"position_status": p("PENDING")}
    assert command_attributes("position", "PENDING", data_type="@type") == {
        "position_status": p({"@type": "commandStatus", "@value": "PENDING"})}
    assert command_attributes("position", "FINISHED", [72, 368, 1]) == {
        "position_status": p("FINISHED"), "position_info": p([72, 368, 1])}
    assert command_attributes("c", "ERROR", "EXPIRED", observed=FROZEN) == {
        "c_status": p("ERROR", observedAt=FROZEN_ISO), "c_info": p("EXPIRED", observedAt=FROZEN_ISO)}


def test_command_entity() -> None:
    dev = profile("sensorCommand", "SensorCommand", True, commands=[{"name": "PING", "type": "command"}])
    assert command_entity(dev, "PING", "OK", "1234567890", now=FROZEN) == {
        "id": "urn:ngsi-ld:SensorCommand:sensorCommand", "type": "SensorCommand",
        "PING_status": p("OK", observedAt=FROZEN_ISO), "PING_info": p("1234567890", observedAt=FROZEN_ISO)}


# --- ISO 8601 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "iso"),
    [("2015-08-05T07:35:01.468Z", FROZEN_ISO), ("2015-08-05", "2015-08-05T00:00:00.000Z"),
     ("20160125T092703Z", "2016-01-25T09:27:03.000Z"), ("2015-08-05T09:35:01.468+0200", FROZEN_ISO),
     ("2015-08-05 07:35", "2015-08-05T07:35:00.000Z")],
)
def test_parse_iso8601(text: str, iso: str) -> None:
    from agents.jexl import iso_string

    parsed = parse_iso8601(text)
    assert parsed is not None and iso_string(parsed) == iso


@pytest.mark.parametrize("text", ["2018-10-05T11:03:56 00:00Z", "2015-13-01", "yesterday", "", "2015-08-05T25:00", 5])
def test_parse_iso8601_rejects(text: Any) -> None:
    assert parse_iso8601(text) is None
