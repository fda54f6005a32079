#!/usr/bin/env python3
"""Notification benchmark: latency from an update request to receipt at a local webhook.

The broker runs as its own process pinned to CPU 0 (embedded SQLite store, agents off); this
process (pinned to CPU 1) drives the updates open-loop at a fixed rate and runs the webhook.
Every update writes ``seq`` = its sequence number; the webhook reads it back from the
notification, so latency = receipt time − time the update request was sent, and a missing
sequence number is a lost notification. Loopback only; every phase is bounded in time.

Subscriptions: with 1 subscription it selects the entity type (every update matches it); with N > 1
each subscription selects one entity id and the updates go round-robin over those N entities, so
every update causes exactly one notification while the matcher holds N subscriptions.

    python bench/notifications.py                 # the full matrix (~2 minutes)
    python bench/notifications.py --quick         # 100 and 1,000 updates/s with 100 subscriptions
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


class Webhook:
    def __init__(self) -> None:
        self.port = free_port()
        self.sent: dict[int, float] = {}
        self.latency: dict[int, float] = {}
        self.received = 0
        self.duplicates = 0
        self.ids: set[str] = set()
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        now = time.perf_counter()
        body = orjson.loads(await request.read())
        self.received += 1
        if body["id"] in self.ids:
            self.duplicates += 1
        self.ids.add(body["id"])
        for entity in body["data"]:
            seq = entity.get("seq", {}).get("value")
            if isinstance(seq, int) and seq in self.sent and seq not in self.latency:
                self.latency[seq] = now - self.sent[seq]
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/notify", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc): less sensitive to a busy machine than latency."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000


class Broker:
    def __init__(self, tmp: str, profile: str | None = None, cprofile: str | None = None) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.profile = profile  # write a pyinstrument profile of the broker process here
        self.cprofile = cprofile  # or cProfile stats (CPU-time clock) here
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        db = Path(self.tmp) / f"bench-{self.port}.sqlite3"
        prof = ["-m", "pyinstrument", "-r", "text", "--show-all", "-o", self.profile] if self.profile else []
        entry = [str(ROOT / "bench" / "cprofile_run.py")] if self.cprofile else ["-m", "broker"]
        env = {**os.environ, "CPROF_OUT": self.cprofile} if self.cprofile else None
        cmd = [*pin(0), sys.executable, *prof, *entry, "--host", "127.0.0.1", "--port", str(self.port),
               "--agents", "false", "--mqtt-url", "off", "--sqlite-path", str(db), "--log-level", "WARNING"]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.1)
        raise SystemExit("broker did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=120 if self.profile or self.cprofile else 20)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/ngsi-ld/v1"


async def setup(session: aiohttp.ClientSession, broker: Broker, hook: Webhook, subs: int, fanout: int = 1) -> int:
    """Create the entities and subscriptions; returns the number of entities updated round-robin."""
    entities = max(subs, 100) if subs > 1 else 100
    batch = [{"id": f"urn:ngsi-ld:Room:{i}", "type": "Room", "seq": {"type": "Property", "value": -1}}
             for i in range(entities)]
    for start in range(0, entities, 500):
        async with session.post(f"{broker.base}/entityOperations/upsert", json=batch[start:start + 500]) as r:
            assert r.status in (201, 204), await r.text()
    endpoint = {"uri": f"http://127.0.0.1:{hook.port}/notify"}
    for i in range(subs if subs != 1 else fanout):  # 0: none (the update path alone, for comparison)
        selector = {"type": "Room"} if subs == 1 else {"type": "Room", "id": f"urn:ngsi-ld:Room:{i}"}
        body = {"type": "Subscription", "entities": [selector], "watchedAttributes": ["seq"],
                "notification": {"endpoint": endpoint, "attributes": ["seq"], "format": "normalized"}}
        async with session.post(f"{broker.base}/subscriptions", json=body) as r:
            assert r.status == 201, await r.text()
    return entities if subs > 1 else 100


async def drive(session: aiohttp.ClientSession, broker: Broker, hook: Webhook, entities: int, rate: float,
                seconds: float, expect: bool = True) -> dict[str, Any]:
    """Open-loop updates at ``rate``/s for ``seconds``; then wait (bounded) for the stragglers."""
    total = int(rate * seconds)
    errors = 0
    tasks: set[asyncio.Task[None]] = set()

    async def one(seq: int) -> None:
        nonlocal errors
        body = orjson.dumps({"seq": {"type": "Property", "value": seq}})
        hook.sent[seq] = time.perf_counter()
        url = f"{broker.base}/entities/urn:ngsi-ld:Room:{seq % entities}/attrs"
        try:
            async with session.patch(url, data=body, headers={"Content-Type": "application/json"}) as r:
                await r.read()
                if r.status != 204:
                    errors += 1
        except aiohttp.ClientError:
            errors += 1

    start = time.perf_counter()
    for seq in range(total):
        delay = start + seq / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        t = asyncio.create_task(one(seq))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
    send_secs = time.perf_counter() - start
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    deadline = time.perf_counter() + (15 if expect else 0.5)
    while len(hook.latency) < total and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    lat = list(hook.latency.values())
    return {"updates": total, "achieved_rate": total / send_secs, "errors": errors,
            "received": len(lat), "missing": total - len(lat), "duplicates": hook.duplicates,
            "p50": pct(lat, 50) if lat else None, "p95": pct(lat, 95) if lat else None,
            "p99": pct(lat, 99) if lat else None, "max": max(lat) * 1000 if lat else None}


async def throughput(session: aiohttp.ClientSession, broker: Broker, hook: Webhook, fanout: int,
                     seconds: float, concurrency: int = 16) -> dict[str, Any]:
    """Closed loop: ``concurrency`` writers as fast as the broker answers, each update to ``fanout`` subs."""
    stop_at = time.perf_counter() + seconds
    sent = 0

    async def writer(w: int) -> None:
        nonlocal sent
        i = w
        while time.perf_counter() < stop_at:
            body = orjson.dumps({"seq": {"type": "Property", "value": -2}})
            async with session.patch(f"{broker.base}/entities/urn:ngsi-ld:Room:{i % 100}/attrs", data=body,
                                     headers={"Content-Type": "application/json"}) as r:
                await r.read()
            sent += 1
            i += concurrency

    start = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(concurrency)))
    expected = sent * fanout
    deadline = time.perf_counter() + 60
    while hook.received < expected and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - start
    return {"updates": sent, "notifications": hook.received, "expected": expected,
            "seconds": round(elapsed, 2), "notifications_per_s": round(hook.received / elapsed)}


async def scenario(tmp: str, subs: int, rate: float, seconds: float, profile: str | None = None,
                   cprofile: str | None = None) -> dict[str, Any]:
    broker = Broker(tmp, profile, cprofile)
    hook = Webhook()
    await hook.start()
    broker.start()
    try:
        conn = aiohttp.TCPConnector(limit=256)
        async with aiohttp.ClientSession(connector=conn) as session:
            entities = await setup(session, broker, hook, subs)
            await asyncio.sleep(0.5)
            hook.received = 0
            hook.ids.clear()
            assert broker.proc is not None
            if cprofile:
                broker.proc.send_signal(signal.SIGUSR1)
            cpu, own, wall = cpu_seconds(broker.proc.pid), time.process_time(), time.perf_counter()
            result = await drive(session, broker, hook, entities, rate, seconds, expect=subs > 0)
            if cprofile:
                broker.proc.send_signal(signal.SIGUSR2)
                await asyncio.sleep(1.0)
            used = cpu_seconds(broker.proc.pid) - cpu
            wall = time.perf_counter() - wall
            result["cpu_ms"] = used * 1000 / result["received"] if result["received"] else None
            result["cpu_ms_update"] = used * 1000 / max(1, result["updates"])
            result["broker_cores"] = used / wall
            result["harness_cores"] = (time.process_time() - own) / wall
            return result
    finally:
        broker.stop()
        await hook.stop()


async def max_scenario(tmp: str, fanout: int, seconds: float) -> dict[str, Any]:
    broker = Broker(tmp)
    hook = Webhook()
    await hook.start()
    broker.start()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
            await setup(session, broker, hook, 1, fanout=fanout)
            await asyncio.sleep(0.5)
            hook.received = 0
            return await throughput(session, broker, hook, fanout, seconds)
    finally:
        broker.stop()
        await hook.stop()


def fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def fmt2(v: Any) -> str:
    return "n/a" if v is None else f"{v:.2f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--profile", metavar="PREFIX",
                        help="profile the broker with pyinstrument; one text report per phase, PREFIX-<rate>-<subs>.txt")
    parser.add_argument("--cprofile", metavar="PREFIX",
                        help="profile the broker's measured phase with cProfile on a CPU-time clock "
                             "(bench/cprofile_run.py); stats in PREFIX-<rate>-<subs>.prof")
    parser.add_argument("--no-throughput", action="store_true", help="latency phases only")
    parser.add_argument("--baseline", action="store_true",
                        help="also run each rate with no subscription: the update path's own CPU, to subtract")
    args = parser.parse_args()
    matrix = [(100, 100), (1000, 100)] if args.quick else [
        (r, s) for r in (100, 1000) for s in (1, 100, 1000)]
    if args.baseline:
        matrix = [row for rate, subs in matrix for row in ((rate, subs), (rate, 0))]
        matrix = list(dict.fromkeys(matrix))
    with tempfile.TemporaryDirectory(prefix="bench-notify-") as tmp:
        os.sched_setaffinity(0, {1}) if pin(1) else None
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print("| updates/s | subscriptions | sent | achieved/s | received | missing | p50 ms | p95 ms | p99 ms "
              "| max ms | broker CPU ms/notification | broker CPU ms/update | broker cores | harness cores |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for rate, subs in matrix:
            prof = f"{args.profile}-{rate}-{subs}.txt" if args.profile else None
            cprof = f"{args.cprofile}-{rate}-{subs}.prof" if args.cprofile else None
            r = await scenario(tmp, subs, rate, args.seconds, prof, cprof)
            print(f"| {rate} | {subs} | {r['updates']} | {r['achieved_rate']:.0f} | {r['received']} | "
                  f"{r['missing']} | {fmt(r['p50'])} | {fmt(r['p95'])} | {fmt(r['p99'])} | {fmt(r['max'])} | "
                  f"{fmt2(r['cpu_ms'])} | {r['cpu_ms_update']:.2f} | {r['broker_cores']:.2f} | "
                  f"{r['harness_cores']:.2f} |",
                  flush=True)
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        if args.no_throughput:
            return
        print()
        print("| fan-out (subscriptions per update) | updates | notifications | expected | seconds | "
              "notifications/s |")
        print("|---:|---:|---:|---:|---:|---:|")
        for fanout in (1, 10) if not args.quick else (10,):
            r = await max_scenario(tmp, fanout, args.seconds)
            print(f"| {fanout} | {r['updates']} | {r['notifications']} | {r['expected']} | {r['seconds']} | "
                  f"{r['notifications_per_s']} |", flush=True)


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
