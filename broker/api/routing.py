"""The app's routes as one lookup table, resolved without awaiting each candidate resource.

aiohttp's router awaits ``resolve`` on every candidate resource and builds a match-info object per
request: ~40 µs for ``/entities/{id}/attrs/{attrId}``, which has a dozen candidates. This table is
built once from the frozen app's resources and keeps aiohttp's order (walk the path's parts from the
longest, candidates in registration order, the first whose method matches wins; 405 lists every
method the matching resources accept); ``tests/api/test_routing.py`` compares both on every route.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Handler = Callable[[Any], Awaitable[web.StreamResponse]]
# (exact path or None, pattern or None, method -> handler, "*" handler or None, allowed methods)
_Candidate = tuple[str | None, "re.Pattern[str] | None", dict[str, Handler], Handler | None, frozenset[str]]


def _unquote_safe(value: str) -> str:
    """What aiohttp applies to a matched path variable (``%2F`` and ``%25`` are kept by path_safe)."""
    if "%" not in value:
        return value
    return value.replace("%2F", "/").replace("%25", "%")


def _index_key(canonical: str) -> str:
    if "{" in canonical:
        canonical = canonical.partition("{")[0].rpartition("/")[0]
    return canonical.rstrip("/") or "/"


class RouteTable:
    """Method + path-safe path -> (handler, path variables), or the 404/405 aiohttp would raise."""

    def __init__(self, app: web.Application) -> None:
        self.index: dict[str, list[_Candidate]] = {}
        for resource in app.router.resources():
            info = resource.get_info()
            routes: dict[str, Handler] = {}
            any_route: Handler | None = None
            for route in resource:
                if route.method == "*":
                    any_route = route.handler  # type: ignore[assignment]
                else:
                    routes[route.method] = route.handler  # type: ignore[assignment]
            if "path" in info:
                cand: _Candidate = (info["path"] or "/", None, routes, any_route, frozenset(routes))
            elif "pattern" in info:
                cand = (None, info["pattern"], routes, any_route, frozenset(routes))
            else:
                raise TypeError(f"unsupported route resource {resource!r} (static files or sub-apps)")
            self.index.setdefault(_index_key(resource.canonical), []).append(cand)

    def handlers(self) -> set[Handler]:
        """Every handler a route names (404/405 raisers are made per request, not listed)."""
        return {h for cands in self.index.values() for _, _, routes, any_route, _ in cands
                for h in (*routes.values(), any_route) if h is not None}

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        allowed: set[str] = set()
        part = path
        index = self.index
        while part:
            candidates = index.get(part)
            if candidates is not None:
                for exact, pattern, routes, any_route, methods in candidates:
                    if exact is not None:
                        if exact != path:
                            continue
                        found: dict[str, str] = {}
                    else:
                        m = pattern.fullmatch(path)  # type: ignore[union-attr]
                        if m is None:
                            continue
                        found = {k: _unquote_safe(v) for k, v in m.groupdict().items()}
                    handler = routes.get(method, any_route)
                    if handler is not None:
                        return handler, found
                    allowed |= methods
            if part == "/":
                break
            part = part.rpartition("/")[0] or "/"
        if allowed:
            return _raiser(web.HTTPMethodNotAllowed(method, allowed)), {}
        return _raiser(web.HTTPNotFound()), {}


def _raiser(exc: web.HTTPException) -> Handler:
    async def handler(request: Any) -> web.StreamResponse:
        raise exc

    return handler


__all__ = ["RouteTable"]
