"""AST of the NGSI-LD query languages (q, type expressions, scopeQ, geoQ).

The nodes are frozen and hashable so that parses can be cached and shared between requests and
subscriptions without defensive copies. All attribute and type names are already expanded IRIs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

DEFAULT_GEOPROPERTY = "https://uri.etsi.org/ngsi-ld/location"

# Members of an attribute instance that ``attr.<member>`` designates instead of a sub-attribute.
INSTANCE_MEMBERS = frozenset({"observedAt", "createdAt", "modifiedAt", "unitCode", "datasetId"})

ValueKind: TypeAlias = Literal["number", "string", "boolean", "datetime", "date", "time", "uri"]
CompareOp: TypeAlias = Literal["==", "!=", ">", ">=", "<", "<=", "~=", "!~="]
GeoRel: TypeAlias = Literal["near", "within", "contains", "intersects", "disjoint", "overlaps", "equals"]
GeometryType: TypeAlias = Literal["Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
                                  "MultiPolygon"]

GEORELS: frozenset[str] = frozenset(
    {"near", "within", "contains", "intersects", "disjoint", "overlaps", "equals"})
GEOMETRIES: frozenset[str] = frozenset(
    {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"})


@dataclass(frozen=True, slots=True)
class And:
    """All children hold (``;``). Shared by q, type expressions and scopeQ."""

    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """At least one child holds (``|``, and ``,`` in type expressions and scopeQ)."""

    items: tuple[Node, ...]


# ---------------------------------------------------------------------------------------------- q


@dataclass(frozen=True, slots=True)
class AttrPath:
    """``attr.sub1.sub2.member[key1][key2]``.

    ``subs`` are sub-attribute IRIs, ``member`` an instance member (``observedAt`` ...) and ``keys``
    raw (never expanded) keys into a compound value.
    """

    attr: str
    subs: tuple[str, ...] = ()
    member: str | None = None
    keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Value:
    """A literal; ``kind`` keeps how it was written so stores can decide what they can push down."""

    kind: ValueKind
    value: int | float | str | bool

    @property
    def is_stringish(self) -> bool:
        return self.kind not in ("number", "boolean")


@dataclass(frozen=True, slots=True)
class Range:
    """``low..high``, inclusive on both ends."""

    low: Value
    high: Value


@dataclass(frozen=True, slots=True)
class ValueList:
    """``a,b,c``: any of (with ``==``) / none of (with ``!=``)."""

    items: tuple[Value, ...]


Operand: TypeAlias = Value | Range | ValueList


@dataclass(frozen=True, slots=True)
class Exists:
    """A bare attribute path: the entity has it."""

    path: AttrPath


@dataclass(frozen=True, slots=True)
class Comparison:
    """``path op operand``; for ``~=`` / ``!~=`` the operand is a string Value holding the regex."""

    path: AttrPath
    op: CompareOp
    operand: Operand


# -------------------------------------------------------------------------------- types and scope


@dataclass(frozen=True, slots=True)
class TypeName:
    """Matches when the entity's type list contains ``iri``."""

    iri: str


@dataclass(frozen=True, slots=True)
class ScopeTerm:
    """A scope pattern split into segments; ``+`` matches one level, ``descendants`` is a final ``/#``.

    ``/#`` alone is ``ScopeTerm((), True)``: any scope.
    """

    segments: tuple[str, ...]
    descendants: bool = False

    def __str__(self) -> str:
        text = "".join("/" + s for s in self.segments)
        return text + "/#" if self.descendants else text


# ------------------------------------------------------------------------------------------- geo


@dataclass(frozen=True, slots=True)
class GeoQuery:
    """A validated geo-query. ``coordinates`` are nested tuples so the query is hashable."""

    georel: GeoRel
    geometry: GeometryType
    coordinates: tuple
    geoproperty: str = DEFAULT_GEOPROPERTY
    max_distance: float | None = None
    min_distance: float | None = None


QNode: TypeAlias = And | Or | Exists | Comparison
TypeNode: TypeAlias = And | Or | TypeName
ScopeNode: TypeAlias = And | Or | ScopeTerm
Node: TypeAlias = QNode | TypeNode | ScopeNode
