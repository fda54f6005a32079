"""The Link header cache (``api/http.link_context``) must answer like parsing the header each time."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from broker.api import http
from broker.errors import BadRequestData

REL = 'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


def _request(*links: str):  # type: ignore[no-untyped-def]
    headers = CIMultiDict()
    for link in links:
        headers.add("Link", link)
    return make_mocked_request("GET", "/ngsi-ld/v1/entities/x", headers=headers)


def test_link_context_cached_answers_match_parsing() -> None:
    a, b = f"<http://example.org/a.jsonld>; {REL}", f"<http://example.org/b.jsonld>; {REL}"
    for _ in range(3):
        assert http.link_context(_request(a)) == "http://example.org/a.jsonld"
        assert http.link_context(_request(b)) == "http://example.org/b.jsonld"
        assert http.link_context(_request('<http://example.org/x>; rel="next"')) is None
        assert http.link_context(_request()) is None


@pytest.mark.parametrize("links", [
    (f"<http://example.org/a.jsonld>; {REL}", f"<http://example.org/b.jsonld>; {REL}"),
    (f"<not a url>; {REL}",),
])
def test_link_context_errors_every_time(links: tuple[str, ...]) -> None:
    for _ in range(3):
        with pytest.raises(BadRequestData):
            http.link_context(_request(*links))


def test_link_cache_is_bounded() -> None:
    for i in range(http._LINK_CACHE_MAX + 10):
        assert http.link_context(_request(f"<http://example.org/{i}>; {REL}")) == f"http://example.org/{i}"
    assert len(http._LINK_CACHE) <= http._LINK_CACHE_MAX
