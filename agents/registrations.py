"""csourceRegistrations on a remote NGSI-LD broker, so its command updates and lazy-attribute queries reach us.

With ``IOTA_CB_URL`` the broker that clients PATCH is not this process: as iotagent-node-lib does for
NGSI-LD (``registrationUtils.sendRegistrationsNgsiLD``), every device with ``commands`` or ``lazy``
attributes (its own or its group's) gets ``POST {cb}/ngsi-ld/v1/csourceRegistrations/``: the device entity
and those attribute names, ``mode: exclusive``, ``updateOps`` (commands) / ``retrieveOps`` (lazy), the
agents' provider URL as ``endpoint`` and the @context. The broker then forwards ``PATCH .../attrs/<cmd>``
and ``GET`` of lazy attributes to ``agents/context_provider.py`` on the north port.

The registration id (last segment of ``Location``) is stored on the device as ``registrationId`` and the
registration is deleted with the device. Changing a device's commands/lazy/entity replaces it (the lib
posts a second registration and keeps the first). A refusal or an unreachable broker does not fail the
provisioning: it is logged, counted in ``iota_registrations_total`` and ``iota_errors_total``
(``REGISTRATION_ERROR`` / ``UNREGISTRATION_ERROR``), and the device is stored without ``registrationId``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

from agents.errors import IotaError, RegistrationError, UnregistrationError
from agents.metrics import AgentMetrics
from agents.registry import Provisioned, Registry

log = logging.getLogger("agents.registrations")

REGISTRATION_ID = "registrationId"


def registration_body(dev: Provisioned, provider_url: str, context: Any) -> dict[str, Any] | None:
    """The ContextSourceRegistration of a device; None when it has neither commands nor lazy attributes."""
    prof = dev.profile
    names: list[str] = []
    for attr in [*prof.lazy, *prof.commands]:
        if attr.get("name") and attr["name"] not in names:
            names.append(attr["name"])
    if not names:
        return None
    operations = (["retrieveOps"] if prof.lazy else []) + (["updateOps"] if prof.commands else [])
    return {
        "type": "ContextSourceRegistration",
        "information": [{"entities": [{"type": prof.entity_type, "id": prof.entity_id}], "propertyNames": names}],
        "mode": "exclusive",
        "operations": operations,
        "endpoint": provider_url,
        "contextSourceInfo": [{"key": "jsonldContext", "value": context}],
        "@context": context,
    }


class Registrations:
    """Registers and unregisters devices on the remote broker (``IOTA_CB_URL``)."""

    def __init__(self, registry: Registry, metrics: AgentMetrics, cb_url: str, provider_url: str, context: Any,
                 timeout: float = 10.0) -> None:
        self.registry = registry
        self.metrics = metrics
        self.url = cb_url.rstrip("/") + "/ngsi-ld/v1/csourceRegistrations/"
        self.provider_url = provider_url
        self.context = context
        self.timeout = timeout
        self.session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        registry.created_hooks.append(self.autoprovisioned)

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.timeout)
        if self.session is not None:
            await self.session.close()
            self.session = None

    @staticmethod
    def _headers(dev: Provisioned) -> dict[str, str]:
        sub = dev.profile.subservice or "/"
        return {"fiware-service": dev.tenant, "fiware-servicepath": sub, "NGSILD-Tenant": dev.tenant,
                "NGSILD-Path": sub}

    def body(self, dev: Provisioned) -> dict[str, Any] | None:
        return registration_body(dev, self.provider_url, self.context)

    # ------------------------------------------------------------------ one registration
    async def register(self, dev: Provisioned) -> str | None:
        """POST the registration; its id, or None when the device needs none. Raises RegistrationError."""
        body = self.body(dev)
        if body is None:
            return None
        assert self.session is not None, "Registrations.start() was not awaited"
        prof = dev.profile
        try:
            async with self.session.post(self.url, json=body,
                                         headers={**self._headers(dev), "Content-Type": "application/ld+json"}
                                         ) as r:
                status, location, text = r.status, r.headers.get("Location"), await r.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RegistrationError(dev.device_id, prof.entity_type, f"{self.url}: {exc!r}") from None
        if status == 201 and location:
            return location.rstrip("/").rsplit("/", 1)[-1]
        raise RegistrationError(dev.device_id, prof.entity_type,
                                f"the context broker answered {status}: {text[:300]}")

    async def unregister(self, dev: Provisioned, registration_id: str) -> None:
        assert self.session is not None
        url = self.url + registration_id
        try:
            async with self.session.delete(url, headers=self._headers(dev)) as r:
                status, text = r.status, await r.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UnregistrationError(dev.device_id, dev.profile.entity_type, f"{url}: {exc!r}") from None
        if status not in (204, 404):  # 404: already gone, which is what we want
            raise UnregistrationError(dev.device_id, dev.profile.entity_type,
                                      f"the context broker answered {status}: {text[:300]}")

    def _failed(self, operation: str, exc: IotaError) -> None:
        self.metrics.registrations[(operation, "error")] += 1
        self.metrics.errors[exc.code] += 1
        log.warning("%s", exc.message, extra={"fields": {"code": exc.code}})

    async def _register_doc(self, doc: dict[str, Any]) -> bool:
        """Register one device document; True when ``registrationId`` changed on it."""
        dev = self.registry.provisioned_doc(doc)
        if dev is None:
            return False
        try:
            registration_id = await self.register(dev)
        except RegistrationError as exc:
            self._failed("register", exc)
            return False
        if registration_id is None:
            return False
        self.metrics.registrations[("register", "ok")] += 1
        doc[REGISTRATION_ID] = registration_id
        return True

    async def _unregister_doc(self, doc: dict[str, Any]) -> None:
        registration_id = doc.get(REGISTRATION_ID)
        dev = self.registry.provisioned_doc(doc) if registration_id else None
        if dev is None or not registration_id:
            return
        try:
            await self.unregister(dev, str(registration_id))
        except UnregistrationError as exc:
            self._failed("unregister", exc)
            return
        self.metrics.registrations[("unregister", "ok")] += 1

    # ------------------------------------------------------------------ provisioning events
    async def devices_created(self, docs: list[dict[str, Any]]) -> None:
        changed = [doc for doc in docs if await self._register_doc(doc)]
        for doc in changed:
            await self.registry.save_device(doc, refresh=doc is changed[-1])

    async def device_updated(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        """Replace the registration when what it declares (entity, attribute names, operations) changed."""
        old_dev, new_dev = self.registry.provisioned_doc(before), self.registry.provisioned_doc(after)
        old_body = self.body(old_dev) if old_dev else None
        new_body = self.body(new_dev) if new_dev else None
        if old_body == new_body and (after.get(REGISTRATION_ID) or new_body is None):
            return
        await self._unregister_doc(before)
        after.pop(REGISTRATION_ID, None)
        await self._register_doc(after)
        await self.registry.save_device(after)

    async def devices_deleted(self, docs: list[dict[str, Any]]) -> None:
        for doc in docs:
            await self._unregister_doc(doc)

    def autoprovisioned(self, doc: dict[str, Any]) -> None:
        """Registry hook: register a device autoprovisioned by a measure, without delaying that measure."""
        task = asyncio.ensure_future(self._register_autoprovisioned(doc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _register_autoprovisioned(self, doc: dict[str, Any]) -> None:
        try:
            if await self._register_doc(doc):
                await self.registry.save_device(doc, refresh=False)
        except Exception:  # noqa: BLE001 - a background task: log, never lose the exception silently
            log.exception("registration of autoprovisioned device %s failed", doc.get("device_id"))
