"""The application factory: every route and every service the broker wires, in one place."""

from __future__ import annotations

import logging

from aiohttp import web

from . import native
from .api import batch as batch_api
from .api import contexts as contexts_api
from .api import discovery as discovery_api
from .api import entities as entities_api
from .api import openapi as openapi_api
from .api import query as query_api
from .api import subscriptions as subscriptions_api
from .api import system as system_api
from .api.keys import (
    BATCH,
    BUS,
    DELIVERY,
    DISCOVERY,
    ENTITIES,
    NOTIFICATIONS,
    QUERY,
    RENDERED,
    RESOLVER,
    SERVICES,
    SETTINGS,
    STORE,
    SUBSCRIPTIONS,
)
from .api.middleware import problem_middleware
from .config import Settings
from .jsonld.resolver import ContextResolver
from .services.batch import BatchService
from .services.contexts import StoreContextPersistence
from .services.delivery import DeliveryService, notify_tls_context
from .services.discovery import DiscoveryService
from .services.entities import EntityService
from .services.events import EventBus
from .services.notifications import NotificationService
from .services.outbox import Outbox
from .services.query import QueryService
from .services.subscriptions import SubscriptionService
from .store.base import Store

log = logging.getLogger(__name__)


def make_store(settings: Settings) -> Store:
    """MongoDB when ``MONGODB_URL`` is set, else the embedded SQLite store."""
    if settings.mongodb_url:
        from .store.mongo import MongoStore

        return MongoStore(settings.mongodb_url, settings.mongodb_db)
    from .store.sqlite import SqliteStore

    return SqliteStore(settings.sqlite_path)


def create_app(settings: Settings, store: Store | None = None) -> web.Application:
    """Build the NGSI-LD API application. The store is started and closed with the app."""
    app = web.Application(middlewares=[problem_middleware], client_max_size=settings.max_body_bytes)
    store = store or make_store(settings)
    bus = EventBus()
    resolver = ContextResolver(fetch_timeout=settings.context_fetch_timeout,
                               max_bytes=settings.context_max_bytes, default_core=settings.core_context,
                               failure_ttl=settings.context_failure_ttl)
    if settings.context_builtin_models:
        resolver.mirror_builtin_models()
    if settings.context_preload:  # after the built-in copies: a site's own files win
        resolver.preload(settings.context_preload)
    app[SETTINGS] = settings
    app[STORE] = store
    app[BUS] = bus
    app[RESOLVER] = resolver
    app[ENTITIES] = EntityService(store, bus)
    app[BATCH] = BatchService(app[ENTITIES])
    app[QUERY] = QueryService(app[ENTITIES])
    app[DISCOVERY] = DiscoveryService(app[ENTITIES])
    app[SERVICES] = {}
    app[RENDERED] = entities_api.RenderedCache(settings.render_cache_mb << 20)
    bus.subscribe(app[RENDERED].on_changes)  # first: cached answers go before anything else hears of a write
    app[SUBSCRIPTIONS] = SubscriptionService(store, resolver, settings.subscription_sync_interval)
    outbox = Outbox(store)
    app[DELIVERY] = DeliveryService(store, outbox, timeout=settings.notify_timeout,
                                    max_attempts=settings.notify_max_retries, core_context=settings.core_context,
                                    tls=notify_tls_context(settings.notify_ca_file, settings.notify_insecure))
    app[NOTIFICATIONS] = NotificationService(store, app[SUBSCRIPTIONS], outbox, app[DELIVERY],
                                             settings.core_context)
    bus.subscribe(app[NOTIFICATIONS].on_changes)

    system_api.add_routes(app)
    query_api.add_routes(app)  # before entities: GET /entities is a query
    entities_api.add_routes(app)
    batch_api.add_routes(app)
    discovery_api.add_routes(app)
    contexts_api.add_routes(app)
    subscriptions_api.add_routes(app)
    openapi_api.add_routes(app)  # last: it documents the routes registered above

    async def lifecycle(app: web.Application):  # type: ignore[no-untyped-def]
        await store.start()
        await resolver.start(StoreContextPersistence(store))
        log.info("store ready", extra={"fields": await store.describe()})
        log.info("modules", extra={"fields": dict(native.STATUS)})  # compiled or interpreted (native.py)
        await app[SUBSCRIPTIONS].start()
        outbox.start()
        await app[DELIVERY].start()
        await app[NOTIFICATIONS].start()
        yield
        await app[NOTIFICATIONS].close()
        await app[DELIVERY].close()
        await outbox.close()
        await app[SUBSCRIPTIONS].close()
        await resolver.close()
        await store.close()

    app.cleanup_ctx.append(lifecycle)
    return app
