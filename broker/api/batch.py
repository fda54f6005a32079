"""/ngsi-ld/v1/entityOperations: batch create, upsert, update, delete and merge (clause 6.14–6.17, 6.31).

The body is a JSON array; each entry is validated on its own, so a bad entry fails only itself.
With ``application/ld+json`` every entity carries its own ``@context``; with ``application/json``
the Link header context applies to all of them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from ..entities.expand import Expander, check_entity_id
from ..errors import BadRequestData, NgsiLdError
from ..jsonld.termmap import TermMap
from ..services.batch import BatchItem, BatchOp, BatchResult
from ..timeutil import now_iso
from .http import JSONLD, check_query_params, json_response, options_param, read_body, tenant_of, term_map
from .keys import BATCH, RESOLVER, SETTINGS
from .reply import Reply

BASE = "/ngsi-ld/v1/entityOperations"
BATCH_PARAMS = frozenset({"options", "local"})
YIELD_EVERY = 100  # entries expanded between turns of the event loop (100 benchmark entities: ~7 ms)


def _raw_id(entry: Any, op: BatchOp) -> str:
    """The id to report a failed entry under ("" when it has none)."""
    if isinstance(entry, dict):
        raw = entry.get("id", entry.get("@id"))
        return raw if isinstance(raw, str) else ""
    return entry if op == "delete" and isinstance(entry, str) else ""


class _Contexts:
    """Term maps for the entries of one request, resolved once per distinct @context value."""

    def __init__(self, request: web.Request, ld: bool) -> None:
        self.request = request
        self.ld = ld
        self.cache: dict[bytes, TermMap] = {}
        self.link: TermMap | None = None

    async def for_entry(self, entry: dict[str, Any]) -> TermMap:
        if not self.ld:
            if "@context" in entry:
                raise BadRequestData("@context in an entity requires Content-Type application/ld+json")
            if self.link is None:
                self.link = await term_map(self.request)
            return self.link
        if "@context" not in entry:
            raise BadRequestData("With application/ld+json every entity must carry an @context")
        ctx = entry["@context"]
        key = orjson.dumps(ctx)
        tm = self.cache.get(key)
        if tm is None:
            tm = await self.request.app[RESOLVER].resolve(ctx)
            self.cache[key] = tm
        return tm


async def _items(request: web.Request, op: BatchOp) -> list[BatchItem]:
    body, _ = await read_body(request)
    if not isinstance(body, list):
        raise BadRequestData("The body of a batch operation must be a JSON array")
    if not body:
        raise BadRequestData("The batch is empty")
    limit = request.app[SETTINGS].max_batch
    if len(body) > limit:
        raise BadRequestData(f"A batch holds at most {limit} entries; got {len(body)}")
    ld = request.headers.get("Content-Type", "").split(";")[0].strip().lower() == JSONLD
    contexts = _Contexts(request, ld)
    now = now_iso()
    items: list[BatchItem] = []
    for n, entry in enumerate(body):
        if n and n % YIELD_EVERY == 0:
            await asyncio.sleep(0)  # nothing is written yet: let other requests run between slices
        try:
            items.append(await _item(op, entry, contexts, now))
        except NgsiLdError as err:
            items.append(BatchItem(_raw_id(entry, op), error=err))
    return items


async def _item(op: BatchOp, entry: Any, contexts: _Contexts, now: str) -> BatchItem:
    if op == "delete":
        return BatchItem(check_entity_id(entry))
    if not isinstance(entry, dict):
        raise BadRequestData("Each entity must be a JSON object")
    tm = await contexts.for_entry(entry)
    if op in ("create", "upsert"):
        entity = Expander(tm, now).entity(entry)
        return BatchItem(entity["id"], entity)
    if op == "merge":
        frag = Expander(tm, now, allow_null=True, partial=True).fragment(entry)
    else:
        frag = Expander(tm, now).fragment(entry)
    if "id" not in frag:
        raise BadRequestData("Entity id is missing")
    return BatchItem(frag["id"], frag)


def _options(request: web.Request, allowed: set[str]) -> set[str]:
    check_query_params(request, BATCH_PARAMS)
    opts = options_param(request)
    unknown = opts - allowed
    if unknown:
        raise BadRequestData(f"Unknown options value {sorted(unknown)[0]!r}")
    return opts


def _multi_status(result: BatchResult) -> Reply:
    """207 with a BatchOperationResult (clause 5.2.16)."""
    body = {"success": result.success,
            "errors": [{"entityId": eid, "error": err.to_problem()} for eid, err in result.errors]}
    return json_response(body, status=207)


async def _run(request: web.Request, op: BatchOp, **kwargs: Any) -> BatchResult:
    tenant = tenant_of(request)
    items = await _items(request, op)
    return await request.app[BATCH].run(tenant, op, items, **kwargs)


async def batch_create(request: web.Request) -> Reply:
    _options(request, set())
    result = await _run(request, "create")
    if result.errors:
        return _multi_status(result)
    return json_response(result.success, status=201)


async def batch_upsert(request: web.Request) -> Reply:
    opts = _options(request, {"update", "replace"})
    if {"update", "replace"} <= opts:
        raise BadRequestData("options update and replace exclude each other")
    result = await _run(request, "upsert", mode="update" if "update" in opts else "replace")
    if result.errors:
        return _multi_status(result)
    if result.created:
        return json_response(result.created, status=201)
    return Reply(status=204)


async def batch_update(request: web.Request) -> Reply:
    opts = _options(request, {"noOverwrite"})
    result = await _run(request, "update", no_overwrite="noOverwrite" in opts)
    return _multi_status(result) if result.errors else Reply(status=204)


async def batch_merge(request: web.Request) -> Reply:
    _options(request, set())
    result = await _run(request, "merge")
    return _multi_status(result) if result.errors else Reply(status=204)


async def batch_delete(request: web.Request) -> Reply:
    _options(request, set())
    result = await _run(request, "delete")
    return _multi_status(result) if result.errors else Reply(status=204)


def add_routes(app: web.Application) -> None:
    """Each operation also answers with a trailing slash (iotagent-node-lib posts to ``/upsert/``)."""
    for name, handler in (("create", batch_create), ("upsert", batch_upsert), ("update", batch_update),
                          ("merge", batch_merge), ("delete", batch_delete)):
        app.router.add_post(f"{BASE}/{name}", handler)
        app.router.add_post(f"{BASE}/{name}/", handler)

