"""Start the real services the tests talk to: FerretDB (MongoDB wire) and Mosquitto (MQTT).

Given ``MONGODB_URL`` / ``MQTT_URL``, those servers are used instead and nothing is started.
A service that cannot start fails the run with a clear message; it is never silently skipped.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path


class ServiceError(RuntimeError):
    pass


_PORTS = random.Random()


def free_port() -> int:
    """A port to listen on later, below Linux's ephemeral range (32768+): a port the OS hands out for
    ``bind(0)`` may be taken as the source port of an outgoing connection before the test binds it."""
    for _ in range(200):
        port = _PORTS.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ServiceError("no free port found in 20000-32000")


def wait_port(port: int, proc: subprocess.Popen[bytes] | None, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise ServiceError(f"{what} exited with code {proc.returncode}:\n{out[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise ServiceError(f"{what} did not open 127.0.0.1:{port} within {timeout:.0f}s")


def start_broker(port: int, store_args: list[str]) -> subprocess.Popen[bytes]:
    """The real broker process (``python -m broker``, agents and MQTT off) on ``port``."""
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "broker", "--host", "127.0.0.1", "--port", str(port),
           "--agents", "false", "--mqtt-url", "off", "--log-format", "text", *store_args]
    return subprocess.Popen(cmd, cwd=root, env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def broker_store_args(backend: str, mongodb_url: str, tmp_path: Path) -> list[str]:
    """``start_broker`` arguments for a fresh store: a SQLite file in ``tmp_path`` or a new database."""
    if backend == "sqlite":
        return ["--sqlite-path", str(tmp_path / "broker.sqlite3")]
    return ["--mongodb-url", mongodb_url, "--mongodb-db", "k" + uuid.uuid4().hex[:10]]


def stop_broker(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Ctrl-C, as an operator would: the broker must exit cleanly (code 0)."""
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out.decode(errors="replace")[-3000:]


async def drop_broker_store(store_args: list[str]) -> None:
    """Remove what a test's broker wrote to MongoDB (a SQLite file goes with ``tmp_path``)."""
    if "--mongodb-url" not in store_args:
        return
    from broker.store.mongo import MongoStore

    store = MongoStore(store_args[store_args.index("--mongodb-url") + 1], store_args[-1])
    for tenant in await store.tenants():
        await store.drop_tenant(tenant)
    await store.close()


def find_ferretdb() -> str:
    candidates = [shutil.which("ferretdb")]
    gopath = os.environ.get("GOPATH") or str(Path.home() / "go")
    candidates.append(str(Path(gopath) / "bin" / "ferretdb"))
    try:
        out = subprocess.run(["go", "env", "GOPATH"], capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(str(Path(out.stdout.strip()) / "bin" / "ferretdb"))
    except (OSError, subprocess.TimeoutExpired):
        pass
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    raise ServiceError("ferretdb not found: run `make test` (it runs scripts/install-services.sh, which "
                       "installs it with `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2`), "
                       "or set MONGODB_URL")


def find_mosquitto() -> str:
    for c in (shutil.which("mosquitto"), "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if c and Path(c).is_file():
            return c
    raise ServiceError("mosquitto not found: run `make test` (it installs Debian's package `mosquitto`), "
                       "or set MQTT_URL")


@dataclass
class Services:
    mongodb_url: str = ""
    mqtt_url: str = ""
    descriptions: list[str] = field(default_factory=list)
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _dirs: list[str] = field(default_factory=list)

    def start(self) -> None:
        try:
            self._start_mongo()
            self._start_mqtt()
        except BaseException:
            self.stop()
            raise

    def _start_mongo(self) -> None:
        given = os.environ.get("MONGODB_URL")
        if given:
            self.mongodb_url = given
            self.descriptions.append(f"MongoDB: {given} (given by MONGODB_URL)")
            return
        binary = find_ferretdb()
        version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
        version_line = next((ln for ln in version.splitlines() if "version" in ln.lower()), version.strip())
        tmp = tempfile.mkdtemp(prefix="ferretdb-")
        self._dirs.append(tmp)
        (Path(tmp) / "data").mkdir()
        port = free_port()
        proc = subprocess.Popen(
            [binary, "--handler=sqlite", f"--sqlite-url=file:{tmp}/data/", f"--listen-addr=127.0.0.1:{port}",
             "--telemetry=disable", "--debug-addr=-", f"--state-dir={tmp}", "--log-level=error"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._procs.append(proc)
        wait_port(port, proc, "FerretDB")
        self.mongodb_url = f"mongodb://127.0.0.1:{port}/"
        self.descriptions.append(f"MongoDB wire: FerretDB {version_line.strip()} (SQLite handler) on "
                                 f"127.0.0.1:{port}")

    def _start_mqtt(self) -> None:
        given = os.environ.get("MQTT_URL")
        if given:
            self.mqtt_url = given
            self.descriptions.append(f"MQTT: {given} (given by MQTT_URL)")
            return
        binary = find_mosquitto()
        help_out = subprocess.run([binary, "-h"], capture_output=True, text=True)
        version_line = (help_out.stdout or help_out.stderr).splitlines()[0] if (help_out.stdout or
                                                                               help_out.stderr) else "?"
        tmp = tempfile.mkdtemp(prefix="mosquitto-")
        self._dirs.append(tmp)
        port = free_port()
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                        "max_queued_messages 100000\n")
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._procs.append(proc)
        wait_port(port, proc, "Mosquitto")
        self.mqtt_url = f"mqtt://127.0.0.1:{port}"
        self.descriptions.append(f"MQTT: {version_line.strip()} on 127.0.0.1:{port}")

    def stop(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self._procs.clear()
        for d in self._dirs:
            shutil.rmtree(d, ignore_errors=True)
        self._dirs.clear()
