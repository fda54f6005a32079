#!/usr/bin/env python3
"""Core-API benchmark: Stellio's load-test scenarios against our broker, on both stores.

The broker runs as one process pinned to CPU 0, wrk runs pinned to CPU 1; scenarios run in
interleaved rounds (stores in ABBA order) so drifting machine load hits every store alike, and each
round also runs the raw-store loop (``bench/raw.py``) so "broker vs raw store" is a ratio taken
within one run. A scenario whose endpoint is missing or answers wrongly reports "n/a" with the
status codes it got instead of a figure. Nothing is installed: missing tools are named and the run
stops. Every load loop is bounded in time, targets only 127.0.0.1 and stops by itself.

    python bench/run.py --quick                      # 1k entities, SQLite only, about 2 minutes
    python bench/run.py                              # 1k/10k/100k SQLite + 1k FerretDB (~15 min)
    python bench/run.py --sizes 1000,10000,100000 --stores sqlite,mongo
    python bench/run.py --profile                    # cProfile of the broker under each load
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

import orjson  # noqa: E402
import raw  # noqa: E402
from dataset import (  # noqa: E402
    ID_PREFIX,
    LINK,
    OBSERVED,
    STATIC_QUERIES,
    STATION_CODE,
    DataSet,
    create_template,
    fragment_template,
    upsert_template,
)

BASE = "/ngsi-ld/v1"
RESULTS = HERE / "results"
README = HERE / "README.md"
BROKER_CPU, LOAD_CPU = "0", "1"
SEED_BATCH = 1000
UPSERT_BATCH = 100
UPSERT_POOL = 10_000
CONTENDED_CORES = 0.25  # foreign CPU (cores, averaged over a timed run) above which a run is "contended"

# Targets on the embedded store (req/s, or entities/s for the batch), from the project brief.
TARGETS = {"create": 3000, "patch-attr": 4000, "get": 6000, "query-property": 1500,
           "query-relationship": 1500, "upsert": 20000}


@dataclass(frozen=True)
class Scenario:
    name: str
    script: str
    extra: tuple[str, ...] = ()
    per_request: int = 1  # entities per request (batch)
    what: str = ""


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("create", "create.lua", what="POST /entities (template, unique ids)"),
    Scenario("patch-attr", "patch_attr.lua", what="PATCH /entities/{id}/attrs/dissolvedOxygen {value, observedAt}"),
    Scenario("patch-attrs", "patch_attrs.lua", what="PATCH /entities/{id}/attrs (ammonium×2, waterTemperature×2, "
             "dissolvedOxygen)"),
    Scenario("query-property", "query.lua", ("property",),
             what='GET /entities?type=T&q=<obs>>n;stationCode=="…" (default page)'),
    Scenario("query-relationship", "query.lua", ("relationship",),
             what='GET /entities?type=T&q=<obs>>n;servesDataset=="urn:…"'),
    Scenario("get", "get.lua", what="GET /entities/{id}"),
    Scenario("upsert", "upsert.lua", per_request=UPSERT_BATCH,
             what=f"POST /entityOperations/upsert, {UPSERT_BATCH} entities (req/s × {UPSERT_BATCH} = entities/s)"),
)
BY_NAME = {s.name: s for s in SCENARIOS}
RAW_OF = {"create": "insert", "get": "get", "patch-attr": "update", "query-property": "query"}


# ------------------------------------------------------------------------------------------- machine
def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a live process, 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _busy_seconds() -> float:
    vals = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return (sum(vals[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU used during a timed run by the broker, by us (incl. wrk, a reaped child) and by everyone
    else ("foreign": other engineers' test suites), which is the contention measure we record."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids

    def __enter__(self) -> CpuMeter:
        self.t0 = time.monotonic()
        self.busy0 = _busy_seconds()
        self.own0 = {p: _proc_cpu(p) for p in self.pids}
        self.self0 = self._self()
        self.load_before = loadavg()
        return self

    @staticmethod
    def _self() -> float:
        s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime

    def __exit__(self, *exc: object) -> None:
        elapsed = max(time.monotonic() - self.t0, 1e-6)
        own = {p: _proc_cpu(p) - v for p, v in self.own0.items()}
        ours = sum(own.values()) + self._self() - self.self0
        busy = _busy_seconds() - self.busy0
        self.result = {
            "elapsed_s": round(elapsed, 2),
            "broker_cores": round(own.get(self.pids[0], 0.0) / elapsed, 2) if self.pids else None,
            "broker_cpu_s": round(own.get(self.pids[0], 0.0), 3) if self.pids else None,
            "foreign_cores": round(max(busy - ours, 0.0) / elapsed, 2),
            "load_before": self.load_before, "load_after": loadavg(),
        }


def machine_facts() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1048576:.1f} GiB"
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    # compiled (mypyc) or interpreted, as the broker process will import them (broker/native.py)
    native = subprocess.run([sys.executable, "-c", "import json, broker.native as n; print(json.dumps(n.STATUS))"],
                            cwd=ROOT, capture_output=True, text=True)
    return {"broker_modules": json.loads(native.stdout) if native.returncode == 0 else native.stderr.strip(),
            "cpu": cpu, "cores": os.cpu_count(), "memory": mem, "kernel": platform.release(),
            "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "wrk": (wrk.stdout or wrk.stderr).splitlines()[0].strip() if (wrk.stdout or wrk.stderr) else "?"}


def git_sha() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "broker"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + ("+dirty(broker/)" if dirty else "")


def preflight(stores: list[str]) -> list[str]:
    """What is missing, as instructions; nothing is installed here."""
    missing = []
    if shutil.which("wrk") is None:
        missing.append("wrk: install it with `apt-get install wrk` (and `hey` for the cross-check)")
    if shutil.which("taskset") is None:
        missing.append("taskset: install util-linux (`apt-get install util-linux`)")
    if (os.cpu_count() or 1) < 2:
        missing.append("a second CPU: the broker and the load generator are pinned to CPUs 0 and 1")
    try:
        import broker  # noqa: F401
    except ImportError:
        missing.append("the broker package: run from the repository with its venv (`make install`, then "
                       "`.venv/bin/python bench/run.py`)")
    if "mongo" in stores and not os.environ.get("MONGODB_URL"):
        try:
            from tests.services import find_ferretdb

            find_ferretdb()
        except Exception as exc:  # noqa: BLE001 - report whatever the finder says
            missing.append(f"FerretDB for --stores mongo: {exc} (or `bash scripts/install-services.sh`; "
                           "or drop mongo from --stores)")
    return missing


# ------------------------------------------------------------------------------------------- broker
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """A keep-alive HTTP/1.1 client for seeding and correctness checks (not for load)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        hdrs = {"Link": LINK, "Accept": "application/json", **(headers or {})}
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=hdrs)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, raw_body = self.request(method, path, None if body is None else orjson.dumps(body))
        try:
            return status, orjson.loads(raw_body) if raw_body else None
        except orjson.JSONDecodeError:
            return status, raw_body[:300].decode(errors="replace")

    def close(self) -> None:
        self.conn.close()


# cProfile with a CPU-time clock: on a contended machine a wall-clock profile bills preemption to
# whatever line happened to be running; CPU time is what the broker itself spent.
PROFILED_BROKER = """
import cProfile, runpy, sys, time
out = sys.argv[1]
sys.argv = ["broker", *sys.argv[2:]]
prof = cProfile.Profile(time.process_time)
prof.enable()
try:
    runpy.run_module("broker", run_name="__main__", alter_sys=True)
finally:
    prof.disable()
    prof.dump_stats(out)
"""


@dataclass
class Broker:
    store: str
    workdir: Path
    mongodb_url: str = ""
    db_prefix: str = ""
    profile_out: Path | None = None
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    sqlite_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.sqlite_path = self.workdir / "broker.sqlite3"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.port = free_port()
        args = ["--agents", "false", "--mqtt-url", "off", "--host", "127.0.0.1", "--port", str(self.port),
                "--log-level", "WARNING"]
        if self.store == "mongo":
            args += ["--mongodb-url", self.mongodb_url, "--mongodb-db", self.db_prefix]
        else:
            args += ["--sqlite-path", str(self.sqlite_path)]
        if self.profile_out:
            cmd = ["taskset", "-c", BROKER_CPU, sys.executable, "-c", PROFILED_BROKER, str(self.profile_out), *args]
        else:
            cmd = ["taskset", "-c", BROKER_CPU, sys.executable, "-m", "broker", *args]
        self.log = self.workdir / f"broker-{self.port}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                c = Client(self.port)
                status, _ = c.request("GET", "/ready")
                c.close()
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"broker did not become ready in 120 s: {self.log_tail()}")

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log and self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            # taskset execs the interpreter, so this pid is the broker itself
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


# ------------------------------------------------------------------------------------------- seeding
def seed(broker: Broker, data: DataSet, log: Any) -> dict[str, Any]:
    """Seed through HTTP batch upsert when the endpoint works, else in-process through the store API
    (SQLite: before the broker starts, since it loads the file at start-up)."""
    bodies = data.batches(SEED_BATCH)
    client = Client(broker.port)
    t0 = time.perf_counter()
    status, body = client.request("POST", f"{BASE}/entityOperations/upsert", bodies[0])
    if 200 <= status < 300 and status != 207:
        for b in bodies[1:]:
            st, rb = client.request("POST", f"{BASE}/entityOperations/upsert", b)
            if not 200 <= st < 300 or st == 207:
                raise RuntimeError(f"seeding by batch upsert failed with {st}: {rb[:300]!r}")
        elapsed = time.perf_counter() - t0
        client.close()
        return {"method": "http-batch-upsert", "entities": data.size, "seconds": round(elapsed, 2),
                "entities_per_s": round(data.size / elapsed, 1), "batch": SEED_BATCH}
    client.close()
    log(f"    batch upsert answered {status} ({body[:120]!r}); seeding through the store API in-process")
    return {**seed_store_api(broker, data), "upsert_probe_status": status}


def seed_store_api(broker: Broker, data: DataSet) -> dict[str, Any]:
    """Seed in-process through the store API (the broker's Expander makes the stored form); a running
    SQLite broker is restarted so it loads the file."""
    docs = raw.stored_entities(data)
    t0 = time.perf_counter()
    if broker.store == "sqlite":
        running = broker.proc is not None
        broker.stop()
        import asyncio

        from broker.store.sqlite import SqliteStore

        async def fill_sqlite() -> None:
            st = SqliteStore(str(broker.sqlite_path))
            await st.start()
            st.db.execute("BEGIN")
            for d in docs:
                await st.create_entity("", d)
            st.db.execute("COMMIT")
            await st.close()

        asyncio.run(fill_sqlite())
        elapsed = time.perf_counter() - t0
        if running:
            broker.start()
    else:
        import asyncio

        from broker.store.codec import encode_entity
        from broker.store.mongo import MongoStore

        async def fill_mongo() -> None:
            st = MongoStore(broker.mongodb_url, broker.db_prefix)
            await st.start()
            await st._ensure_indexes("")
            encoded = []
            for d in docs:
                d["_v"] = 1
                encoded.append(encode_entity(d))
            for i in range(0, len(encoded), SEED_BATCH):
                await st._entities("").insert_many(encoded[i:i + SEED_BATCH], ordered=False)
            await st.close()

        asyncio.run(fill_mongo())
        elapsed = time.perf_counter() - t0
    return {"method": "store-api-in-process", "entities": data.size, "seconds": round(elapsed, 2)}


# ------------------------------------------------------------------------------------------- checks
def _entity_path(eid: str) -> str:
    return f"{BASE}/entities/{quote(eid, safe=':')}"


def _value(entity: Any, attr: str) -> Any:
    a = entity.get(attr) if isinstance(entity, dict) else None
    if isinstance(a, list):
        a = a[0] if a else None
    return a.get("value", a.get("object")) if isinstance(a, dict) else None


def check(sc: Scenario, client: Client, data: DataSet, tag: str) -> tuple[bool, dict[int, int], str]:
    """One request of the scenario plus a read-back; (ok, status histogram, detail)."""
    hist: dict[int, int] = {}

    def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        st, b = client.json(method, path, body)
        hist[st] = hist.get(st, 0) + 1
        return st, b

    def fail(msg: str, st: int, b: Any) -> tuple[bool, dict[int, int], str]:
        detail = b.get("type", "") + " " + str(b.get("detail", b.get("title", ""))) if isinstance(b, dict) else str(b)
        return False, hist, f"{msg}: {st} {detail.strip()[:160]}"

    if sc.name == "create":
        eid = f"{ID_PREFIX}check-{tag}-{uuid.uuid4().hex[:8]}"
        st, b = call("POST", f"{BASE}/entities", orjson.loads(create_template().replace("%%", "%") % eid))
        if st != 201:
            return fail("create", st, b)
        st, b = call("GET", _entity_path(eid))
        if st != 200 or _value(b, "stationCode") != STATION_CODE:
            return fail("read-back", st, b)
    elif sc.name == "get":
        st, b = call("GET", _entity_path(f"{ID_PREFIX}0"))
        if st != 200 or not isinstance(b, dict) or b.get("id") != f"{ID_PREFIX}0" or \
                len(b.get("ammonium", [])) != 2:
            return fail("get", st, b)
    elif sc.name == "patch-attr":
        eid = f"{ID_PREFIX}1"
        st, b = call("PATCH", f"{_entity_path(eid)}/attrs/dissolvedOxygen",
                     {"value": 42.5, "observedAt": "2024-05-01T00:00:00Z"})
        if st != 204:
            return fail("patch", st, b)
        st, b = call("GET", _entity_path(eid))
        if st != 200 or _value(b, "dissolvedOxygen") != 42.5:
            return fail("read-back", st, b)
    elif sc.name == "patch-attrs":
        eid = f"{ID_PREFIX}2"
        frag = orjson.loads(fragment_template() % (1.5, 2.5, 3.5, 4.5, 5.5))
        st, b = call("PATCH", f"{_entity_path(eid)}/attrs", frag)
        if st != 204:
            return fail("patch", st, b)
        st, b = call("GET", _entity_path(eid))
        values = sorted(i.get("value") for i in (b.get("ammonium", []) if isinstance(b, dict) else []))
        if st != 200 or len(values) != 2 or not set(values) <= {1.5, 2.5, 3.5, 4.5, 5.5}:
            return fail("read-back", st, b)
    elif sc.name.startswith("query"):
        t = data.types[0]
        if sc.name == "query-property":
            q, want = f'dissolvedOxygen>0;{STATIC_QUERIES[2]}', ("stationCode", STATION_CODE)
        else:
            first = data.entity(0)["servesDataset"]["object"]
            q, want = f'dissolvedOxygen>0;servesDataset=="{first}"', ("servesDataset", first)
        st, b = call("GET", f"{BASE}/entities?{urlencode({'type': t, 'q': q})}")
        if st != 200 or not isinstance(b, list) or not b:
            return fail("query (expected a non-empty page)", st, b)
        bad = [e.get("id") for e in b if e.get("type") != t or _value(e, want[0]) != want[1]]
        if bad:
            return False, hist, f"query returned non-matching entities, e.g. {bad[:3]}"
    elif sc.name == "upsert":
        tpl = upsert_template().replace("%%", "%")
        batch = [orjson.loads(tpl % (f"{ID_PREFIX}u{i}", 1.0, 2.0, 3.0, 4.0, 5.0)) for i in range(2)]
        st, b = call("POST", f"{BASE}/entityOperations/upsert", batch)
        if st not in (200, 201, 204):
            return fail("upsert", st, b)
        st, b = call("GET", _entity_path(f"{ID_PREFIX}u1"))
        if st != 200 or _value(b, "stationCode") != STATION_CODE:
            return fail("read-back", st, b)
    return True, hist, "ok"


# ------------------------------------------------------------------------------------------- load
def write_params(path: Path, broker: Broker, data: DataSet, prefix: str) -> None:
    def lua(v: Any) -> str:
        if isinstance(v, str):
            return json.dumps(v)  # a JSON string literal is a valid Lua string literal here (ASCII)
        if isinstance(v, (list, tuple)):
            return "{" + ", ".join(lua(x) for x in v) + "}"
        return repr(v)

    params = {"base": BASE, "link": LINK, "n": data.size, "id_prefix": ID_PREFIX, "types": data.types,
              "relationships": data.relationships, "observed": list(OBSERVED), "static_queries": list(STATIC_QUERIES),
              "create_prefix": f"{ID_PREFIX}{prefix}-", "create_tpl": create_template(),
              "fragment_tpl": fragment_template(), "upsert_tpl": upsert_template(),
              "upsert_prefix": f"{ID_PREFIX}u", "upsert_pool": UPSERT_POOL, "batch": UPSERT_BATCH,
              "seed": int(time.time()) % 100000}
    path.write_text("return {\n" + "".join(f"  {k} = {lua(v)},\n" for k, v in params.items()) + "}\n")


EXTRA_PIDS: list[int] = []  # FerretDB, drained like the broker


def drain(broker: Broker, limit: float = 30.0) -> float:
    """Wait until the broker (and FerretDB) are idle, i.e. the requests a previous wrk left in flight
    are finished, so one scenario's backlog is never billed to the next; returns the seconds waited."""
    if broker.proc is None:
        return 0.0
    pids = [broker.proc.pid, *EXTRA_PIDS]
    t0 = time.monotonic()
    quiet = 0
    last = sum(_proc_cpu(p) for p in pids)
    while quiet < 2 and time.monotonic() - t0 < limit:
        time.sleep(0.2)
        now = sum(_proc_cpu(p) for p in pids)
        quiet = quiet + 1 if now - last < 0.03 else 0
        last = now
    return round(time.monotonic() - t0, 2)


_RUNS = iter(range(1, 1 << 30))


def run_wrk(sc: Scenario, broker: Broker, params: Path, seconds: float, connections: int) -> dict[str, Any]:
    drain(broker)
    tag = f"w{next(_RUNS)}"  # makes create ids unique across warm-up and timed runs
    cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
           "--timeout", "5s", "--latency", "-s", str(HERE / "wrk" / sc.script), broker.url, "--", str(params),
           tag, *sc.extra]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    raise RuntimeError(f"wrk gave no summary (exit {out.returncode}): {out.stdout[-500:]} {out.stderr[-500:]}")


def measure(sc: Scenario, broker: Broker, params: Path, args: argparse.Namespace,
            pids: list[int]) -> dict[str, Any]:
    if args.warmup > 0:
        run_wrk(sc, broker, params, args.warmup, args.connections)
    with CpuMeter(pids) as meter:
        w = run_wrk(sc, broker, params, args.duration, args.connections)
    secs = w["duration_us"] / 1e6
    statuses = {int(k): v for k, v in w["statuses"].items()}
    good = sum(v for k, v in statuses.items() if 200 <= k < 300 and k != 207)
    sock_errors = sum(w["errors"][k] for k in ("connect", "read", "write", "timeout"))
    lat = w["latency_us"]
    # The broker's CPU over wrk's own window: the meter's wall time also holds wrk's start and exit
    # (0.4-0.8 s with the broker idle), which read as a broker busy only ~0.9 of the time.
    cores = (meter.result["broker_cpu_s"] or 0) / max(secs, 1e-6)
    return {
        **meter.result,
        "broker_cores": round(cores, 2),
        "units_per_cpu_s": round(good * sc.per_request / secs / cores, 1) if cores > 0.05 else None,
        "requests": w["requests"], "seconds": round(secs, 2), "rps": round(w["requests"] / secs, 1),
        "good_rps": round(good / secs, 1), "units_per_s": round(good * sc.per_request / secs, 1),
        "p50_ms": lat["50"] / 1000, "p95_ms": lat["95"] / 1000, "p99_ms": lat["99"] / 1000,
        "max_ms": lat["max"] / 1000, "statuses": statuses, "socket_errors": sock_errors,
        "error_rate": round(1 - good / max(w["requests"], 1), 4), "first_error": w["first_error"],
    }


# ------------------------------------------------------------------------------------------- raw
def run_raw(store: str, data: DataSet, docs: list[dict[str, Any]], mongodb_url: str, args: argparse.Namespace,
            tmp: Path, tag: str) -> dict[str, Any]:
    """The raw-store loop, pinned to the broker's CPU (the idle broker waits meanwhile)."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(BROKER_CPU)})
    try:
        with CpuMeter([]) as meter:
            if store == "sqlite":
                path = tmp / f"raw-{tag}.sqlite3"
                res = raw.run_sqlite(data, docs, str(path), args.raw_seconds, args.raw_max_ops)
                for suffix in ("", "-wal", "-shm"):
                    Path(str(path) + suffix).unlink(missing_ok=True)
            else:
                res = raw.run_mongo(data, docs, mongodb_url, f"benchraw_{tag}", args.raw_seconds, args.raw_max_ops)
        res["foreign_cores"] = meter.result["foreign_cores"]
        return res
    finally:
        os.sched_setaffinity(0, before)


def hey_check(broker: Broker, seconds: float, connections: int) -> dict[str, Any] | None:
    """GET by id of one fixed entity with hey, as a cross-check of wrk's figure (hey cannot vary the URL)."""
    if shutil.which("hey") is None:
        return None
    cmd = ["taskset", "-c", LOAD_CPU, "hey", "-z", f"{max(1, round(seconds))}s", "-c", str(connections),
           "-H", f"Link: {LINK}", "-H", "Accept: application/json", f"{broker.url}{_entity_path(ID_PREFIX + '0')}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    res: dict[str, Any] = {"tool": "hey"}
    for line in out.splitlines():
        s = line.strip()
        if s.startswith("Requests/sec:"):
            res["rps"] = float(s.split()[1])
        elif s.startswith("[") and "responses" in s:
            code, count = s.split("]", 1)
            res.setdefault("statuses", {})[int(code.strip("["))] = int(count.split()[0])
        elif s.startswith("50% in") or s.startswith("99% in"):
            res[f"p{s.split('%')[0]}_ms"] = float(s.split()[2]) * 1000
    return res


# ------------------------------------------------------------------------------------------- report
def _med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _fmt(x: float, digits: int = 0) -> str:
    if x != x:
        return "–"
    return f"{x:,.{digits}f}"


def summarize(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    keys = sorted({(r["store"], r["size"], r["scenario"]) for r in results["runs"]},
                  key=lambda k: (k[0] != "sqlite", k[1], [s.name for s in SCENARIOS].index(k[2])))
    for store, size, name in keys:
        runs = [r for r in results["runs"] if (r["store"], r["size"], r["scenario"]) == (store, size, name)]
        ok = [r for r in runs if r["status"] == "ok"]
        row: dict[str, Any] = {"store": store, "size": size, "scenario": name, "rounds": len(runs),
                               "ok_rounds": len(ok)}
        if not ok:
            row["status"] = runs[-1]["status"]
            row["detail"] = runs[-1].get("detail", "")
            row["statuses"] = runs[-1].get("statuses", {})
        else:
            units = [r["units_per_s"] for r in ok]
            row.update(status="ok", units_per_s=_med(units), min=min(units), max=max(units),
                       p50_ms=_med([r["p50_ms"] for r in ok]), p95_ms=_med([r["p95_ms"] for r in ok]),
                       p99_ms=_med([r["p99_ms"] for r in ok]), error_rate=max(r["error_rate"] for r in ok),
                       contended=any(r["contended"] for r in ok),
                       broker_cores=_med([r["broker_cores"] for r in ok]),
                       per_cpu_s=_med([r["units_per_cpu_s"] for r in ok if r.get("units_per_cpu_s")]))
        raw_op = RAW_OF.get(name)
        raws = [x for x in results["raw"] if (x["store"], x["size"]) == (store, size)]
        if raw_op and raws:
            key = "query_py" if store == "sqlite" and raw_op == "query" else raw_op
            row["raw"] = _med([x["ops"][key]["ops_per_s"] for x in raws])
            if store == "sqlite":  # the raw loop's own CPU is all the work there is
                row["raw_cpu"] = _med([x["ops"][key].get("ops_per_cpu_s", float("nan")) for x in raws])
            if key == "query_py":
                row["raw_sql"] = _med([x["ops"]["query_sql"]["ops_per_s"] for x in raws])
        rows.append(row)
    return rows


def markdown(results: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    m = results["meta"]
    lines = [
        f"Last full run: **{m['date']}**, git `{m['git']}`, {m['machine']['cpu']} × {m['machine']['cores']} cores, "
        f"{m['machine']['memory']}, Python {m['machine']['python']}, SQLite {m['machine']['sqlite']}, "
        f"{m['machine']['wrk']}{', ' + m['ferretdb'] if m.get('ferretdb') else ''}; broker modules: "
        f"{m['machine'].get('broker_modules', '(not recorded)')}.",
        f"Broker on CPU {BROKER_CPU}, wrk (`-t1 -c{m['connections']}`) on CPU {LOAD_CPU}; {m['rounds']} interleaved "
        f"rounds of {m['duration']} s after a {m['warmup']} s warm-up; median of rounds (min–max). "
        f"Load average before/after: {m['load_before']} / {m['load_after']}. "
        f"**Contended: {'yes' if m['contended'] else 'no'}** (max foreign CPU during a timed run: "
        f"{m['max_foreign_cores']} cores; threshold {CONTENDED_CORES}).",
        *([f"Raw-store figures re-measured {m['raw_redone']} (`--report … --redo-raw`, after a fix to the raw "
            "query's term expansion)."] if m.get("raw_redone") else []),
        "\"broker cores\" is the broker's CPU use during the timed run (1.00 = its core to itself); \"per broker "
        "CPU-s\" = req/s ÷ broker cores, the rate the broker would reach with its core to itself, which is the "
        "fair figure when other processes take part of that core. \"raw per CPU-s\" is the same for the raw "
        "loop (SQLite only: for MongoDB the server's CPU is elsewhere); \"broker / raw\" compares those two "
        "(else wall-clock rates).",
        "",
        "| Store | Entities | Scenario | req/s (entities/s for upsert) | range | p50 ms | p95 ms | p99 ms | "
        "broker cores | per broker CPU-s | raw ops/s | raw per CPU-s | broker / raw | target |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        store = "SQLite" if r["store"] == "sqlite" else "FerretDB"
        size = f"{r['size']:,}"
        if r["status"] != "ok":
            hist = ", ".join(f"{k}×{v}" for k, v in sorted(r.get("statuses", {}).items()))
            lines.append(f"| {store} | {size} | {r['scenario']} | **{r['status']}** ({hist}) |"
                         + " |" * 13)
            continue
        raw_txt, raw_cpu, ratio = "", "", ""
        per_cpu = r.get("per_cpu_s", float("nan"))
        if "raw" in r:
            raw_txt = _fmt(r["raw"])
            if "raw_sql" in r:
                raw_txt += f" (py) / {_fmt(r['raw_sql'])} (SQL)"
            if "raw_cpu" in r and r["raw_cpu"] == r["raw_cpu"] and per_cpu == per_cpu:
                raw_cpu = _fmt(r["raw_cpu"])
                ratio = f"{per_cpu / r['raw_cpu']:.2f} (CPU)"
            elif r["raw"]:
                ratio = f"{r['units_per_s'] / r['raw']:.2f}"
        target = ""
        if r["store"] == "sqlite" and r["scenario"] in TARGETS:
            t = TARGETS[r["scenario"]]
            applies = not r["scenario"].startswith("query") or r["size"] >= 100_000
            if applies:
                est = "✅" if per_cpu == per_cpu and per_cpu >= t else "❌"
                target = f"≥ {t:,}: {'✅' if r['units_per_s'] >= t else '❌'} measured, {est} per CPU-s"
        flag = " ⚠" if r["error_rate"] > 0.01 else ""
        lines.append(f"| {store} | {size} | {r['scenario']}{flag} | {_fmt(r['units_per_s'])} | "
                     f"{_fmt(r['min'])}–{_fmt(r['max'])} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | "
                     f"{r['p99_ms']:.2f} | {r['broker_cores']:.2f} | {_fmt(per_cpu)} | {raw_txt} | {raw_cpu} | "
                     f"{ratio} | {target} |")
    seeds = ", ".join(f"{s['store']} {s['entities']:,}: {s['method']}"
                      + (f" {s['entities_per_s']:,.0f} entities/s" if "entities_per_s" in s else "")
                      for s in results["seed"])
    lines += ["", f"Seeding: {seeds}.", ""]
    if results.get("hey"):
        hs = "; ".join(f"{h['store']} {h['size']:,}: {_fmt(h.get('rps', float('nan')))} req/s"
                       for h in results["hey"] if h)
        lines += [f"hey cross-check (GET of one fixed id, round 1): {hs}.", ""]
    return "\n".join(lines)


def readme_section(stores: list[str]) -> str:
    """A FerretDB-only run has its own table, so it does not overwrite the embedded store's."""
    return "core-api-mongo" if stores == ["mongo"] else "core-api"


def update_readme(section: str, name: str = "core-api") -> None:
    """Replace the text between this section's markers (nothing else in the README is touched)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{section}\n{end}"
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n## Core API: last figures\n\n" + block + "\n"
    README.write_text(text)


# ------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1k entities, SQLite, 1 round of 3 s: a smoke run")
    p.add_argument("--sizes", default="1000,10000,100000", help="entity counts (comma list)")
    p.add_argument("--stores", default="sqlite,mongo", help="sqlite, mongo (FerretDB) or both")
    p.add_argument("--mongo-max-size", type=int, default=1000,
                   help="skip larger sizes on MongoDB: FerretDB's SQLite handler scans (and sorts in Go) for "
                   "every query, seconds per query at 1k entities")
    p.add_argument("--scenarios", default=",".join(s.name for s in SCENARIOS))
    p.add_argument("--duration", type=float, default=5.0, help="seconds per timed run")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up before each timed run")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--connections", type=int, default=10, help="wrk connections (Stellio used 10 VUs)")
    p.add_argument("--raw-seconds", type=float, default=1.5, help="seconds per raw-store operation")
    p.add_argument("--raw-max-ops", type=int, default=50_000)
    p.add_argument("--no-raw", action="store_true", help="skip the raw-store baseline")
    p.add_argument("--no-readme", action="store_true", help="do not write the table into bench/README.md")
    p.add_argument("--profile", action="store_true",
                   help="instead of the benchmark: cProfile the broker (SQLite) under each scenario's load")
    p.add_argument("--profile-size", type=int, default=10_000)
    p.add_argument("--report", metavar="JSON", help="only re-render the table of an earlier results file")
    p.add_argument("--redo-raw", action="store_true",
                   help="with --report: measure the raw-store loop again (--rounds rounds) for the file's "
                   "SQLite sizes and replace its raw figures, e.g. after fixing the raw loop")
    a = p.parse_args(argv)
    if a.quick:
        a.sizes, a.rounds, a.duration, a.warmup = "1000", 1, 3.0, 1.0
        if "--stores" not in (argv or sys.argv):
            a.stores = "sqlite"
        a.raw_seconds = 1.0
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        results = json.loads(Path(args.report).read_text())
        if args.redo_raw:
            redo_raw(results, args)
            Path(args.report).write_text(json.dumps(results, indent=1, default=str))
        table = markdown(results, summarize(results))
        print(table)
        if not args.no_readme and not results["meta"].get("quick"):
            update_readme(table, readme_section(sorted({r["store"] for r in results["runs"]})))
        return 0
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    if bad := [s for s in stores if s not in ("sqlite", "mongo")]:
        print(f"unknown store(s) {bad}; use sqlite and/or mongo", file=sys.stderr)
        return 2
    missing = preflight(stores if not args.profile else ["sqlite"])
    if missing:
        print("bench/run.py cannot run; missing:\n  - " + "\n  - ".join(missing), file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    scenarios = [BY_NAME[s.strip()] for s in args.scenarios.split(",") if s.strip()]
    RESULTS.mkdir(exist_ok=True)
    if args.profile:
        return profile(args, scenarios)

    def log(msg: str) -> None:
        print(msg, flush=True)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    results: dict[str, Any] = {"meta": {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"), "git": git_sha(), "machine": machine_facts(),
        "argv": sys.argv[1:], "duration": args.duration, "warmup": args.warmup, "rounds": args.rounds,
        "connections": args.connections, "load_before": loadavg(), "quick": args.quick,
    }, "runs": [], "raw": [], "seed": [], "hey": []}
    services = None
    tmp = Path(tempfile.mkdtemp(prefix="ngsild-bench-"))
    brokers: list[Broker] = []
    try:
        mongodb_url = ""
        ferret_pid = None
        if "mongo" in stores:
            from tests.services import Services

            services = Services()
            services._start_mongo()
            mongodb_url = services.mongodb_url
            ferret_pid = services._procs[0].pid if services._procs else None
            if ferret_pid:
                EXTRA_PIDS.append(ferret_pid)
            results["meta"]["ferretdb"] = services.descriptions[-1]
            log(services.descriptions[-1])
        log(f"machine: {results['meta']['machine']}; load {loadavg()}")
        for size in sizes:
            data = DataSet.make(size)
            size_stores = [s for s in stores if s == "sqlite" or size <= args.mongo_max_size]
            if len(size_stores) < len(stores):
                log(f"[{size:,}] skipping mongo (FerretDB scans for queries; --mongo-max-size {args.mongo_max_size})")
            docs = None if args.no_raw else raw.stored_entities(data)
            by_store: dict[str, Broker] = {}
            for store in size_stores:
                wd = tmp / f"{store}-{size}"
                wd.mkdir()
                b = Broker(store, wd, mongodb_url, f"bench_{stamp.replace('-', '_')}_{size}")
                b.start()
                brokers.append(b)
                log(f"[{size:,} {store}] broker on {b.url}; seeding")
                s = seed(b, data, log)
                results["seed"].append({"store": store, **s})
                log(f"[{size:,} {store}] seeded: {s}")
                by_store[store] = b
            for rnd in range(1, args.rounds + 1):
                order = size_stores if rnd % 2 else list(reversed(size_stores))
                for store in order:
                    b = by_store[store]
                    pids = [b.proc.pid] if b.proc else []
                    if ferret_pid and store == "mongo":
                        pids.append(ferret_pid)
                    params = b.workdir / f"params-r{rnd}.lua"
                    write_params(params, b, data, f"c{stamp}-r{rnd}")
                    client = Client(b.port)
                    for sc in scenarios:
                        base = {"store": store, "size": size, "round": rnd, "scenario": sc.name}
                        drain(b)
                        try:
                            ok, hist, detail = check(sc, client, data, f"{store}{rnd}")
                        except (OSError, http.client.HTTPException) as exc:
                            ok, hist, detail = False, {}, f"check request failed: {exc!r}"
                            client.close()
                            client = Client(b.port)
                        if not ok:
                            status = "n/a" if any(k in (404, 405, 501) for k in hist) else "wrong"
                            results["runs"].append({**base, "status": status, "statuses": hist, "detail": detail})
                            log(f"[{size:,} {store} r{rnd}] {sc.name:<18} {status}: {detail} {hist}")
                            continue
                        try:
                            m = measure(sc, b, params, args, pids)
                        except (RuntimeError, subprocess.TimeoutExpired) as exc:
                            results["runs"].append({**base, "status": "error", "detail": str(exc)[:500]})
                            log(f"[{size:,} {store} r{rnd}] {sc.name:<18} error: {exc}")
                            continue
                        m["contended"] = m["foreign_cores"] > CONTENDED_CORES
                        status = "ok" if m["error_rate"] <= 0.5 else "errors"
                        results["runs"].append({**base, "status": status, **m})
                        log(f"[{size:,} {store} r{rnd}] {sc.name:<18} {m['units_per_s']:>9,.0f}/s  "
                            f"p50 {m['p50_ms']:.2f} p95 {m['p95_ms']:.2f} p99 {m['p99_ms']:.2f} ms  "
                            f"err {m['error_rate']:.1%}  broker {m['broker_cores']} cores  "
                            f"foreign {m['foreign_cores']} cores  {m['statuses']}"
                            + (f"  first error: {m['first_error'][:160]}" if m["first_error"] else ""))
                        if sc.name == "get" and rnd == 1:
                            drain(b)
                            h = hey_check(b, min(args.duration, 3.0), args.connections)
                            if h:
                                results["hey"].append({"store": store, "size": size, **h})
                    client.close()
                    if docs is not None:
                        drain(b)
                        r = run_raw(store, data, docs, mongodb_url, args, tmp, f"{size}_{rnd}_{stamp[-6:]}")
                        results["raw"].append({"store": store, "size": size, "round": rnd, "ops": r})
                        log(f"[{size:,} {store} r{rnd}] raw: " + ", ".join(
                            f"{k} {v['ops_per_s']:,.0f}/s" for k, v in r.items() if isinstance(v, dict)))
            for b in by_store.values():
                b.stop()
    finally:
        for b in brokers:
            b.stop()
        if services is not None:
            services.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    meta = results["meta"]
    meta["load_after"] = loadavg()
    foreign = [r.get("foreign_cores", 0) for r in results["runs"]] + \
              [x["ops"].get("foreign_cores", 0) for x in results["raw"]]
    meta["max_foreign_cores"] = max(foreign, default=0)
    meta["contended"] = meta["max_foreign_cores"] > CONTENDED_CORES
    rows = summarize(results)
    results["summary"] = rows
    table = markdown(results, rows)
    out = RESULTS / f"core-api-{stamp}.json"
    out.write_text(json.dumps(results, indent=1, default=str))
    print("\n" + table)
    print(f"\nresults: {out.relative_to(ROOT)}")
    if not args.quick and not args.no_readme:
        update_readme(table, readme_section(stores))
        print(f"table written into {README.relative_to(ROOT)}")
    return 0


def redo_raw(results: dict[str, Any], args: argparse.Namespace) -> None:
    """Re-measure the SQLite raw loop for every size of an earlier run (rounds as --rounds)."""
    tmp = Path(tempfile.mkdtemp(prefix="ngsild-raw-"))
    try:
        kept = [x for x in results["raw"] if x["store"] != "sqlite"]
        for size in sorted({x["size"] for x in results["raw"] if x["store"] == "sqlite"}):
            data = DataSet.make(size)
            docs = raw.stored_entities(data)
            for rnd in range(1, args.rounds + 1):
                r = run_raw("sqlite", data, docs, "", args, tmp, f"{size}_{rnd}_redo")
                kept.append({"store": "sqlite", "size": size, "round": rnd, "ops": r})
                print(f"[{size:,} sqlite r{rnd}] raw: " + ", ".join(
                    f"{k} {v['ops_per_s']:,.0f}/s" for k, v in r.items() if isinstance(v, dict)), flush=True)
        results["raw"] = kept
        results["meta"]["raw_redone"] = time.strftime("%Y-%m-%d %H:%M %Z") + f", load {loadavg()}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def profile(args: argparse.Namespace, scenarios: list[Scenario]) -> int:
    """One fresh SQLite broker per scenario under cProfile; top functions into bench/results/."""
    import pstats

    data = DataSet.make(args.profile_size)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tmp = Path(tempfile.mkdtemp(prefix="ngsild-prof-"))
    summary: dict[str, Any] = {}
    try:
        for sc in scenarios:
            wd = tmp / sc.name
            wd.mkdir()
            b = Broker("sqlite", wd, profile_out=wd / "broker.prof")
            seed_store_api(b, data)  # before the profiled process starts, so seeding is not in the profile
            b.start()
            try:
                client = Client(b.port)
                ok, hist, detail = check(sc, client, data, "prof")
                client.close()
                if not ok:
                    print(f"{sc.name}: not profiled ({detail} {hist})")
                    continue
                params = wd / "params.lua"
                write_params(params, b, data, f"p{stamp}")
                m = measure(sc, b, params, args, [b.proc.pid] if b.proc else [])
            finally:
                b.stop()
            out = RESULTS / f"profile-{sc.name}-{stamp}.txt"
            with out.open("w") as f:
                f.write(f"{sc.name}: {m['units_per_s']:,.0f}/s under cProfile (CPU-time clock), "
                        f"{args.profile_size:,} entities, {m['requests']} requests in the timed run "
                        f"(the profile also holds start-up and the {args.warmup} s warm-up)\n")
                st = pstats.Stats(str(wd / "broker.prof"), stream=f)
                st.strip_dirs().sort_stats("tottime").print_stats(35)
                st.sort_stats("cumulative").print_stats(45)
            summary[sc.name] = {"rps_under_profile": m["units_per_s"], "file": str(out.relative_to(ROOT))}
            print(f"{sc.name}: {m['units_per_s']:,.0f}/s under cProfile -> {out.relative_to(ROOT)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    (RESULTS / f"profile-{stamp}.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
