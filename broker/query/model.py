"""What a store needs to answer an entity query; the parsed ASTs live in ``broker.query.ast``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class EntityQuery:
    """A fully expanded entity query (attribute and type names are IRIs).

    ``types``, ``q``, ``scope_q`` and ``geo_q`` hold AST nodes from ``broker.query.ast``.
    ``attrs`` filters entities to those having at least one of the listed attributes.
    ``any_of`` holds entity selectors (queries with only ``ids``, ``id_pattern`` and ``types``) of
    which an entity must meet at least one: a POST Query's several ``entities`` that no single
    selector can express.
    """

    ids: list[str] | None = None
    id_pattern: str | None = None
    types: Any = None
    attrs: list[str] | None = None
    q: Any = None
    scope_q: Any = None
    geo_q: Any = None
    any_of: list[EntityQuery] | None = None
    limit: int = 20
    offset: int = 0
    count: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
