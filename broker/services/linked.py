"""Projections (``pick`` / ``omit``, clause 4.21) and linked entity retrieval (``join``, clause 4.5.23).

A projection may name, inside braces after a Relationship, what to keep (or drop) of the entity
that Relationship points at: ``pick=id,locatedAt{id,name,isInCountry{description}}``. Linked
entity retrieval follows the Relationships an answer keeps, ``joinLevel`` hops deep:

* ``join=inline`` puts each linked entity under its Relationship (``entity``; ``entityList`` for a
  ListRelationship); in the simplified format the Relationship's value becomes the entity itself.
* ``join=flat`` appends every linked entity once, after the matched ones, as top-level entities.

Linked entities are read with one store call per level, and an entity already on the path is not
inlined again (a cycle ends instead of repeating until ``joinLevel``).

Retrieving one entity (GET /entities/{id}) uses the same code: ``parse_projection`` for ``pick`` /
``omit``, ``join_options`` for ``join`` / ``joinLevel`` / ``containedBy``, and
``Linker(...).render_one(entity)`` for the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..entities.expand import check_name, is_uri
from ..entities.render import SIMPLIFIED, Renderer, RenderOptions
from ..errors import BadRequestData
from ..jsonld.termmap import TermMap
from ..store.base import Store

MEMBERS = frozenset({"id", "type", "scope"})
JOINS = ("flat", "inline", "@none")
MAX_JOIN_LEVEL = 10
_LINK_TYPES = ("Relationship", "ListRelationship")


# ----------------------------------------------------------------------------------- projections


@dataclass(frozen=True, slots=True)
class Projection:
    """A parsed ``pick`` / ``omit``: the names at this level, and per Relationship name a nested one."""

    names: tuple[str, ...]
    nested: Mapping[str, Projection] = field(default_factory=dict)


def parse_projection(raw: str | list[Any] | None, what: str) -> Projection | None:
    """Parse ``a,b{c,d{e}}`` (a JSON array of such strings in a POST body); 400 on any syntax error."""
    if raw is None:
        return None
    if isinstance(raw, list):
        if not raw or not all(isinstance(r, str) for r in raw):
            raise BadRequestData(f"{what} must be a non-empty list of strings")
        raw = ",".join(raw)
    if not isinstance(raw, str):
        raise BadRequestData(f"{what} must be a string")
    if raw.strip() == "":
        raise BadRequestData(f"{what} must not be empty")
    proj, end = _parse_list(raw, 0, 0, what)
    if end != len(raw):
        raise BadRequestData(f"{what}: unexpected {raw[end]!r} at position {end}")
    return proj


def _parse_list(s: str, i: int, depth: int, what: str) -> tuple[Projection, int]:
    names: list[str] = []
    nested: dict[str, Projection] = {}
    while True:
        j = i
        while j < len(s) and s[j] not in ",{}":
            j += 1
        name = s[i:j].strip()
        if not name:
            raise BadRequestData(f"{what}: a name is missing at position {i}")
        check_name(name, what)
        i = j
        if i < len(s) and s[i] == "{":
            if depth >= MAX_JOIN_LEVEL:  # deeper levels name entities no join reaches (and recursion is bounded)
                raise BadRequestData(f"{what}: nested more than {MAX_JOIN_LEVEL} levels deep")
            sub, i = _parse_list(s, i + 1, depth + 1, what)
            if i >= len(s) or s[i] != "}":
                raise BadRequestData(f"{what}: '{{' after {name!r} is not closed")
            i += 1
            nested[name] = sub
        if name not in names:
            names.append(name)
        if i >= len(s):
            if depth:
                raise BadRequestData(f"{what}: a '{{' is not closed")
            return Projection(tuple(names), nested), i
        if s[i] == ",":
            i += 1
            continue
        if s[i] == "}":
            if not depth:
                raise BadRequestData(f"{what}: '}}' at position {i} closes nothing")
            return Projection(tuple(names), nested), i
        raise BadRequestData(f"{what}: unexpected {s[i]!r} at position {i}")


def projection_options(base: RenderOptions, tm: TermMap, pick: Projection | None,
                       omit: Projection | None) -> RenderOptions:
    """``base`` narrowed by one level of ``pick`` or ``omit`` (names with braces in ``omit`` stay)."""
    if pick is None and omit is None:
        return base
    opts = replace(base)
    if pick is not None:
        names = pick.names
        opts.pick_id, opts.pick_type, opts.pick_scope = "id" in names, "type" in names, "scope" in names
        keep = {tm.expand(n) for n in names if n not in MEMBERS}
        opts.attrs = frozenset(keep if base.attrs is None else keep & base.attrs)
    if omit is not None:
        names = tuple(n for n in omit.names if n not in omit.nested)
        opts.pick_id, opts.pick_type, opts.pick_scope = "id" not in names, "type" not in names, "scope" not in names
        opts.omit = frozenset(tm.expand(n) for n in names if n not in MEMBERS)
    return opts


# ---------------------------------------------------------------------------------------- joins


@dataclass(frozen=True, slots=True)
class JoinOptions:
    """``join`` (None: no linked entities), ``joinLevel`` and ``containedBy`` (ids not to follow)."""

    join: str | None = None
    level: int = 1
    contained_by: frozenset[str] = frozenset()


NO_JOIN = JoinOptions()


def join_options(join: Any, join_level: Any = None, contained_by: Any = None) -> JoinOptions:
    """Validate the three parameters (URL strings, or JSON values of a POST Query body)."""
    if join is not None and join != "" and join not in JOINS:
        raise BadRequestData(f"join must be one of {', '.join(JOINS)}; got {join!r}")
    level = 1
    if join_level is not None and join_level != "":
        if isinstance(join_level, bool):
            raise BadRequestData("joinLevel must be a positive integer")
        try:
            level = int(join_level)
        except (TypeError, ValueError):
            raise BadRequestData(f"joinLevel must be a positive integer; got {join_level!r}") from None
        if level < 1:
            raise BadRequestData("joinLevel must be a positive integer")
        if level > MAX_JOIN_LEVEL:
            raise BadRequestData(f"joinLevel must not exceed {MAX_JOIN_LEVEL}")
    ids: list[str] = []
    if contained_by is not None and contained_by != "":
        items = contained_by if isinstance(contained_by, list) else str(contained_by).split(",")
        for item in items:
            if not isinstance(item, str) or not is_uri(item.strip()):
                raise BadRequestData(f"containedBy must list entity ids (URIs); got {item!r}")
            ids.append(item.strip())
    if join in (None, "", "@none"):
        return JoinOptions(None, level, frozenset(ids))
    return JoinOptions(join, level, frozenset(ids))


def _kept(opts: RenderOptions, iri: str) -> bool:
    return (opts.attrs is None or iri in opts.attrs) and (opts.omit is None or iri not in opts.omit)


def _targets(inst: dict[str, Any]) -> list[str]:
    """The entity ids one Relationship / ListRelationship instance points at."""
    raw = inst.get("objectList") if inst.get("type") == "ListRelationship" else inst.get("object")
    items = raw if isinstance(raw, list) else [raw]
    return [i for i in items if isinstance(i, str)]


@dataclass(slots=True)
class _Node:
    entity: dict[str, Any]
    pick: Projection | None
    omit: Projection | None
    opts: RenderOptions


class Linker:
    """Renders entities with their linked entities for one request."""

    def __init__(self, store: Store, tenant: str, tm: TermMap, top: RenderOptions, join: JoinOptions,
                 pick: Projection | None = None, omit: Projection | None = None) -> None:
        self.store, self.tenant, self.tm = store, tenant, tm
        self.top, self.join, self.pick, self.omit = top, join, pick, omit
        # linked entities: all attributes, same format / sysAttrs / lang as the request
        self.linked_base = replace(top, attrs=None, omit=None, pick_id=True, pick_type=True, pick_scope=True,
                                   dataset_id=None)
        self.cache: dict[str, dict[str, Any] | None] = {}
        self._renderers: dict[int, tuple[RenderOptions, Renderer]] = {}
        self._child_cache: dict[tuple[int, int], RenderOptions] = {}

    # ------------------------------------------------------------------ public
    async def render(self, entities: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(stored, rendered) pairs: the entities, then (``flat``) every linked entity once."""
        roots = [_Node(e, self.pick, self.omit, self.top) for e in entities]
        if self.join.join is None:
            return [(n.entity, self._renderer(n.opts).entity(n.entity)) for n in roots]
        order = await self._prefetch(roots)
        if self.join.join == "inline":
            return [(n.entity, self._inline(n, 0, {n.entity["id"]})) for n in roots]
        out = [(n.entity, self._renderer(n.opts).entity(n.entity)) for n in roots]
        out.extend((n.entity, self._renderer(n.opts).entity(n.entity)) for n in order)
        return out

    async def render_one(self, entity: dict[str, Any]) -> dict[str, Any] | list[dict[str, Any]]:
        """GET /entities/{id}: the entity (inline), or with ``flat`` a list when something is linked."""
        pairs = await self.render([entity])
        if len(pairs) == 1:
            return pairs[0][1]
        return [r for _, r in pairs]

    # ------------------------------------------------------------------ internals
    def _renderer(self, opts: RenderOptions) -> Renderer:
        found = self._renderers.get(id(opts))
        if found is None:
            found = self._renderers[id(opts)] = (opts, Renderer(self.tm, opts))
        return found[1]

    def _children(self, node: _Node) -> list[tuple[str, list[tuple[dict[str, Any], list[str]]], _Node]]:
        """Per kept attribute holding a Relationship: (IRI, [(instance, target ids)] for every rendered
        instance, in the renderer's order (no targets for a non-Relationship), template child node)."""
        out = []
        for iri, instances in node.entity.get("attrs", {}).items():
            if not _kept(node.opts, iri):
                continue
            if node.opts.dataset_id is not None:
                instances = [i for i in instances if i.get("datasetId", "@none") in node.opts.dataset_id]
            if not any(i.get("type") in _LINK_TYPES for i in instances):
                continue
            links = [(i, _targets(i) if i.get("type") in _LINK_TYPES else []) for i in instances]
            term = self.tm.compact(iri)
            pick = node.pick.nested.get(term) if node.pick is not None else None
            omit = node.omit.nested.get(term) if node.omit is not None else None
            template = _Node({}, pick, omit, self._child_opts(pick, omit))
            out.append((iri, links, template))
        return out

    def _child_opts(self, pick: Projection | None, omit: Projection | None) -> RenderOptions:
        key = (id(pick), id(omit))
        opts = self._child_cache.get(key)
        if opts is None:
            opts = self._child_cache[key] = projection_options(self.linked_base, self.tm, pick, omit)
        return opts

    async def _prefetch(self, roots: list[_Node]) -> list[_Node]:
        """Load every entity reachable within ``joinLevel`` (one store call per level).

        Returns the linked nodes in breadth-first order, each entity once and none of the roots
        (the ``flat`` answer's tail)."""
        seen = {n.entity["id"] for n in roots} | set(self.join.contained_by)
        order: list[_Node] = []
        frontier = roots
        for _ in range(self.join.level):
            wanted: list[tuple[str, _Node]] = []
            for node in frontier:
                for _iri, links, template in self._children(node):
                    for _inst, targets in links:
                        wanted.extend((t, template) for t in targets)
            missing = list(dict.fromkeys(t for t, _ in wanted if t not in self.cache))
            if missing:
                found = await self.store.get_entities(self.tenant, missing)
                for t in missing:
                    self.cache[t] = found.get(t)
            nxt: list[_Node] = []
            for t, template in wanted:
                entity = self.cache.get(t)
                if entity is None or t in seen:
                    continue
                seen.add(t)
                node = _Node(entity, template.pick, template.omit, template.opts)
                nxt.append(node)
                order.append(node)
            if not nxt:
                break
            frontier = nxt
        return order

    def _inline(self, node: _Node, depth: int, path: set[str]) -> dict[str, Any]:
        out = self._renderer(node.opts).entity(node.entity)
        if depth >= self.join.level:
            return out
        simplified = node.opts.format == SIMPLIFIED
        for iri, links, template in self._children(node):
            key = self.tm.compact(iri)
            if key not in out:
                continue
            rendered = out[key]
            several = len(links) > 1
            items = rendered if several else [rendered]
            new_items = []
            for (inst, targets), item in zip(links, items, strict=False):
                linked = []
                for t in targets:
                    entity = self.cache.get(t)
                    if entity is None or t in path or t in self.join.contained_by:
                        continue
                    child = _Node(entity, template.pick, template.omit, template.opts)
                    linked.append(self._inline(child, depth + 1, path | {t}))
                new_items.append(self._attach(inst, item, linked, simplified))
            out[key] = new_items if several else new_items[0]
        return out

    @staticmethod
    def _attach(inst: dict[str, Any], item: Any, linked: list[dict[str, Any]], simplified: bool) -> Any:
        if not linked:
            return item
        is_list = inst.get("type") == "ListRelationship"
        if simplified:
            if is_list:
                return {"entityList": linked}
            return linked[0] if len(linked) == 1 else linked
        if isinstance(item, dict):
            if is_list:
                item["entityList"] = linked
            else:
                item["entity"] = linked[0] if len(linked) == 1 else linked
        return item
