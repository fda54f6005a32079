"""The device registry: config groups and devices kept in the store, with an in-memory cache for the hot path.

Groups and devices live in keyed-document collections of the tenant named by their ``fiware-service``
(``iota_groups``, ``iota_devices``), so they are dropped with the tenant and shared by every agent process
on the same store. A group is unique by ``(resource, apikey)`` across all services, as in iotagent-node-lib:
an index document in the default tenant (``iota_group_keys``) is inserted first, so two processes
provisioning the same group concurrently cannot both succeed. The cache (apikey → groups, (apikey,
device_id) → device) is refreshed from the store after every write in this process and every
``refresh_interval`` seconds, so several processes agree within that interval. Every registry write also
stamps a version document in the default tenant; the periodic refresh reads only that document and reloads
the registry when another process changed it, so an idle registry costs one small read per interval.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agents.errors import (
    DeviceGroupNotFound,
    DeviceNotFound,
    DuplicateDeviceId,
    DuplicateGroup,
    WrongSyntax,
)
from agents.mapping import DeviceProfile, effective_device, ngsi_ld_id
from broker.errors import AlreadyExists
from broker.periodic import every, stop
from broker.store.base import DEFAULT_TENANT, Store
from broker.timeutil import now_iso
from models.iota import ConfigGroup, Device, DeviceUpdate, GroupUpdate

log = logging.getLogger("agents.registry")

GROUPS = "iota_groups"
DEVICES = "iota_devices"
GROUP_KEYS = "iota_group_keys"
VERSION = "iota_registry_version"
ALL_SUBSERVICES = "/*"


def group_key(resource: str, apikey: str) -> str:
    return f"{resource}|{apikey}"


def device_key(subservice: str, device_id: str, apikey: str | None) -> str:
    return f"{subservice}|{device_id}|{apikey or ''}"


@dataclass(slots=True)
class Provisioned:
    """A device as the southbound path needs it: stored document, its group and the merged profile."""

    doc: dict[str, Any]
    group: dict[str, Any] | None
    profile: DeviceProfile

    @property
    def tenant(self) -> str:
        return self.doc["service"]

    @property
    def device_id(self) -> str:
        return self.doc["device_id"]

    @property
    def apikey(self) -> str:
        return self.doc.get("apikey") or (self.group or {}).get("apikey") or ""

    @property
    def entity_id(self) -> str:
        return self.profile.entity_id

    def setting(self, key: str, default: Any = None) -> Any:
        """A device field, else its group's, else ``default``."""
        if self.doc.get(key) is not None:
            return self.doc[key]
        if self.group and self.group.get(key) is not None:
            return self.group[key]
        return default


@dataclass
class _Cache:
    groups_by_apikey: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    devices: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    devices_no_key: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    profiles: dict[str, Provisioned] = field(default_factory=dict)
    by_entity: dict[tuple[str, str], Provisioned] | None = None


def _doc_id(doc: dict[str, Any]) -> str:
    return f"{doc['service']}|{device_key(doc.get('service_path', '/'), doc['device_id'], doc.get('apikey'))}"


def _matches_subservice(doc_sub: str | None, wanted: str) -> bool:
    return wanted == ALL_SUBSERVICES or (doc_sub or "/") == wanted


class Registry:
    """Provisioning operations (what the north API calls) and lookups (what the transports call)."""

    def __init__(self, store: Store, *, default_resource: str = "/iot/json", refresh_interval: float = 2.0,
                 timestamp_default: bool = True) -> None:
        self.store = store
        self.default_resource = default_resource
        self.refresh_interval = refresh_interval
        self.timestamp_default = timestamp_default
        self.cache = _Cache()
        self.listeners: list[Callable[[], None]] = []
        #: called with the document of every device this process autoprovisioned (registrations, command index)
        self.created_hooks: list[Callable[[dict[str, Any]], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._version: str | None = None

    # ------------------------------------------------------------------ lifecycle and cache
    async def start(self) -> None:
        await self.refresh()
        self._task = every(self.refresh_interval, self._refresh_if_changed, "iota-registry-refresh")

    async def close(self) -> None:
        await stop(self._task)
        self._task = None

    async def _refresh_if_changed(self) -> None:
        doc = await self.store.get_doc(DEFAULT_TENANT, VERSION, "v")
        if doc is None or doc.get("v") != self._version:
            await self.refresh()

    async def changed(self) -> None:
        """Stamp a new registry version (other processes reload) and reload this process's cache."""
        self._version = uuid.uuid4().hex
        await self.store.put_doc(DEFAULT_TENANT, VERSION, "v", {"v": self._version})
        await self.refresh(keep_version=True)

    async def refresh(self, keep_version: bool = False) -> None:
        """Rebuild the cache from the store (every tenant's groups and devices)."""
        async with self._lock:
            if not keep_version:
                doc = await self.store.get_doc(DEFAULT_TENANT, VERSION, "v")
                self._version = doc.get("v") if doc else None
            cache = _Cache()
            for tenant in await self.store.tenants():
                if tenant == DEFAULT_TENANT:
                    continue
                for g in await self.store.list_docs(tenant, GROUPS):
                    cache.groups_by_apikey.setdefault(g["apikey"], []).append(g)
                for d in await self.store.list_docs(tenant, DEVICES):
                    self._index(cache, d)
            self.cache = cache
        for listener in self.listeners:
            listener()

    @staticmethod
    def _index(cache: _Cache, d: dict[str, Any]) -> None:
        if d.get("apikey"):
            cache.devices.setdefault((d["apikey"], d["device_id"]), d)
        else:
            cache.devices_no_key.setdefault((d["service"], d.get("service_path", "/"), d["device_id"]), d)

    # ------------------------------------------------------------------ groups
    async def create_groups(self, service: str, subservice: str, groups: list[ConfigGroup]) -> None:
        for g in groups:
            if not g.resource or not g.apikey:
                raise WrongSyntax("a config group needs a resource and an apikey")
        written: list[str] = []
        try:
            for g in groups:
                doc = {**g.to_wire(), "service": service, "subservice": subservice, "creationDate": now_iso()}
                key = group_key(g.resource, g.apikey)
                try:
                    await self.store.insert_doc(DEFAULT_TENANT, GROUP_KEYS, key,
                                                {"service": service, "subservice": subservice})
                except AlreadyExists:
                    raise DuplicateGroup(g.resource, g.apikey) from None
                written.append(key)
                await self.store.put_doc(service, GROUPS, key, doc)
        except BaseException:
            # all or nothing: a refused group (duplicate, or a document the store cannot hold) undoes the
            # groups of this request written before it, and never leaves its uniqueness key behind
            for key in written:
                await self.store.delete_doc(service, GROUPS, key)
                await self.store.delete_doc(DEFAULT_TENANT, GROUP_KEYS, key)
            raise
        await self.changed()

    async def list_groups(self, service: str, subservice: str) -> list[dict[str, Any]]:
        docs = await self.store.list_docs(service, GROUPS)
        return [d for d in docs if _matches_subservice(d.get("subservice"), subservice)]

    async def _find_group(self, service: str, subservice: str, resource: str, apikey: str) -> dict[str, Any]:
        doc = await self.store.get_doc(service, GROUPS, group_key(resource, apikey))
        if doc is None or not _matches_subservice(doc.get("subservice"), subservice):
            raise DeviceGroupNotFound({"resource": resource, "apikey": apikey})
        return doc

    async def update_group(self, service: str, subservice: str, resource: str, apikey: str,
                           update: GroupUpdate) -> None:
        doc = await self._find_group(service, subservice, resource, apikey)
        changes = update.to_wire()
        for fixed in ("resource", "apikey", "service", "subservice"):
            if fixed in changes and changes[fixed] != doc.get(fixed):
                raise WrongSyntax(f"{fixed} of a config group cannot be changed")
        doc.update(changes)
        await self.store.put_doc(service, GROUPS, group_key(resource, apikey), doc)
        await self.changed()

    async def delete_group(self, service: str, subservice: str, resource: str, apikey: str,
                           with_devices: bool = False) -> list[dict[str, Any]]:
        """Delete a group (and with ``device=true`` its devices); returns the deleted devices."""
        await self._find_group(service, subservice, resource, apikey)
        deleted = []
        if with_devices:
            for d in await self.store.list_docs(service, DEVICES):
                if d.get("apikey") == apikey and _matches_subservice(d.get("service_path"), subservice):
                    if await self.store.delete_doc(service, DEVICES, device_key(d["service_path"], d["device_id"],
                                                                                 d.get("apikey"))):
                        deleted.append(d)
        await self.store.delete_doc(service, GROUPS, group_key(resource, apikey))
        await self.store.delete_doc(DEFAULT_TENANT, GROUP_KEYS, group_key(resource, apikey))
        await self.changed()
        return deleted

    # ------------------------------------------------------------------ devices
    async def _group_for(self, service: str, subservice: str, device: Device | dict[str, Any]
                         ) -> dict[str, Any] | None:
        """The config group a provisioned device belongs to (its apikey, else its type, else the only one)."""
        d = device if isinstance(device, dict) else device.to_wire()
        groups = await self.list_groups(service, subservice)
        if d.get("apikey"):
            same = [g for g in groups if g["apikey"] == d["apikey"]]
            return next((g for g in same if g.get("resource") == d.get("resource")), same[0] if same else None)
        typed = [g for g in groups if d.get("entity_type") and g.get("entity_type") == d.get("entity_type")]
        if typed:
            return typed[0]
        return groups[0] if len(groups) == 1 else None

    async def create_devices(self, service: str, subservice: str, devices: list[Device]) -> list[dict[str, Any]]:
        """Store new devices; returns their documents (the caller creates their entities)."""
        created = []
        written: list[str] = []
        try:
            for dev in devices:
                doc = dev.to_wire()
                doc["service"] = service
                doc["service_path"] = subservice
                group = await self._group_for(service, subservice, doc)
                if not doc.get("apikey") and group is not None:
                    doc["apikey"] = group["apikey"]
                if not doc.get("entity_type") and not (group or {}).get("entity_type"):
                    raise WrongSyntax(f"device {dev.device_id} has no entity_type and no config group gives one")
                doc["creationDate"] = now_iso()
                key = device_key(subservice, dev.device_id, doc.get("apikey"))
                try:
                    await self.store.insert_doc(service, DEVICES, key, doc)
                except AlreadyExists:
                    raise DuplicateDeviceId(dev.device_id) from None
                written.append(key)
                created.append(doc)
        except BaseException:
            for key in written:  # all or nothing, as for groups
                await self.store.delete_doc(service, DEVICES, key)
            raise
        await self.changed()
        return created

    async def list_devices(self, service: str, subservice: str) -> list[dict[str, Any]]:
        docs = await self.store.list_docs(service, DEVICES)
        return [d for d in docs if _matches_subservice(d.get("service_path"), subservice)]

    async def get_device(self, service: str, subservice: str, device_id: str,
                         apikey: str | None = None) -> dict[str, Any]:
        for d in await self.list_devices(service, subservice):
            if d["device_id"] == device_id and (apikey is None or d.get("apikey") == apikey):
                return d
        raise DeviceNotFound(device_id, {"service": service, "subservice": subservice})

    async def update_device(self, service: str, subservice: str, device_id: str, update: DeviceUpdate,
                            apikey: str | None = None) -> dict[str, Any]:
        doc = await self.get_device(service, subservice, device_id, apikey)
        changes = update.to_wire()
        for fixed in ("device_id", "service", "entity_type"):
            if fixed in changes and changes[fixed] != doc.get(fixed):
                raise WrongSyntax(f"{fixed} of a device cannot be changed")
        if "apikey" in changes and changes["apikey"] != doc.get("apikey"):
            raise WrongSyntax("apikey of a device cannot be changed; delete and provision it again")
        doc.update(changes)
        await self.store.put_doc(service, DEVICES, device_key(doc["service_path"], device_id, doc.get("apikey")),
                                 doc)
        await self.changed()
        return doc

    async def delete_device(self, service: str, subservice: str, device_id: str,
                            apikey: str | None = None, refresh: bool = True) -> dict[str, Any]:
        doc = await self.get_device(service, subservice, device_id, apikey)
        await self.store.delete_doc(service, DEVICES, device_key(doc["service_path"], device_id, doc.get("apikey")))
        if refresh:
            await self.changed()
        return doc

    async def delete_devices(self, service: str, subservice: str, refs: list[tuple[str, str | None]]
                             ) -> tuple[list[dict[str, Any]], DeviceNotFound | None]:
        """``/iot/op/delete``: delete every device found; returns them and the first missing one (the caller
        answers 404 for it after cleaning up after the others)."""
        missing: DeviceNotFound | None = None
        deleted = []
        for device_id, apikey in refs:
            try:
                deleted.append(await self.delete_device(service, subservice, device_id, apikey, refresh=False))
            except DeviceNotFound as exc:
                missing = missing or exc
        await self.changed()
        return deleted, missing

    async def save_device(self, doc: dict[str, Any], *, refresh: bool = True) -> None:
        """Store a changed device document (e.g. its ``registrationId``). Without ``refresh`` only the
        version is stamped (other processes reload; this one keeps ``doc``, already in its cache)."""
        await self.store.put_doc(doc["service"], DEVICES,
                                 device_key(doc.get("service_path", "/"), doc["device_id"], doc.get("apikey")), doc)
        if refresh:
            await self.changed()
        else:
            self._version = uuid.uuid4().hex
            await self.store.put_doc(DEFAULT_TENANT, VERSION, "v", {"v": self._version})

    # ------------------------------------------------------------------ southbound lookups
    def groups_for(self, apikey: str) -> list[dict[str, Any]]:
        return self.cache.groups_by_apikey.get(apikey, [])

    def find_group(self, apikey: str, resource: str | None) -> dict[str, Any] | None:
        """The group of a southbound message: by (resource, apikey) over HTTP, by apikey over MQTT
        (the default resource's group first, as iotagent-json's MQTT binding looks it up)."""
        groups = self.groups_for(apikey)
        if not groups:
            return None
        wanted = resource or self.default_resource
        for g in groups:
            if g.get("resource") == wanted:
                return g
        return None if resource else groups[0]

    def find_device(self, apikey: str, device_id: str, group: dict[str, Any] | None) -> dict[str, Any] | None:
        d = self.cache.devices.get((apikey, device_id))
        if d is None and group is not None:
            d = self.cache.devices_no_key.get((group["service"], group.get("subservice", "/"), device_id))
        return d

    def provisioned(self, doc: dict[str, Any], group: dict[str, Any] | None) -> Provisioned:
        """The merged profile of a device, cached until the next refresh."""
        key = _doc_id(doc)
        hit = self.cache.profiles.get(key)
        if hit is not None and hit.doc is doc and hit.group is group:
            return hit
        profile = effective_device(doc, group, service=doc["service"], subservice=doc.get("service_path", "/"),
                                   timestamp_default=self.timestamp_default)
        item = Provisioned(doc, group, profile)
        self.cache.profiles[key] = item
        return item

    async def autoprovision(self, group: dict[str, Any], device_id: str, transport: str, protocol: str
                            ) -> dict[str, Any]:
        """Register a device seen for the first time (stored "empty": it inherits from its group)."""
        doc = {"device_id": device_id, "apikey": group["apikey"], "service": group["service"],
               "service_path": group.get("subservice", "/"), "entity_type": group.get("entity_type"),
               "transport": transport, "protocol": protocol, "autoprovisioned": True,
               "creationDate": now_iso()}
        if doc["entity_type"] is None:
            doc.pop("entity_type")
        key = device_key(doc["service_path"], device_id, doc["apikey"])
        try:
            await self.store.insert_doc(doc["service"], DEVICES, key, doc)
        except AlreadyExists:  # another process (or message) provisioned it first
            stored = await self.store.get_doc(doc["service"], DEVICES, key)
            doc = stored or doc
        else:
            self._version = uuid.uuid4().hex  # other processes reload; this one indexes it below
            await self.store.put_doc(DEFAULT_TENANT, VERSION, "v", {"v": self._version})
            self._index(self.cache, doc)
            self.cache.by_entity = None
            for hook in self.created_hooks:
                hook(doc)
            return doc
        self._index(self.cache, doc)
        self.cache.by_entity = None
        return self.cache.devices.get((doc["apikey"], device_id), doc)

    def provisioned_doc(self, doc: dict[str, Any]) -> Provisioned | None:
        """The profile of a stored device document with its group; None for a device without a type."""
        group = self.find_group(doc["apikey"], doc.get("resource")) if doc.get("apikey") else None
        try:
            return self.provisioned(doc, group)
        except Exception:  # noqa: BLE001 - a device without a type has no entity yet
            return None

    def all_provisioned(self) -> list[Provisioned]:
        out = []
        for d in [*self.cache.devices.values(), *self.cache.devices_no_key.values()]:
            p = self.provisioned_doc(d)
            if p is not None:
                out.append(p)
        return out

    def command_devices(self) -> list[Provisioned]:
        """Every cached device that has commands (the command dispatcher's index)."""
        return [p for p in self.all_provisioned() if p.profile.commands]

    def devices_for_entity(self, entity_id: str, tenant: str | None = None) -> list[Provisioned]:
        """The devices whose entity is ``entity_id`` (in ``tenant``, or in any tenant when None): what a
        forwarded NGSI-LD request names. The index is rebuilt lazily after every registry change."""
        cache = self.cache
        if cache.by_entity is None:
            cache.by_entity = {(p.tenant, p.entity_id): p for p in self.all_provisioned()}
        if tenant is not None:
            hit = cache.by_entity.get((tenant, entity_id))
            return [hit] if hit is not None else []
        return [p for (_, eid), p in cache.by_entity.items() if eid == entity_id]


def display_device(doc: dict[str, Any]) -> dict[str, Any]:
    """A device as ``GET /iot/devices`` shows it (entity_name defaults to the NGSI-LD id)."""
    out = {k: v for k, v in doc.items() if k not in ("autoprovisioned", "registrationId")}
    if not out.get("entity_name") and out.get("entity_type"):
        out["entity_name"] = ngsi_ld_id(out["device_id"], out["entity_type"])
    return out
