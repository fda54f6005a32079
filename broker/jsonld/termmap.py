"""Term maps: the result of processing one distinct @context, used on the hot path as dict lookups.

PyLD builds each map once (off the hot path); expansion and compaction of entities are then
plain dictionary lookups, never a JSON-LD algorithm run per request.
"""

from __future__ import annotations

from typing import Any

from .core import DEFAULT_VOCAB


class TermMap:
    """Term <-> IRI mapping for one processed @context."""

    __slots__ = ("key", "context", "vocab", "_terms", "_reverse", "_prefixes", "_coercion",
                 "_expand_cache", "_compact_cache", "compacted", "expanded")

    def __init__(self, key: bytes, context: Any, mappings: dict[str, dict[str, Any]],
                 vocab: str | None) -> None:
        self.key = key
        self.context = context
        self.vocab = vocab
        self._terms: dict[str, str] = {}
        self._coercion: dict[str, str] = {}
        self._prefixes: list[tuple[str, str]] = []
        candidates: dict[str, list[str]] = {}
        for term, definition in mappings.items():
            if not definition or definition.get("reverse"):
                continue
            iri = definition.get("@id")
            if not isinstance(iri, str) or iri.startswith("@"):
                continue
            self._terms[term] = iri
            if "@type" in definition:
                self._coercion[iri] = definition["@type"]
            if definition.get("_prefix") or (iri.endswith(("/", "#", ":")) and ":" not in term):
                self._prefixes.append((term, iri))
            candidates.setdefault(iri, []).append(term)
        # JSON-LD term selection, simplified: the shortest term, then the lexicographically least.
        self._reverse = {iri: min(terms, key=lambda t: (len(t), t)) for iri, terms in candidates.items()}
        # Longest prefix IRI first so the most specific compact IRI wins.
        self._prefixes.sort(key=lambda p: -len(p[1]))
        self._expand_cache: dict[str, str] = {}
        self._compact_cache: dict[str, str] = {}
        self.compacted = self._compact_cache  # read by hot loops that skip the call to compact()
        self.expanded = self._expand_cache  # likewise for expand()

    def expand(self, term: str) -> str:
        """Expand a term, compact IRI or vocabulary-relative name to an absolute IRI."""
        hit = self._expand_cache.get(term)
        if hit is not None:
            return hit
        iri = self._terms.get(term)
        if iri is None:
            iri = self._expand_uncached(term)
        if len(self._expand_cache) < 20000:
            self._expand_cache[term] = iri
        return iri

    def _expand_uncached(self, term: str) -> str:
        prefix, sep, suffix = term.partition(":")
        if sep:
            if suffix.startswith("//") or prefix in ("urn", "http", "https"):
                return term
            base = self._terms.get(prefix)
            if base is not None:
                return base + suffix
            return term  # an absolute IRI with some other scheme
        return (self.vocab or DEFAULT_VOCAB) + term

    def compact(self, iri: str) -> str:
        """Compact an IRI to the term a client using this @context expects."""
        hit = self._compact_cache.get(iri)
        if hit is not None:
            return hit
        term = self._reverse.get(iri)
        if term is None:
            term = self._compact_uncached(iri)
        if len(self._compact_cache) < 20000:
            self._compact_cache[iri] = term
        return term

    def _compact_uncached(self, iri: str) -> str:
        if self.vocab and iri.startswith(self.vocab):
            suffix = iri[len(self.vocab):]
            if suffix and ":" not in suffix and suffix not in self._terms:
                return suffix
        for term, base in self._prefixes:
            if iri.startswith(base) and len(iri) > len(base):
                return f"{term}:{iri[len(base):]}"
        return iri

    def coercion(self, iri: str) -> str | None:
        """The ``@type`` coercion of the term defining ``iri`` (``@vocab``, ``@id``, ``@json``...)."""
        return self._coercion.get(iri)
