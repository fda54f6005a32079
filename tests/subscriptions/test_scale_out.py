"""Two broker instances on one FerretDB: a subscription made on one is honoured by the other."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid

from aiohttp.test_utils import TestClient

from broker.api.keys import DELIVERY, SUBSCRIPTIONS
from broker.app import create_app
from broker.store.mongo import MongoStore
from broker.timeutil import parse_iso
from tests.conftest import BrokerTestServer, close_store, open_store
from tests.conftest import test_settings as broker_settings
from tests.subscriptions.receiver import Receiver
from tests.subscriptions.test_notify_http import (
    JSON,
    SUBS,
    create,
    room,
    status_when,
    subscribe,
    temp,
    update,
)


async def _instance(url: str, prefix: str) -> TestClient:
    store = MongoStore(url, prefix)
    app = create_app(broker_settings(subscription_sync_interval=0.2, mongodb_url=url), store=store)
    client = TestClient(BrokerTestServer(app))
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


async def _drain(receiver: Receiver, n: int) -> None:
    for _ in range(n):
        await receiver.next()


async def test_counters_of_two_instances_add_up(services, tmp_path, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    """Both instances notify for one subscription and flush their counters at the same moments:
    the stored counts are the sum of both (each process writes only its own counter document)."""
    prefix = "t" + uuid.uuid4().hex[:10]
    a = await _instance(services.mongodb_url, prefix)
    b = await _instance(services.mongodb_url, prefix)
    dead = Receiver()  # a port nothing listens on: every attempt fails
    try:
        for n in (1, 2):
            await create(a, room(n))
        sub_id = await subscribe(a, receiver.url, watchedAttributes=["temperature"])
        bad_id = await subscribe(a, dead.url, watchedAttributes=["temperature"],
                                 entities=[{"type": "Room", "id": "urn:ngsi-ld:Room:2"}])
        while b.app[SUBSCRIPTIONS].compiled("", bad_id) is None:
            await asyncio.sleep(0.02)
        a.app[DELIVERY].max_attempts = b.app[DELIVERY].max_attempts = 1
        rounds = 5
        for i in range(rounds):
            await asyncio.gather(update(a, "urn:ngsi-ld:Room:1", temp(i)), update(b, "urn:ngsi-ld:Room:1", temp(i)),
                                 update(a, "urn:ngsi-ld:Room:2", temp(i)), update(b, "urn:ngsi-ld:Room:2", temp(i)))
            await _drain(receiver, 4)  # Room:1 and Room:2 changes through both instances
            await asyncio.gather(a.app[DELIVERY].flush_stats(), b.app[DELIVERY].flush_stats())
        for client in (a, b):
            await status_when(client, bad_id, lambda n: n.get("timesFailed") == 2 * rounds)
            got = await status_when(client, sub_id, lambda n: n.get("timesSent") == 4 * rounds)
            assert got["notification"]["status"] == "ok" and "timesFailed" not in got["notification"]
            bad = await (await client.get(f"{SUBS}/{bad_id}")).json()
            assert bad["notification"]["timesSent"] == 2 * rounds and bad["notification"]["status"] == "failed"
        # deleting the subscription removes every instance's counters
        assert (await b.delete(f"{SUBS}/{sub_id}")).status == 204
        assert await a.app[DELIVERY].store.list_docs("", "subscription_status", prefix=f"{sub_id} ") == []
    finally:
        await a.close()
        await b.close()
        await close_store(await open_store("mongo", services, tmp_path, prefix=prefix))


async def test_periodic_subscription_fires_once_per_interval_across_instances(  # type: ignore[no-untyped-def]
        services, tmp_path, receiver: Receiver) -> None:
    prefix = "t" + uuid.uuid4().hex[:10]
    a = await _instance(services.mongodb_url, prefix)
    b = await _instance(services.mongodb_url, prefix)
    try:
        await create(a, room(1))
        sub_id = await subscribe(a, receiver.url, timeInterval=1)
        while b.app[SUBSCRIPTIONS].compiled("", sub_id) is None:
            await asyncio.sleep(0.02)
        await asyncio.sleep(4.5)  # both instances run their schedulers for four whole periods
        got = []
        while not receiver.received.empty():
            got.append(receiver.received.get_nowait()["body"])
        assert all(n["subscriptionId"] == sub_id for n in got)
        # one notification per period in total (4, or 3-5 at the edges of the window), not one per instance
        assert 3 <= len(got) <= 5, [n["notifiedAt"] for n in got]
        times = sorted(parse_iso(n["notifiedAt"]) for n in got)
        assert all((t2 - t1).total_seconds() > 0.5 for t1, t2 in itertools.pairwise(times)), times
        # the period documents do not pile up, and go with the subscription
        leases = await a.app[DELIVERY].store.list_docs("", "periodic_leases", prefix=f"{sub_id} ")
        assert 1 <= len(leases) <= 2
        assert (await a.delete(f"{SUBS}/{sub_id}")).status == 204
        deadline = time.monotonic() + 10
        while await a.app[DELIVERY].store.list_docs("", "periodic_leases", prefix=f"{sub_id} "):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    finally:
        await a.close()
        await b.close()
        await close_store(await open_store("mongo", services, tmp_path, prefix=prefix))
