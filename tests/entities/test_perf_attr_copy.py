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


def _frag(**attrs: list[dict]) -> dict:
    return {"attrs": {V + k: v for k, v in attrs.items()}}


@pytest.mark.parametrize("op", ["append", "append_keep", "update_attrs", "merge", "merge_null", "replace",
                                "add_type", "prune"])
async def test_whole_entity_writes_leave_the_old_entity_alone(store: Store, op: str) -> None:
    """Whole-entity mutations work on ``frame_copy`` (new containers, shared instances; a replacement on a
    shallow copy, as it swaps every container): the entity the store handed out before the write must
    stay exactly as it was, and so must the request fragment, except the one a replacement takes over."""
    svc = EntityService(store, EventBus())
    await svc.create(DEFAULT_TENANT, _entity())
    old = await store.get_entity(DEFAULT_TENANT, EID)
    assert old is not None
    snapshot = orjson.dumps(old)
    sub_frag = {"type": "Property", "value": 7, "subs": {V + "acc": {"type": "Property", "value": 0.9}}}
    frag = _frag(t=[sub_frag], h=[{"type": "Property", "value": 3, "datasetId": "urn:d:2"}],
                 n=[{"type": "Property", "value": "new"}])
    frag_snapshot = orjson.dumps(frag)
    if op == "append":
        await svc.append(DEFAULT_TENANT, EID, frag)
    elif op == "append_keep":
        await svc.append(DEFAULT_TENANT, EID, frag, no_overwrite=True)
    elif op == "update_attrs":
        await svc.update_attrs(DEFAULT_TENANT, EID, frag)
    elif op == "merge":
        await svc.merge(DEFAULT_TENANT, EID, _frag(t=[{"subs": {V + "acc": {"value": 0.1}}}]))
    elif op == "merge_null":
        await svc.merge(DEFAULT_TENANT, EID, _frag(h=[{"type": "Property", "value": "urn:ngsi-ld:null",
                                                      "datasetId": "urn:d:2"}]))
    elif op == "replace":
        await svc.replace(DEFAULT_TENANT, EID, {"id": EID, "type": [V + "Room"], **frag})
    elif op == "add_type":
        await svc.append(DEFAULT_TENANT, EID, {"type": [V + "Hall"], "scope": ["/b"], "attrs": {}})
    else:
        await svc.modify(DEFAULT_TENANT, EID, lambda e, now: {k for k in list(e["attrs"]) if e["attrs"].pop(k)})
    assert orjson.dumps(old) == snapshot
    if op != "replace":  # a replacement takes its entity over (replace_mutation); the others copy
        assert orjson.dumps(frag) == frag_snapshot
    new = await store.get_entity(DEFAULT_TENANT, EID)
    assert new is not None and new["_v"] == old["_v"] + 1
    attrs = new["attrs"]
    t, h = attrs.get(V + "t"), attrs.get(V + "h")
    expected = {
        "append": lambda: t[0]["value"] == 7 and t[0]["subs"][V + "acc"]["value"] == 0.9
        and [i["value"] for i in h] == [1, 3] and attrs[V + "n"][0]["value"] == "new",
        "append_keep": lambda: t[0]["value"] == {"deep": [1, 2]} and V + "n" in attrs,
        "update_attrs": lambda: t[0]["value"] == 7 and [i["value"] for i in h] == [1, 3],
        "merge": lambda: t[0]["value"] == {"deep": [1, 2]} and t[0]["subs"][V + "acc"]["value"] == 0.1,
        "merge_null": lambda: [i["value"] for i in h] == [1],
        "replace": lambda: t[0]["value"] == 7 and [i["value"] for i in h] == [3] and V + "other" not in attrs,
        "add_type": lambda: new["type"] == [V + "Room", V + "Hall"] and new["scope"] == ["/b"],
        "prune": lambda: attrs == {},
    }[op]
    assert expected()
    if op in ("append", "update_attrs", "replace"):
        # createdAt survives from the instance replaced, modifiedAt moves; sub-attributes too
        assert t[0]["createdAt"] == T0 and t[0]["modifiedAt"] > T0
        assert t[0]["subs"][V + "acc"]["createdAt"] == T0
        if op == "replace":  # it stored the instances it was given, their timestamps set in place
            assert frag["attrs"][V + "t"][0]["createdAt"] == T0
        else:  # append and update store copies of the fragment's instances
            assert t[0] is not frag["attrs"][V + "t"][0]
