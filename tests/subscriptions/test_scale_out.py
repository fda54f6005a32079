"""Two broker instances on one FerretDB: a subscription made on one is honoured by the other."""

from __future__ import annotations

import asyncio
import time
import uuid

from aiohttp.test_utils import TestClient, TestServer

from broker.api.keys import SUBSCRIPTIONS
from broker.app import create_app
from broker.store.mongo import MongoStore
from tests.conftest import close_store, open_store
from tests.conftest import test_settings as broker_settings
from tests.subscriptions.receiver import Receiver
from tests.subscriptions.test_notify_http import JSON, SUBS, create, room, subscribe, temp, update


async def _instance(url: str, prefix: str) -> TestClient:
    store = MongoStore(url, prefix)
    app = create_app(broker_settings(subscription_sync_interval=0.2, mongodb_url=url), store=store)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_subscription_created_on_one_instance_notifies_from_the_other(services, tmp_path,  # type: ignore[no-untyped-def]
                                                                           receiver: Receiver) -> None:
    prefix = "t" + uuid.uuid4().hex[:10]
    a = await _instance(services.mongodb_url, prefix)
    b = await _instance(services.mongodb_url, prefix)
    try:
        await create(b, room(1))
        sub_id = await subscribe(a, receiver.url, headers={"NGSILD-Tenant": "shared"},
                                 entities=[{"type": "Room"}])
        await create(b, room(2), {"NGSILD-Tenant": "shared"})  # a new tenant, written through b
        started = time.monotonic()
        # b learns about the subscription from the store (sync interval 0.2 s) ...
        while b.app[SUBSCRIPTIONS].compiled("shared", sub_id) is None:
            assert time.monotonic() - started < 10
            await asyncio.sleep(0.02)
        print(f"subscription visible on the other instance after {time.monotonic() - started:.2f}s")
        # ... and an update made through b notifies
        await update(b, "urn:ngsi-ld:Room:2", temp(30), {"NGSILD-Tenant": "shared"})
        got = (await receiver.next())["body"]
        while got["data"][0]["temperature"]["value"] != 30:  # the create may have notified first through a
            got = (await receiver.next())["body"]
        assert got["subscriptionId"] == sub_id
        # an update of the subscription on b is seen by a
        r = await b.patch(f"{SUBS}/{sub_id}", json={"isActive": False}, headers={**JSON, "NGSILD-Tenant": "shared"})
        assert r.status == 204
        while a.app[SUBSCRIPTIONS].compiled("shared", sub_id).doc.get("isActive", True):  # type: ignore[union-attr]
            await asyncio.sleep(0.02)
        # deletion on a removes it from b
        assert (await a.delete(f"{SUBS}/{sub_id}", headers={"NGSILD-Tenant": "shared"})).status == 204
        while b.app[SUBSCRIPTIONS].compiled("shared", sub_id) is not None:
            await asyncio.sleep(0.02)
    finally:
        await a.close()
        await b.close()
        await close_store(await open_store("mongo", services, tmp_path, prefix=prefix))
