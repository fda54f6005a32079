"""Configuration, the README table, and the real process: start, serve, stop, restart with data kept."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from broker.config import load_settings, settings_table
from tests.services import free_port, wait_port

ROOT = Path(__file__).resolve().parent.parent


def test_env_and_flags() -> None:
    s = load_settings([], env={"PORT": "2000", "MONGODB_URL": "mongodb://x/", "AGENTS": "false"})
    assert (s.port, s.mongodb_url, s.agents) == (2000, "mongodb://x/", False)
    s = load_settings(["--port", "3000", "--log-format", "text"], env={"PORT": "2000"})
    assert (s.port, s.log_format) == (3000, "text")
    with pytest.raises(SystemExit):
        load_settings(["--port", "not-a-number"], env={})
    with pytest.raises(SystemExit):
        load_settings([], env={"LOG_FORMAT": "xml"})
    assert load_settings(["--log-level", "warning"], env={}).log_level == "WARNING"
    with pytest.raises(SystemExit):
        load_settings([], env={"LOG_LEVEL": "loud"})


def test_readme_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    assert settings_table() in readme, "README configuration table is out of date: regenerate it"
    lines = readme.splitlines()
    first_code = next(i for i, ln in enumerate(lines) if ln.startswith("```"))
    assert lines[first_code + 1].startswith("make run") and lines[first_code + 2].startswith("make test")


def _start(db: Path, ports: tuple[int, int, int], mqtt: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LOG_FORMAT": "text"}
    cmd = [sys.executable, "-m", "broker", "--host", "127.0.0.1", "--port", str(ports[0]),
           "--iota-north-port", str(ports[1]), "--iota-http-port", str(ports[2]),
           "--sqlite-path", str(db), "--mqtt-url", mqtt]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out.decode(errors="replace")
    return out.decode(errors="replace")


async def _http(method: str, url: str, **kw) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    async with aiohttp.ClientSession() as s, s.request(method, url, **kw) as r:
        return r.status, await r.text()


async def test_process_serves_stops_and_keeps_data(tmp_path: Path, services) -> None:  # type: ignore[no-untyped-def]
    ports = (free_port(), free_port(), free_port())
    db = tmp_path / "store.sqlite3"
    proc = _start(db, ports, "off")
    try:
        await asyncio.to_thread(wait_port, ports[0], proc, "broker", 30)
        await asyncio.to_thread(wait_port, ports[1], proc, "agents north", 10)
        await asyncio.to_thread(wait_port, ports[2], proc, "agents south", 10)
        body = b'{"id":"urn:ngsi-ld:Room:9","type":"Room","t":{"type":"Property","value":1}}'
        status, _ = await _http("POST", f"http://127.0.0.1:{ports[0]}/ngsi-ld/v1/entities", data=body,
                                headers={"Content-Type": "application/json"})
        assert status == 201
    finally:
        out = _stop(proc)
    assert "MQTT is off" in out and "MQTT_URL" in out

    proc = _start(db, ports, services.mqtt_url)
    try:
        await asyncio.to_thread(wait_port, ports[0], proc, "broker", 30)
        status, text = await _http("GET", f"http://127.0.0.1:{ports[0]}/ngsi-ld/v1/entities/urn:ngsi-ld:Room:9")
        assert status == 200 and '"value":1' in text.replace(" ", ""), text
    finally:
        out = _stop(proc)
    assert "MQTT on" in out
