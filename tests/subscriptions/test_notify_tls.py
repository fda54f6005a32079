"""HTTPS and MQTTS notifications to real TLS receivers whose certificates come from a private CA."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import orjson
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient

from broker.app import create_app
from broker.services.delivery import notify_tls_context
from tests.conftest import BrokerTestServer, open_store
from tests.conftest import test_settings as broker_settings
from tests.subscriptions.receiver import Receiver
from tests.subscriptions.test_notify_http import create, room, status_when, subscribe
from tests.subscriptions.test_notify_mqtt import next_message
from tests.subscriptions.tls import Pki, make_pki, mosquitto_tls


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def mqtts_port(pki: Pki) -> Iterator[int]:
    with mosquitto_tls(pki) as port:
        yield port


@pytest_asyncio.fixture
async def https_receiver(pki: Pki) -> AsyncIterator[Receiver]:
    r = await Receiver(tls=pki.server).start()
    try:
        yield r
    finally:
        await r.stop()


async def _broker(tmp_path: Path, services, **settings: object) -> TestClient:  # type: ignore[no-untyped-def]
    store = await open_store("sqlite", services, tmp_path)
    client = TestClient(BrokerTestServer(create_app(broker_settings(notify_max_retries=1, **settings), store=store)))
    await client.start_server()
    return client


@pytest.mark.parametrize("settings", ["ca_file", "insecure"])
async def test_https_notification(settings: str, pki: Pki, https_receiver: Receiver, services,  # type: ignore[no-untyped-def]
                                  tmp_path: Path) -> None:
    given = {"notify_ca_file": pki.ca_file} if settings == "ca_file" else {"notify_insecure": True}
    client = await _broker(tmp_path, services, **given)
    try:
        assert https_receiver.url.startswith("https://")
        sub_id = await subscribe(client, https_receiver.url)
        await create(client, room(1))
        got = await https_receiver.next()
        assert got["body"]["subscriptionId"] == sub_id and got["body"]["data"] == [room(1)]
        await status_when(client, sub_id, lambda n: n.get("timesSent") == 1 and n.get("status") == "ok")
    finally:
        await client.close()


async def test_https_receiver_with_an_unknown_ca_is_a_failure(https_receiver: Receiver, services,  # type: ignore[no-untyped-def]
                                                              tmp_path: Path) -> None:
    client = await _broker(tmp_path, services)  # trusts the system's CAs only
    try:
        sub_id = await subscribe(client, https_receiver.url)
        await create(client, room(2))
        got = await status_when(client, sub_id, lambda n: n.get("timesFailed") == 1)
        assert got["notification"]["status"] == "failed"
        assert https_receiver.received.empty()
    finally:
        await client.close()


async def _mqtts_roundtrip(client: TestClient, pki: Pki, port: int) -> dict[str, object]:
    topic = f"notify/{uuid.uuid4().hex}"
    uri = f"mqtts://localhost:{port}/{topic}"
    tls = notify_tls_context(pki.ca_file)
    async with aiomqtt.Client("localhost", port, tls_context=tls) as listener:
        await listener.subscribe(topic, qos=1)
        sub_id = await subscribe(client, uri)
        await create(client, room(3))
        message = await next_message(listener)
    body = orjson.loads(message.payload)["body"]  # type: ignore[arg-type]
    assert body["subscriptionId"] == sub_id
    return body


async def test_mqtts_notification(pki: Pki, mqtts_port: int, services, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client = await _broker(tmp_path, services, notify_ca_file=pki.ca_file)
    try:
        body = await _mqtts_roundtrip(client, pki, mqtts_port)
        assert body["data"] == [room(3)]
    finally:
        await client.close()


async def test_mqtts_broker_with_an_unknown_ca_is_a_failure(mqtts_port: int, services, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client = await _broker(tmp_path, services)
    try:
        sub_id = await subscribe(client, f"mqtts://localhost:{mqtts_port}/t")
        await create(client, room(4))
        got = await status_when(client, sub_id, lambda n: n.get("timesFailed") == 1)
        assert got["notification"]["status"] == "failed"
    finally:
        await client.close()


def test_unreadable_ca_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="NOTIFY_CA_FILE"):
        notify_tls_context(str(tmp_path / "missing.pem"))
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ValueError, match="NOTIFY_CA_FILE"):
        notify_tls_context(str(bad))
