"""One-attribute writes copy only that attribute (``services.entities.attr_copy``): the entity the store
handed out before the write must stay exactly as it was, on both stores."""

from __future__ import annotations

import orjson
import pytest

from broker.errors import ResourceNotFound
from broker.services.entities import EntityService, attr_copy
from broker.services.events import EventBus
from broker.store.base import DEFAULT_TENANT, Store

V = "https://uri.etsi.org/ngsi-ld/default-context/"
SCOPE = "https://uri.etsi.org/ngsi-ld/scope"
EID = "urn:ngsi-ld:Room:copy"
T0 = "2024-01-01T00:00:00.000Z"


def _inst(value: object, **extra: object) -> dict:
    return {"type": "Property", "value": value, "createdAt": T0, "modifiedAt": T0, **extra}


def _entity() -> dict:
    return {"id": EID, "type": [V + "Room"], "scope": ["/a"], "createdAt": T0, "modifiedAt": T0, "attrs": {
        V + "t": [_inst({"deep": [1, 2]}, subs={V + "acc": _inst(0.5)})],
        V + "h": [_inst(1), _inst(2, datasetId="urn:d:2")],
        V + "other": [_inst([1, 2, 3])],
    }}


@pytest.mark.parametrize("op", ["update", "update_sub", "replace", "delete", "delete_ds", "delete_all",
                                "delete_scope"])
async def test_one_attribute_writes_leave_the_old_entity_alone(store: Store, op: str) -> None:
    svc = EntityService(store, EventBus())
    await svc.create(DEFAULT_TENANT, _entity())
    old = await store.get_entity(DEFAULT_TENANT, EID)
    assert old is not None
    snapshot = orjson.dumps(old)
    if op == "update":
        await svc.update_attr(DEFAULT_TENANT, EID, V + "t", {"value": 5})
    elif op == "update_sub":
        await svc.update_attr(DEFAULT_TENANT, EID, V + "t", {"subs": {V + "acc": {"value": 0.7}}})
    elif op == "replace":
        await svc.replace_attr(DEFAULT_TENANT, EID, V + "h", {"type": "Property", "value": 9})
    elif op == "delete":
        await svc.delete_attr(DEFAULT_TENANT, EID, V + "h")
    elif op == "delete_ds":
        await svc.delete_attr(DEFAULT_TENANT, EID, V + "h", dataset_id="urn:d:2")
    elif op == "delete_all":
        await svc.delete_attr(DEFAULT_TENANT, EID, V + "h", delete_all=True)
    else:
        await svc.delete_attr(DEFAULT_TENANT, EID, SCOPE)
    assert orjson.dumps(old) == snapshot
    new = await store.get_entity(DEFAULT_TENANT, EID)
    assert new is not None and new["_v"] == old["_v"] + 1 and new["modifiedAt"] > T0
    attrs = new["attrs"]
    expected = {
        "update": lambda: attrs[V + "t"][0]["value"] == 5 and attrs[V + "t"][0]["subs"][V + "acc"]["value"] == 0.5,
        "update_sub": lambda: attrs[V + "t"][0]["subs"][V + "acc"]["value"] == 0.7,
        "replace": lambda: [i["value"] for i in attrs[V + "h"]] == [9, 2],
        "delete": lambda: [i["value"] for i in attrs[V + "h"]] == [2],
        "delete_ds": lambda: [i["value"] for i in attrs[V + "h"]] == [1],
        "delete_all": lambda: V + "h" not in attrs,
        "delete_scope": lambda: "scope" not in new,
    }[op]
    assert expected()
    assert attrs[V + "other"] == _entity()["attrs"][V + "other"]


async def test_missing_attribute_is_still_not_found(store: Store) -> None:
    svc = EntityService(store, EventBus())
    await svc.create(DEFAULT_TENANT, _entity())
    with pytest.raises(ResourceNotFound):
        await svc.update_attr(DEFAULT_TENANT, EID, V + "nope", {"value": 1})
    with pytest.raises(ResourceNotFound):
        await svc.delete_attr(DEFAULT_TENANT, EID, V + "nope")


def test_attr_copy_shares_only_what_it_may() -> None:
    e = _entity()
    c = attr_copy(V + "h")(e)
    assert c == e and c is not e and c["attrs"] is not e["attrs"]
    assert c["attrs"][V + "h"] is not e["attrs"][V + "h"]
    assert attr_copy(V + "x")({"id": "urn:x"}) == {"id": "urn:x"}
