"""ContextResolver against a real HTTP context server: caching, limits, failures, preload, persistence."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from broker.errors import BadRequestData, LdContextNotAvailable
from broker.jsonld.core import DEFAULT_CORE_URL
from broker.jsonld.resolver import KIND_CACHED, KIND_HOSTED, KIND_IMPLICIT, LOCAL_PREFIX, ContextResolver
from broker.services.contexts import StoreContextPersistence
from tests.conftest import STORES, close_store, open_store
from tests.jsonld.context_server import ContextServer

NGSI = "https://uri.etsi.org/ngsi-ld/"


class Clock:
    """A clock the test moves by hand, so TTL behaviour needs no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(**kw: object) -> ContextResolver:
    return ContextResolver(fetch_timeout=2.0, **kw)  # type: ignore[arg-type]


async def test_core_context_needs_no_network() -> None:
    r = make()
    tm = await r.resolve(None)
    assert tm.expand("location") == NGSI + "location"
    for version in ("1.6", "1.7", "1.8"):
        tm = await r.resolve(f"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v{version}.jsonld")
        assert tm.expand("observedAt") == NGSI + "observedAt"
    assert r.entries == {}


async def test_remote_context_is_fetched_once_and_cached(ctx_server: ContextServer) -> None:
    r = make()
    try:
        url = ctx_server.url("/ctx")
        results = await asyncio.gather(*(r.resolve(url) for _ in range(5)))
        assert {tm.expand("A1") for tm in results} == {"urn:test:A1"}
        assert results[0].compact("urn:test:A1") == "A1"
        assert results[0].expand("location") == NGSI + "location"  # core context appended
        await r.resolve([url, {"X": "urn:test:X"}])
        assert ctx_server.hits["ctx"] == 1
        assert r.entries[url].kind == KIND_CACHED
    finally:
        await r.close()


async def test_nested_imported_and_scoped_contexts_are_followed(ctx_server: ContextServer) -> None:
    r = make()
    try:
        nested = await r.resolve(ctx_server.url("/nested"))
        assert nested.expand("A1") == "urn:test:A1" and nested.expand("B1") == "urn:test:B1"
        imported = await r.resolve(ctx_server.url("/import"))
        assert imported.expand("A1") == "urn:test:A1" and imported.expand("C1") == "urn:test:C1"
        scoped = await r.resolve(ctx_server.url("/scoped"))
        assert scoped.expand("D1") == "urn:test:D1"
        assert ctx_server.hits["ctx"] == 1
        assert {ctx_server.url(p) for p in ("/ctx", "/nested", "/import", "/scoped")} <= set(r.entries)
    finally:
        await r.close()


@pytest.mark.parametrize("path, reason", [
    ("/missing", "HTTP 404"),
    ("/text", "not JSON"),
    ("/nocontext", "not a JSON-LD context document"),
    ("/big", "larger than"),
    ("/bigstream", "larger than"),
])
async def test_bad_remote_contexts_are_503(ctx_server: ContextServer, path: str, reason: str) -> None:
    r = make(max_bytes=ctx_server.max_bytes)
    try:
        with pytest.raises(LdContextNotAvailable) as err:
            await r.resolve([ctx_server.url(path), {"X": "urn:test:X"}])
        assert reason in err.value.detail
        assert err.value.status == 503
        assert r.entries == {} and r.by_id == {}  # nothing half-stored, not even the implicit context
    finally:
        await r.close()


async def test_slow_context_times_out(ctx_server: ContextServer) -> None:
    r = ContextResolver(fetch_timeout=0.3)
    try:
        with pytest.raises(LdContextNotAvailable):
            await r.resolve(ctx_server.url("/slow"))
    finally:
        await r.close()


async def test_unreachable_host_fails_fast_then_retries_after_the_ttl(ctx_server: ContextServer) -> None:
    clock = Clock()
    r = make(failure_ttl=10.0, clock=clock)
    url = ctx_server.url("/flaky")
    try:
        with pytest.raises(LdContextNotAvailable):
            await r.resolve(url)
        assert ctx_server.hits["flaky"] == 1
        ctx_server.healthy = True
        for _ in range(20):  # remembered failure: answered without asking the host again
            with pytest.raises(LdContextNotAvailable):
                await r.resolve(url)
        assert ctx_server.hits["flaky"] == 1
        clock.now += 10.5
        tm = await r.resolve(url)
        assert tm.expand("F1") == "urn:test:F1"
        assert ctx_server.hits["flaky"] == 2
    finally:
        await r.close()


async def test_non_http_urls_and_bad_values_are_rejected() -> None:
    r = make()
    with pytest.raises(LdContextNotAvailable):
        await r.resolve("file:///etc/passwd")
    with pytest.raises(BadRequestData):
        await r.resolve(42)
    with pytest.raises(BadRequestData):
        await r.resolve([{"a": "urn:a"}, 7])
    with pytest.raises(BadRequestData):
        await r.resolve({"bad": {"@id": 5}})


async def test_inline_context_creates_one_implicit_entry() -> None:
    r = make()
    ctx = [{"A1": "urn:test:A1"}, DEFAULT_CORE_URL]
    tm = await r.resolve(ctx)
    await r.resolve(json.loads(json.dumps(ctx)))
    implicit = [e for e in r.by_id.values() if e.kind == KIND_IMPLICIT]
    assert len(implicit) == 1
    entry = implicit[0]
    assert entry.document == {"@context": ctx} and entry.hits == 2
    assert r.context_url(ctx, "http://b:1026") == "http://b:1026" + LOCAL_PREFIX + entry.local_id
    # the implicit context's URL, from any host, resolves to the same terms
    again = await r.resolve("http://elsewhere:9" + LOCAL_PREFIX + entry.local_id)
    assert again.expand("A1") == tm.expand("A1") == "urn:test:A1"
    assert r.implicit_id("http://x/ctx") is None


async def test_implicit_entries_are_bounded() -> None:
    r = make(max_implicit=2)
    for i in range(4):
        tm = await r.resolve({f"T{i}": f"urn:test:T{i}"})
        assert tm.expand(f"T{i}") == f"urn:test:T{i}"
    assert sum(e.kind == KIND_IMPLICIT for e in r.by_id.values()) == 2


def write_preload(tmp_path, ctx_url: str, env_var: str) -> str:  # type: ignore[no-untyped-def]
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.jsonld").write_text(json.dumps({"@context": {"P1": "urn:test:P1"}}))
    (tmp_path / "b.jsonld").write_text(json.dumps({"@context": {"P2": "urn:test:P2"}}))
    mapping = {ctx_url: "docs/a.jsonld", "https://example.org/b.jsonld": "${" + env_var + "}/b.jsonld"}
    (tmp_path / "index.json").write_text(json.dumps(mapping))
    return str(tmp_path)


async def test_preloaded_contexts_behave_like_downloaded_ones(ctx_server, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PRELOAD_BASE", str(tmp_path))
    url = ctx_server.url("/ctx")
    r = make()
    try:
        assert r.preload(write_preload(tmp_path, url, "PRELOAD_BASE")) == 2
        assert {e.kind for e in r.entries.values()} == {KIND_CACHED}
        assert (await r.resolve(url)).expand("P1") == "urn:test:P1"
        assert (await r.resolve("https://example.org/b.jsonld")).expand("P2") == "urn:test:P2"
        # deleted, then used again: read back from the file, never from the network
        await r.forget(url)
        assert url not in r.entries
        assert (await r.resolve(url)).expand("P1") == "urn:test:P1"
        assert r.entries[url].kind == KIND_CACHED
        (tmp_path / "docs" / "a.jsonld").write_text(json.dumps({"@context": {"P1": "urn:test:P1v2"}}))
        await r.reload(r.entries[url])
        assert (await r.resolve(url)).expand("P1") == "urn:test:P1v2"
        assert ctx_server.hits["ctx"] == 0
    finally:
        await r.close()


def test_preload_with_an_unset_variable_is_an_error(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("NO_SUCH_PRELOAD_VAR", raising=False)
    r = make()
    with pytest.raises(ValueError, match="unset environment variable"):
        r.preload(write_preload(tmp_path, "https://example.org/a.jsonld", "NO_SUCH_PRELOAD_VAR"))


@pytest.mark.parametrize("kind", STORES)
async def test_contexts_survive_a_restart(kind, services, tmp_path, ctx_server) -> None:  # type: ignore[no-untyped-def]
    prefix = "t" + uuid.uuid4().hex[:10]
    store = await open_store(kind, services, tmp_path, prefix=prefix)
    r = make()
    await r.start(StoreContextPersistence(store))
    url = ctx_server.url("/nested")
    await r.resolve(url)
    hosted = await r.add_hosted({"@context": {"H1": "urn:test:H1"}})
    await r.resolve([{"I1": "urn:test:I1"}])
    implicit_id = r.implicit_id([{"I1": "urn:test:I1"}])
    await r.close()
    await store.close()

    store = await open_store(kind, services, tmp_path, prefix=prefix)
    try:
        r2 = make()
        await r2.start(StoreContextPersistence(store))
        assert r2.entries[url].kind == KIND_CACHED
        assert r2.by_id[hosted.local_id].kind == KIND_HOSTED
        assert r2.by_id[hosted.local_id].created_at == hosted.created_at
        assert implicit_id is not None and r2.by_id[implicit_id].kind == KIND_IMPLICIT
        tm = await r2.resolve(url)
        assert tm.expand("A1") == "urn:test:A1" and tm.expand("B1") == "urn:test:B1"
        assert (await r2.resolve("http://any" + LOCAL_PREFIX + hosted.local_id)).expand("H1") == "urn:test:H1"
        assert ctx_server.hits["nested"] == 1 and ctx_server.hits["ctx"] == 1  # nothing downloaded again
        await r2.forget(url)
        r3 = make()
        await r3.start(StoreContextPersistence(store))
        assert url not in r3.entries
        await r2.close()
        await r3.close()
    finally:
        await close_store(store)


@pytest.mark.parametrize("kind", STORES)
async def test_hosted_context_of_another_process_is_found_in_the_store(kind, services, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = await open_store(kind, services, tmp_path)
    try:
        a, b = make(), make()
        await a.start(StoreContextPersistence(store))
        await b.start(StoreContextPersistence(store))
        hosted = await a.add_hosted({"@context": {"H2": "urn:test:H2"}})
        tm = await b.resolve("http://broker-a:1026" + LOCAL_PREFIX + hosted.local_id)
        assert tm.expand("H2") == "urn:test:H2"
    finally:
        await close_store(store)
