"""The ETSI core @context documents shipped with the package, so the broker never needs the internet."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import orjson

CORE_BASE = "https://uri.etsi.org/ngsi-ld/v1/"
DEFAULT_CORE_URL = CORE_BASE + "ngsi-ld-core-context-v1.8.jsonld"
NGSI_LD = "https://uri.etsi.org/ngsi-ld/"
DEFAULT_VOCAB = NGSI_LD + "default-context/"

# The unversioned URL is the v1.0 document. It maps ``name``, ``description``, ``title``, ``start``,
# ``end``... to ngsi-ld: IRIs that later versions dropped; ngsildclient and older tutorials name it
# as "the core context", so request contexts read it as the broker's own core (as Orion-LD does).
LEGACY_CORE_URL = CORE_BASE + "ngsi-ld-core-context.jsonld"

# URL -> file in broker/jsonld/contexts.
_CORE_FILES = {
    CORE_BASE + "ngsi-ld-core-context.jsonld": "ngsi-ld-core-context.jsonld",
    **{CORE_BASE + f"ngsi-ld-core-context-v1.{n}.jsonld": f"ngsi-ld-core-context-v1.{n}.jsonld"
       for n in range(3, 10)},
}
CORE_URLS = frozenset(_CORE_FILES)


def is_core_url(url: str) -> bool:
    return url in _CORE_FILES


@cache
def core_document(url: str) -> dict[str, Any]:
    """Return the parsed core context document for a core URL (KeyError if it is not one)."""
    name = _CORE_FILES[url]
    data = resources.files("broker.jsonld").joinpath("contexts", name).read_bytes()
    return orjson.loads(data)
