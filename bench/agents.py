"""MQTT ingestion benchmark: measures published to Mosquitto → entity updated in the store, per second.

One run, same Mosquitto, same messages, two consumers in turn, each pinned to core 0 while this load
generator runs on core 1:

1. ``bare``: a bare aiomqtt subscriber (QoS 1, same topic filter) that only counts messages: the rate at
   which Mosquitto can deliver this traffic to one Python consumer;
2. ``agent``: the real broker process (``python -m broker``, agents on, embedded store or FerretDB), with a
   config group that autoprovisions ``--devices`` devices (provisioned in a warm-up round before the clock).

Throughput = measures / (time of the last accepted write − time of the first publish), from the agent's own
``iota_measures_accepted_total`` (``GET :4041/metrics``), which counts a measure only after its write
finished. Latency: a probe device publishes a numbered measure every 50 ms during the load; an NGSI-LD
subscription on its type notifies this process over HTTP; publish→notification received is an upper bound of
publish→stored (it adds the notification hop). Reported: p50 and p99.

    .venv/bin/python bench/agents.py --store sqlite --messages 100000
    .venv/bin/python bench/agents.py --store mongo --messages 50000

Uses MQTT_URL / MONGODB_URL when set, else starts Mosquitto / FerretDB like the tests do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import aiomqtt  # noqa: E402
from aiohttp import web  # noqa: E402

from tests.services import Services, find_mosquitto, free_port, wait_port  # noqa: E402

APIKEY = "benchkey"
SERVICE = "bench"
HEADERS = {"fiware-service": SERVICE, "fiware-servicepath": "/"}
FILTER = f"/json/{APIKEY}/+/attrs"


def pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > core:  # type: ignore[operator]
        os.sched_setaffinity(0, {core})


NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def mqtt(url: str, **kw: Any) -> aiomqtt.Client:
    u = urlsplit(url)
    client = aiomqtt.Client(u.hostname or "127.0.0.1", u.port or 1883, protocol=aiomqtt.ProtocolVersion.V5,
                            socket_options=NODELAY, **kw)
    client.pending_calls_threshold = 1 << 30  # we bound concurrency ourselves
    return client


def start_mosquitto() -> tuple[subprocess.Popen[bytes], str]:
    """A Mosquitto for this run: TCP_NODELAY on (small messages must not wait for Nagle), deep queues."""
    tmp = tempfile.mkdtemp(prefix="bench-mosquitto-")
    port = free_port()
    conf = Path(tmp) / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 1000000\nset_tcp_nodelay true\n")
    proc = subprocess.Popen([find_mosquitto(), "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_port(port, proc, "Mosquitto")
    return proc, f"mqtt://127.0.0.1:{port}"


async def publish_all(url: str, messages: int, devices: int, concurrency: int = 2000,
                      probe: dict[int, float] | None = None, rate: float = 0) -> tuple[float, float]:
    """QoS 1 publishes with bounded concurrency; returns (first publish, last PUBACK) monotonic times."""
    async with mqtt(url, max_inflight_messages=concurrency) as c:
        sem = asyncio.Semaphore(concurrency)
        start = time.perf_counter()
        next_probe = start
        seq = 0

        async def one(topic: str, payload: bytes) -> None:
            try:
                await c.publish(topic, payload, qos=1)
            finally:
                sem.release()

        tasks = []
        for i in range(messages):
            if rate and i % 50 == 0:
                ahead = start + i / rate - time.perf_counter()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            await sem.acquire()
            payload = b'{"t":%d,"h":%d}' % (i, i % 100)
            tasks.append(asyncio.create_task(one(f"/json/{APIKEY}/dev{i % devices}/attrs", payload)))
            if probe is not None and time.perf_counter() >= next_probe:
                seq += 1
                probe[seq] = time.time()
                await sem.acquire()
                tasks.append(asyncio.create_task(one(f"/json/{APIKEY}/probe/attrs", b'{"seq":%d}' % seq)))
                next_probe += 0.05
        await asyncio.gather(*tasks)
        return start, time.perf_counter()


# ---------------------------------------------------------------------- bare subscriber
BARE = r"""
import asyncio, sys, time, os, socket
import aiomqtt
from urllib.parse import urlsplit
os.sched_setaffinity(0, {0})
url, n, filt = sys.argv[1], int(sys.argv[2]), sys.argv[3]
u = urlsplit(url)
async def main():
    nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    async with aiomqtt.Client(u.hostname, u.port, protocol=aiomqtt.ProtocolVersion.V5,
                              socket_options=nodelay) as c:
        await c.subscribe(filt, qos=1)
        print("ready", flush=True)
        count, first = 0, None
        async for m in c.messages:
            if first is None:
                first = time.perf_counter()
            count += 1
            if count == n:
                print(f"done {time.perf_counter() - first:.6f}", flush=True)
                return
asyncio.run(main())
"""


async def run_bare(url: str, messages: int, devices: int) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", BARE, url, str(messages), FILTER,
                                                stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert (await proc.stdout.readline()).strip() == b"ready"
    start, acked = await publish_all(url, messages, devices)
    line = (await asyncio.wait_for(proc.stdout.readline(), 300)).decode().split()
    await proc.wait()
    # the subscriber measured first→last message; add nothing for the publish side
    elapsed = float(line[1])
    return {"messages": messages, "seconds": round(elapsed, 3), "rate": round(messages / elapsed)}


# ---------------------------------------------------------------------- the agent
async def metric(session: aiohttp.ClientSession, north: str, name: str) -> int:
    async with session.get(north + "/metrics") as r:
        text = await r.text()
    for line in text.splitlines():
        if line.startswith(name):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


async def run_agent(url: str, store: str, mongodb_url: str, messages: int, devices: int,
                    rate: float = 0) -> dict[str, Any]:
    ports = (free_port(), free_port(), free_port())
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-agents-{os.getpid()}.sqlite3"
    profile = os.environ.get("BENCH_AGENT_PROFILE")  # cProfile output file for the broker process
    prof = ["-m", "cProfile", "-o", f"{profile}.{'paced' if rate else 'max'}"] if profile else []
    args = [sys.executable, *prof, "-m", "broker", "--host", "127.0.0.1", "--port", str(ports[0]),
            "--iota-north-port", str(ports[1]), "--iota-http-port", str(ports[2]), "--mqtt-url", url,
            "--log-level", "WARNING"]
    if store == "mongo":
        args += ["--mongodb-url", mongodb_url, "--mongodb-db", f"bench{os.getpid()}"]
    else:
        args += ["--sqlite-path", str(tmp)]
    taskset = ["taskset", "-c", "0"] if os.cpu_count() and os.cpu_count() > 1 else []  # type: ignore[operator]
    proc = subprocess.Popen(taskset + args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    broker, north = f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}"
    latencies: list[float] = []
    sent_at: dict[int, float] = {}
    receiver = web.Application()

    async def notified(request: web.Request) -> web.Response:
        now = time.time()
        body = await request.json()
        for e in body.get("data", []):
            seq = (e.get("seq") or {}).get("value")
            if isinstance(seq, int) and seq in sent_at:
                latencies.append(now - sent_at.pop(seq))
        return web.Response()

    receiver.router.add_post("/n", notified)
    rrunner = web.AppRunner(receiver, access_log=None)
    await rrunner.setup()
    rport = free_port()
    await web.TCPSite(rrunner, "127.0.0.1", rport).start()
    try:
        await asyncio.to_thread(wait_port, ports[1], proc, "agents", 60)
        async with aiohttp.ClientSession() as s:
            for _ in range(200):  # the MQTT consumer subscribes just after the ports open
                async with s.get(north + "/iot/about") as r:
                    if (await r.json())["connections"]["mqtt"] == "ok":
                        break
                await asyncio.sleep(0.05)
            group = {"apikey": APIKEY, "resource": "/iot/json", "entity_type": "Meter", "timestamp": True}
            async with s.post(north + "/iot/groups", json={"groups": [group]}, headers=HEADERS) as r:
                assert r.status == 201, await r.text()
            probe_dev = {"device_id": "probe", "entity_type": "Probe",
                         "attributes": [{"object_id": "seq", "name": "seq", "type": "Integer"}]}
            async with s.post(north + "/iot/devices", json={"devices": [probe_dev]}, headers=HEADERS) as r:
                assert r.status == 201, await r.text()
            sub = {"type": "Subscription", "entities": [{"type": "Probe"}], "watchedAttributes": ["seq"],
                   "notification": {"endpoint": {"uri": f"http://127.0.0.1:{rport}/n"}}}
            async with s.post(broker + "/ngsi-ld/v1/subscriptions", json=sub,
                              headers={"NGSILD-Tenant": SERVICE}) as r:
                assert r.status == 201, await r.text()
            # warm-up: every device autoprovisioned and its entity created before the clock starts
            await publish_all(url, devices, devices)
            while await metric(s, north, "iota_measures_accepted_total") < devices:
                await asyncio.sleep(0.05)
            base = await metric(s, north, "iota_measures_accepted_total")

            probe_task = asyncio.create_task(publish_all(url, messages, devices, probe=sent_at, rate=rate))
            await asyncio.sleep(0)
            last_seen, done_at = base, None
            first_publish = time.perf_counter()
            while True:
                if probe_task.done():
                    probe_task.result()
                accepted = await metric(s, north, "iota_measures_accepted_total")
                if accepted != last_seen:
                    last_seen, done_at = accepted, time.perf_counter()
                if probe_task.done() and accepted - base >= messages + len(sent_at) + len(latencies):
                    break
                await asyncio.sleep(0.02)
            await probe_task
            probes = len(sent_at) + len(latencies)
            await asyncio.sleep(1.0)  # last notifications
            rejected = await metric(s, north, "iota_measures_rejected_total")
            elapsed = (done_at or time.perf_counter()) - first_publish
            total = messages + probes
            lat = sorted(latencies)
            return {"store": store, "offered_rate": rate or "max", "messages": total, "seconds": round(elapsed, 3), "rate": round(total / elapsed),
                    "rejected": rejected, "probes": probes, "latency_samples": len(lat),
                    "p50_ms": round(statistics.median(lat) * 1000, 1) if lat else None,
                    "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 1) if lat else None}
    finally:
        await rrunner.cleanup()
        proc.send_signal(2)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        for suffix in ("", "-wal", "-shm"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", choices=["sqlite", "mongo", "both"], default="both")
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--latency-rate", type=float, default=0.5,
                    help="second pass paced at this fraction of the measured throughput, for latency")
    args = ap.parse_args()
    pin(1)
    services = Services()
    mosquitto = None
    if os.environ.get("MQTT_URL"):
        services.mqtt_url = os.environ["MQTT_URL"]
    else:
        mosquitto, services.mqtt_url = start_mosquitto()
    if args.store in ("mongo", "both"):
        if os.environ.get("MONGODB_URL"):
            services.mongodb_url = os.environ["MONGODB_URL"]
        else:
            services._start_mongo()  # noqa: SLF001
    try:
        print(json.dumps({"loadavg": os.getloadavg(), "cpus": os.cpu_count()}), flush=True)
        results: dict[str, Any] = {"bare": await run_bare(services.mqtt_url, args.messages, args.devices)}
        print(json.dumps({"bare": results["bare"]}), flush=True)
        for store in (["sqlite", "mongo"] if args.store == "both" else [args.store]):
            r = await run_agent(services.mqtt_url, store, services.mongodb_url, args.messages, args.devices)
            r["vs_bare"] = round(r["rate"] / results["bare"]["rate"], 2)
            results[store] = r
            print(json.dumps({store: r}), flush=True)
            if args.latency_rate:
                paced = await run_agent(services.mqtt_url, store, services.mongodb_url,
                                        max(1000, args.messages // 4), args.devices,
                                        rate=round(r["rate"] * args.latency_rate))
                print(json.dumps({store + "_paced": paced}), flush=True)
    finally:
        services.stop()
        if mosquitto is not None:
            mosquitto.terminate()
            mosquitto.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
