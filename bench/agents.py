"""MQTT ingestion benchmark: measures published to Mosquitto → entity updated in the store, per second.

The publisher must not be what is measured, so throughput is measured on a *backlog*: the consumer under
test connects and subscribes (QoS 1, persistent session), is frozen with SIGSTOP, all messages are
published with QoS 1 (Mosquitto queues them for the session: ``max_queued_messages 0`` = no limit), then
the consumer is resumed (SIGCONT) and the clock runs until the last message is handled. Same Mosquitto,
same messages, in one run:

1. ``bare``: a subscriber process that only counts and acks, once with the agents' own MQTT client
   (``agents/mqttclient.py``) and once with aiomqtt (paho): how fast Mosquitto feeds one Python consumer;
2. ``agent``: the real broker process (``python -m broker``, agents on, embedded store or FerretDB), with a
   config group that autoprovisions ``--devices`` devices (provisioned in a warm-up round before the
   backlog). Done = the agent's ``iota_measures_accepted_total`` (``GET :4041/metrics``, counted after the
   write) reached the backlog.

Every consumer is pinned to core 0, this process (publisher, webhook) to core 1. CPU = the consumer's
user+system time (``/proc/<pid>/stat``) during the drain, per 1,000 measures.

Latency (``paced``): the agent live, the publisher open-loop at ``--latency-rate`` × the measured agent
rate; a probe device publishes a numbered measure every 50 ms; an NGSI-LD subscription on its type
notifies this process over HTTP; publish→notification received is an upper bound of publish→stored (it
adds the notification hop). Reported: p50 and p99.

    .venv/bin/python bench/agents.py --store sqlite --messages 100000
    .venv/bin/python bench/agents.py --store mongo --mongo-messages 1000 --mongo-devices 100

Uses MQTT_URL / MONGODB_URL when set, else starts Mosquitto / FerretDB like the tests do (a given
Mosquitto needs ``max_queued_messages 0`` for backlogs beyond 1,000).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
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
from aiohttp import web  # noqa: E402

from agents import mqttclient  # noqa: E402
from tests.services import Services, find_mosquitto, free_port, wait_port  # noqa: E402

APIKEY = "benchkey"
SERVICE = "bench"
HEADERS = {"fiware-service": SERVICE, "fiware-servicepath": "/"}
FILTER = f"/json/{APIKEY}/+/attrs"
TICK = os.sysconf("SC_CLK_TCK")


def pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > core:  # type: ignore[operator]
        os.sched_setaffinity(0, {core})


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its reaped children are not counted)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def start_mosquitto() -> tuple[subprocess.Popen[bytes], str]:
    """A Mosquitto for this run: TCP_NODELAY on, queues without limit (the backlog waits there)."""
    tmp = tempfile.mkdtemp(prefix="bench-mosquitto-")
    port = free_port()
    conf = Path(tmp) / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 0\nmax_queued_bytes 0\nmax_inflight_messages 1000\n"
                    "set_tcp_nodelay true\n")
    proc = subprocess.Popen([find_mosquitto(), "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_port(port, proc, "Mosquitto")
    return proc, f"mqtt://127.0.0.1:{port}"


def payload(i: int) -> tuple[str, bytes]:
    return f"/json/{APIKEY}/dev{i % DEVICES}/attrs", b'{"t":%d,"h":%d}' % (i, i % 100)


DEVICES = 1000


def _ignore(*_: Any) -> None:
    return None


async def publisher(url: str) -> mqttclient.Connection:
    u = urlsplit(url)
    return await mqttclient.connect(u.hostname or "127.0.0.1", u.port or 1883, f"bench-pub-{os.getpid()}",
                                    _ignore)


async def publish_backlog(url: str, messages: int, window: int = 1000) -> float:
    """All messages at QoS 1, ``window`` unacknowledged at a time; returns messages/s."""
    conn = await publisher(url)
    started = time.perf_counter()
    try:
        for lo in range(0, messages, window):
            await asyncio.gather(*(conn.publish(*payload(i), qos=1) for i in range(lo, min(messages, lo + window))))
    finally:
        await conn.disconnect()
    return messages / (time.perf_counter() - started)


async def publish_paced(url: str, messages: int, rate: float, probe: dict[int, float]) -> None:
    """Open loop at ``rate`` messages/s (QoS 1, acks awaited in the background), plus a probe every 50 ms."""
    conn = await publisher(url)
    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    next_probe, seq = start, 0
    try:
        for i in range(messages):
            if i % 20 == 0:
                ahead = start + i / rate - time.perf_counter()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            t = asyncio.create_task(conn.publish(*payload(i), qos=1))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            if time.perf_counter() >= next_probe:
                seq += 1
                probe[seq] = time.time()
                await conn.publish(f"/json/{APIKEY}/probe/attrs", b'{"seq":%d}' % seq, qos=1)
                next_probe += 0.05
        await asyncio.gather(*tasks)
    finally:
        await conn.disconnect()


# ---------------------------------------------------------------------- bare subscribers
BARE = r"""
import asyncio, os, socket, sys, time
sys.path.insert(0, sys.argv[5])
kind, url, n, filt = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
from urllib.parse import urlsplit
u = urlsplit(url)
ident = f"bench-bare-{kind}-{os.getpid()}"

async def own():
    from agents import mqttclient
    done = asyncio.get_running_loop().create_future()
    count = 0
    def on_message(conn, topic, payload, qos, mid):
        nonlocal count
        count += 1
        if qos:
            conn.ack(mid)
        if count == n and not done.done():
            done.set_result(time.perf_counter())
    c = await mqttclient.connect(u.hostname, u.port, ident, on_message, session_expiry=300, receive_maximum=2000)
    await c.subscribe([(filt, 1)])
    print("ready", flush=True)
    print(f"done {await done:.6f}", flush=True)
    await c.disconnect(0)

async def aiomqtt_():
    import aiomqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    props = Properties(PacketTypes.CONNECT)
    props.ReceiveMaximum, props.SessionExpiryInterval = 2000, 300
    async with aiomqtt.Client(u.hostname, u.port, identifier=ident, protocol=aiomqtt.ProtocolVersion.V5,
                              properties=props, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]) as c:
        await c.subscribe(filt, qos=1)
        print("ready", flush=True)
        count = 0
        async for m in c.messages:
            count += 1
            if count == n:
                print(f"done {time.perf_counter():.6f}", flush=True)
                return

import uvloop
uvloop.run(own() if kind == "own" else aiomqtt_())
"""


async def run_bare(url: str, kind: str, messages: int) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec("taskset", "-c", "0", sys.executable, "-c", BARE, kind, url,
                                                str(messages), FILTER, str(ROOT), stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert (await proc.stdout.readline()).strip() == b"ready"
    os.kill(proc.pid, signal.SIGSTOP)
    pub_rate = await publish_backlog(url, messages)
    await asyncio.sleep(0.5)
    cpu0 = cpu_seconds(proc.pid)
    t0 = time.perf_counter()
    os.kill(proc.pid, signal.SIGCONT)
    line = (await asyncio.wait_for(proc.stdout.readline(), 600)).decode().split()
    cpu = cpu_seconds(proc.pid) - cpu0
    await proc.wait()
    elapsed = float(line[1]) - t0
    return {"consumer": f"bare-{kind}", "messages": messages, "publish_rate": round(pub_rate),
            "seconds": round(elapsed, 3), "rate": round(messages / elapsed),
            "cpu_s_per_1000": round(cpu / messages * 1000, 4)}


# ---------------------------------------------------------------------- the agent
async def metric(session: aiohttp.ClientSession, north: str, name: str) -> int:
    async with session.get(north + "/metrics") as r:
        text = await r.text()
    for line in text.splitlines():
        if line.startswith(name):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


async def drain(s: aiohttp.ClientSession, north: str, url: str, pid: int, base: int,
                messages: int) -> dict[str, Any]:
    """Freeze the agent, queue ``messages`` in Mosquitto, resume it and time until all are written."""
    os.kill(pid, signal.SIGSTOP)
    try:
        pub_rate = await publish_backlog(url, messages)
        await asyncio.sleep(0.5)
    finally:
        cpu0 = cpu_seconds(pid)
        t0 = time.perf_counter()
        os.kill(pid, signal.SIGCONT)
    done_at, accepted = t0, base
    deadline = t0 + 900
    while accepted < base + messages and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
        accepted = await metric(s, north, "iota_measures_accepted_total")
        done_at = time.perf_counter()
    cpu = cpu_seconds(pid) - cpu0
    rejected = await metric(s, north, "iota_measures_rejected_total")
    elapsed = done_at - t0
    return {"consumer": "agent", "messages": messages, "written": accepted - base, "rejected": rejected,
            "publish_rate": round(pub_rate), "seconds": round(elapsed, 3), "rate": round(messages / elapsed),
            "cpu_s_per_1000": round(cpu / messages * 1000, 4), "cores": round(cpu / elapsed, 2)}


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
        args += ["--mongodb-url", mongodb_url, "--mongodb-db", f"bench{os.getpid()}x{ports[0]}"]
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
            await publish_backlog(url, devices)
            while await metric(s, north, "iota_measures_accepted_total") < devices:
                await asyncio.sleep(0.05)
            base = await metric(s, north, "iota_measures_accepted_total")
            if not rate:
                return {"store": store, **await drain(s, north, url, proc.pid, base, messages)}

            probe_task = asyncio.create_task(publish_paced(url, messages, rate, sent_at))
            while not probe_task.done():
                await asyncio.sleep(0.05)
            await probe_task
            probes = len(sent_at) + len(latencies)
            while await metric(s, north, "iota_measures_accepted_total") < base + messages + probes:
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # last notifications
            rejected = await metric(s, north, "iota_measures_rejected_total")
            lat = sorted(latencies)
            return {"store": store, "offered_rate": rate, "messages": messages + probes, "rejected": rejected,
                    "probes": probes, "latency_samples": len(lat),
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
    global DEVICES
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", choices=["sqlite", "mongo", "both"], default="both")
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--mongo-messages", type=int, default=2000, help="backlog for FerretDB (store-bound)")
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--mongo-devices", type=int, default=100, help="devices for FerretDB (its warm-up is slow)")
    ap.add_argument("--rounds", type=int, default=1, help="bare/agent pairs, interleaved")
    ap.add_argument("--latency-rate", type=float, default=0.5,
                    help="paced pass at this fraction of the measured throughput, for latency (0: none)")
    args = ap.parse_args()
    DEVICES = args.devices
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
    stores = ["sqlite", "mongo"] if args.store == "both" else [args.store]
    try:
        print(json.dumps({"loadavg": os.getloadavg(), "cpus": os.cpu_count()}), flush=True)
        for _ in range(args.rounds):
            bare = {}
            DEVICES = args.devices
            for kind in ("own", "aiomqtt"):
                bare[kind] = await run_bare(services.mqtt_url, kind, args.messages)
                print(json.dumps(bare[kind]), flush=True)
            for store in stores:
                n = args.messages if store == "sqlite" else args.mongo_messages
                DEVICES = args.devices if store == "sqlite" else args.mongo_devices
                r = await run_agent(services.mqtt_url, store, services.mongodb_url, n, DEVICES)
                r["vs_bare_own"] = round(r["rate"] / bare["own"]["rate"], 3)
                r["vs_bare_aiomqtt"] = round(r["rate"] / bare["aiomqtt"]["rate"], 2)
                print(json.dumps(r), flush=True)
                if args.latency_rate:
                    paced = await run_agent(services.mqtt_url, store, services.mongodb_url,
                                            max(1000, n // 4) if store == "sqlite" else n // 4, DEVICES,
                                            rate=max(10, round(r["rate"] * args.latency_rate)))
                    print(json.dumps({"paced": paced}), flush=True)
        print(json.dumps({"loadavg": os.getloadavg()}), flush=True)
    finally:
        services.stop()
        if mosquitto is not None:
            mosquitto.terminate()
            mosquitto.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
