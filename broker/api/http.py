"""Request parsing and response rendering shared by every NGSI-LD handler."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson
from aiohttp import web

from ..errors import BadRequestData, InvalidRequest, NotAcceptable, UnsupportedMediaType
from ..jsonld.termmap import TermMap
from ..store.base import DEFAULT_TENANT
from .keys import RESOLVER
from .reply import Reply

JSON = "application/json"
JSONLD = "application/ld+json"
GEOJSON = "application/geo+json"
MERGE_PATCH = "application/merge-patch+json"
CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"

_TENANT = re.compile(r"^[A-Za-z0-9_\-]{1,48}$")
_LINK = re.compile(r'<([^>]*)>\s*((?:;\s*[A-Za-z]+\s*=\s*(?:"[^"]*"|[^;,]*)\s*)*)')


def tenant_of(request: web.Request) -> str:
    raw = request.headers.get("NGSILD-Tenant")
    if raw is None or raw == "":
        return DEFAULT_TENANT
    if not _TENANT.match(raw):
        raise BadRequestData(f"Invalid NGSILD-Tenant {raw!r}")
    return raw


_CONTEXT_REL = re.compile(r'rel\s*=\s*"?' + re.escape(CONTEXT_REL) + r'"?')
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
# Link header values -> @context URL: clients send the same header on every request, and parsing it
# (two regexes per header) cost ~70 µs a request. Only valid headers are kept; bounded by clearing.
_LINK_CACHE: dict[tuple[str, ...], str | None] = {}
_LINK_CACHE_MAX = 1024


def link_context(request: web.Request) -> str | None:
    """The @context URL of the request's JSON-LD ``Link`` header, if any."""
    headers = tuple(request.headers.getall("Link", ()))
    if not headers:
        return None
    try:
        return _LINK_CACHE[headers]
    except KeyError:
        pass
    url = _parse_link(headers)
    if len(_LINK_CACHE) >= _LINK_CACHE_MAX:
        _LINK_CACHE.clear()
    _LINK_CACHE[headers] = url
    return url


def _parse_link(headers: tuple[str, ...]) -> str | None:
    found: list[str] = []
    for header in headers:
        for m in _LINK.finditer(header):
            params = m.group(2) or ""
            if _CONTEXT_REL.search(params):
                found.append(m.group(1).strip())
    if len(found) > 1:
        raise BadRequestData("More than one JSON-LD context Link header")
    if found:
        url = found[0]
        if not _ABSOLUTE.match(url):
            raise BadRequestData(f"Invalid @context URL in Link header: {url!r}")
        return url
    return None


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


async def read_body(request: web.Request, allowed: tuple[str, ...] = (JSON, JSONLD)) -> tuple[Any, Any]:
    """Parse a JSON body; returns (body, @context value or None). 415/400 on bad input."""
    ctype = _media_type(request.headers.get("Content-Type", ""))
    if ctype not in allowed:
        raise UnsupportedMediaType(f"Content-Type must be one of {', '.join(allowed)}; got {ctype or 'none'}")
    raw = await request.read()
    if not raw:
        raise InvalidRequest("Empty request body")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"Invalid JSON: {exc}") from exc
    context = await body_context(request, body, ctype)
    return body, context


async def body_context(request: web.Request, body: Any, ctype: str) -> Any:
    if ctype == JSONLD:
        # clause 6.3.5: with JSON-LD content the @context travels in the body; a Link header too is ambiguous
        if link_context(request) is not None:
            raise BadRequestData("A JSON-LD Link header is not allowed with Content-Type application/ld+json")
        if isinstance(body, dict):
            if "@context" not in body:
                raise BadRequestData("application/ld+json requires an @context in the body")
            return body["@context"]
        if isinstance(body, list):
            # batch operations: every entity carries its own @context
            return None
        raise BadRequestData("application/ld+json body must be an object or array")
    if isinstance(body, dict) and "@context" in body:
        raise BadRequestData("@context in the body requires Content-Type application/ld+json")
    return link_context(request)


async def term_map(request: web.Request, context: Any = None, *, from_link: bool = True) -> TermMap:
    """The term map for a request: explicit context, else the Link header, else the core context."""
    if context is None and from_link:
        context = link_context(request)
    return await request.app[RESOLVER].resolve(context)


def negotiate(request: web.Request, offered: tuple[str, ...] = (JSON, JSONLD)) -> str:
    """Pick the response media type from ``Accept`` (406 NotAcceptable when none fits)."""
    accept = request.headers.get("Accept", "")
    if not accept.strip():
        return offered[0]
    best: tuple[float, int, str] | None = None
    for order, part in enumerate(accept.split(",")):
        pieces = [p.strip() for p in part.split(";")]
        mtype = pieces[0].lower()
        q = 1.0
        for p in pieces[1:]:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        for candidate in offered:
            if mtype in (candidate, "*/*") or (mtype.endswith("/*") and candidate.startswith(mtype[:-1])):
                chosen = candidate if mtype == candidate else offered[0]
                if mtype == "application/*" and candidate != offered[0]:
                    chosen = offered[0]
                key = (q, -order, chosen)
                if best is None or key[:2] > best[:2]:
                    best = key
                break
    if best is None:
        raise NotAcceptable(f"None of {', '.join(offered)} is acceptable")
    return best[2]


def context_link(tm: TermMap, core_url: str) -> str:
    """The value of the ``Link`` header pointing clients at the @context of a response."""
    ctx = tm.context
    url = ctx if isinstance(ctx, str) else core_url
    return f'<{url}>; rel="{CONTEXT_REL}"; type="application/ld+json"'


def response_context(tm: TermMap, core_url: str) -> Any:
    return tm.context if tm.context is not None else core_url


def json_answer(data: Any, media: str, tm: TermMap, core_url: str) -> tuple[bytes, str | None]:
    """Body and ``Link`` header of an answer: JSON-LD carries @context inline, plain JSON a Link."""
    if media != JSONLD:
        return orjson.dumps(data), context_link(tm, core_url)
    ctx = response_context(tm, core_url)
    if isinstance(data, dict):
        data = {**data, "@context": ctx}
    elif isinstance(data, list):
        data = [{**d, "@context": ctx} if isinstance(d, dict) else d for d in data]
    return orjson.dumps(data), None


def json_response(data: Any, status: int = 200, *, media: str = JSON, tm: TermMap | None = None,
                  core_url: str = "", headers: dict[str, str] | None = None) -> Reply:
    """Serialize with orjson (``json_answer`` when a term map gives the @context)."""
    if tm is None:
        return Reply(body=orjson.dumps(data), status=status, content_type=media, headers=headers)
    body, link = json_answer(data, media, tm, core_url)
    reply = Reply(body=body, status=status, content_type=media, headers=headers)  # copies the headers
    if link is not None:
        reply.headers["Link"] = link
    return reply


def json_list_response(parts: list[bytes], *, media: str = JSON, tm: TermMap, core_url: str = "",
                       headers: dict[str, str] | None = None) -> Reply:
    """``json_response`` for a list of already serialized objects (JSON-LD ones carry their @context)."""
    reply = Reply(body=b"[" + b",".join(parts) + b"]", content_type=media, headers=headers)
    if media != JSONLD:
        reply.headers["Link"] = context_link(tm, core_url)
    return reply


def check_query_params(request: web.Request, allowed: frozenset[str] | set[str]) -> None:
    """400 InvalidRequest for a query parameter the operation does not define (ETSI 059_01).

    Call it first in a handler, before the body is read, so the parameter error wins. A query string
    whose percent-escapes are not UTF-8 is refused too (decoding would turn them into U+FFFD)."""
    query = request.query
    if not query:
        return
    raw = request.rel_url.raw_query_string
    if "%" in raw:
        _check_utf8(raw)
    if all(name in allowed for name in query):
        return
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise InvalidRequest(f"Unknown query parameter {unknown[0]!r}; allowed: {', '.join(sorted(allowed)) or 'none'}")


def _check_utf8(raw: str) -> None:
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"The query string is not valid UTF-8 once percent-decoded (byte {exc.start})") from None


def bool_param(request: web.Request, name: str) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return False
    if raw.lower() in ("true", ""):
        return True
    if raw.lower() == "false":
        return False
    raise BadRequestData(f"Parameter {name} must be true or false")


def options_param(request: web.Request) -> set[str]:
    """The ``options`` parameter (``keyValues``, ``sysAttrs``, ...) as a set."""
    out: set[str] = set()
    for raw in request.query.getall("options", []):
        out.update(o.strip() for o in raw.split(",") if o.strip())
    return out
