"""With ``IOTA_CB_URL`` the agents write to any NGSI-LD broker over HTTP, as iotagent-node-lib does: here our
own broker, started as a second app on another port with its own store."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from broker.api.server import BrokerRunner
from broker.app import create_app
from tests.agents.conftest import APIKEY, SERVICE, open_stack
from tests.conftest import open_store
from tests.conftest import test_settings as settings_for
from tests.services import Services, free_port


async def test_measures_go_to_the_remote_broker(services: Services, tmp_path: Any) -> None:
    remote_port = free_port()
    remote_store = await open_store("sqlite", services, tmp_path)
    remote = create_app(settings_for(port=remote_port), store=remote_store)
    runner = BrokerRunner(remote, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", remote_port).start()
    local_dir = tmp_path / "local"
    local_dir.mkdir()
    stack, close = await open_stack("sqlite", services, local_dir, iota_cb_url=f"http://127.0.0.1:{remote_port}")
    try:
        await stack.provision_group("/iot/json")
        await stack.provision_devices({"device_id": "motion001", "entity_name": "urn:ngsi-ld:Motion:001",
                                       "entity_type": "Motion",
                                       "attributes": [{"object_id": "c", "name": "count", "type": "Integer"}]})
        status, _ = await stack.call("POST", f"{stack.south}/iot/json?k={APIKEY}&i=motion001",
                                     json=[{"c": 1}, {"c": 2}])
        assert status == 200
        remote_url = f"http://127.0.0.1:{remote_port}"
        status, entity = await stack.call("GET", f"{remote_url}/ngsi-ld/v1/entities/urn:ngsi-ld:Motion:001",
                                          headers={"NGSILD-Tenant": SERVICE})
        assert status == 200, entity
        assert entity["type"] == "Motion" and entity["count"]["value"] == 2
        # nothing was written in-process
        assert (await stack.entity("urn:ngsi-ld:Motion:001"))[0] == 404
        # configuration reads come from the remote broker too
        values = await stack.runtime.agents.writer.read(SERVICE, "urn:ngsi-ld:Motion:001", ["count"])
        assert values == {"count": 2}
    finally:
        await runner.cleanup()
    # the remote broker is gone: the device gets an error, not a silent drop
    status, body = await stack.call("POST", f"{stack.south}/iot/json?k={APIKEY}&i=motion001", json={"c": 3})
    await close()
    assert status == 500 and body["name"] == "ENTITY_GENERIC_ERROR"
    assert "Cannot connect" in body["message"] or "Connect" in body["message"]
