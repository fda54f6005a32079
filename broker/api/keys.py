"""Typed application state (``web.AppKey``), shared by the factory and the handlers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from ..config import Settings
    from ..jsonld.resolver import ContextResolver
    from ..services.batch import BatchService
    from ..services.delivery import DeliveryService
    from ..services.discovery import DiscoveryService
    from ..services.entities import EntityService
    from ..services.events import EventBus
    from ..services.notifications import NotificationService
    from ..services.query import QueryService
    from ..services.subscriptions import SubscriptionService
    from ..store.base import Store
    from .entities import RenderedCache

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
STORE: web.AppKey[Store] = web.AppKey("store")
RESOLVER: web.AppKey[ContextResolver] = web.AppKey("resolver")
BUS: web.AppKey[EventBus] = web.AppKey("bus")
ENTITIES: web.AppKey[EntityService] = web.AppKey("entities")
BATCH: web.AppKey[BatchService] = web.AppKey("batch")
SERVICES: web.AppKey[dict[str, Any]] = web.AppKey("services")
QUERY: web.AppKey[QueryService] = web.AppKey("query")
DISCOVERY: web.AppKey[DiscoveryService] = web.AppKey("discovery")
SUBSCRIPTIONS: web.AppKey[SubscriptionService] = web.AppKey("subscriptions")
NOTIFICATIONS: web.AppKey[NotificationService] = web.AppKey("notifications")
DELIVERY: web.AppKey[DeliveryService] = web.AppKey("delivery")
RENDERED: web.AppKey[RenderedCache] = web.AppKey("rendered")
