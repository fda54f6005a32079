"""Settings: every one is an environment variable and a CLI flag of the same name.

``MONGODB_URL`` is also ``--mongodb-url``; the README's configuration table is generated from
``SETTINGS`` below (``python -m broker --help`` prints the same list).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    default: Any
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("HOST", "0.0.0.0", "Address every listener binds to"),
    Setting("PORT", 1026, "NGSI-LD API port"),
    Setting("MONGODB_URL", "", "MongoDB (or FerretDB) URL; empty = embedded SQLite store"),
    Setting("MONGODB_DB", "ngsild", "Database name prefix; tenant T uses database '<prefix>-T'"),
    Setting("SQLITE_PATH", "data/ngsild.sqlite3", "Embedded store file (':memory:' for throwaway runs)"),
    Setting("MQTT_URL", "", "MQTT broker for the agents and MQTT notifications (mqtt://host:1883); "
            "empty = use a local Mosquitto on 127.0.0.1:1883 if one answers, else MQTT is off"),
    Setting("AGENTS", True, "Start the IoT agents (provisioning API and southbound transports)"),
    Setting("IOTA_NORTH_PORT", 4041, "IoT Agent provisioning API port"),
    Setting("IOTA_HTTP_PORT", 7896, "IoT Agent HTTP southbound port (/iot/json, /iot/d)"),
    Setting("IOTA_CB_URL", "", "Remote NGSI-LD broker for the agents; empty = write in-process"),
    Setting("IOTA_JSON_LD_CONTEXT", "", "@context the agents use for device entities (comma list)"),
    Setting("IOTA_DEFAULT_RESOURCE", "/iot/json", "Default resource for config groups"),
    Setting("IOTA_PROVIDER_URL", "", "URL the remote broker forwards command updates and lazy-attribute "
            "queries to (csourceRegistration endpoint); empty = http://HOST:IOTA_NORTH_PORT, with the host name "
            "when HOST is 0.0.0.0"),
    Setting("IOTA_POLLING_EXPIRATION", 0, "Milliseconds a polling command waits for its device before it "
            "ends as ERROR / EXPIRED; 0 = never"),
    Setting("IOTA_POLLING_DAEMON_FREQ", 1000, "Milliseconds between two sweeps for expired polling commands"),
    Setting("LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR"),
    Setting("LOG_FORMAT", "json", "json (structured, one object per line) or text"),
    Setting("MAX_BODY_BYTES", 2 * 1024 * 1024, "Largest request body accepted (413 above)"),
    Setting("RENDER_CACHE_MB", 256, "Memory for rendered entity answers (GET by id, query pages); 0 = off"),
    Setting("DEFAULT_LIMIT", 20, "Page size when a query gives no limit"),
    Setting("MAX_LIMIT", 1000, "Largest limit; above it a query gets 403 TooManyResults"),
    Setting("MAX_BATCH", 1000, "Most entities in one batch operation"),
    Setting("CORE_CONTEXT", "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld",
            "Core @context URL the broker answers with (a built-in copy)"),
    Setting("CONTEXT_PRELOAD", "", "Comma list of URL->file JSON maps or folders with index.json"),
    Setting("CONTEXT_BUILTIN_MODELS", True, "Resolve the Smart Data Models (and FIWARE data-models) "
            "@context URLs from the copies shipped with the broker instead of downloading them"),
    Setting("CONTEXT_FETCH_TIMEOUT", 5.0, "Seconds allowed to download a remote @context"),
    Setting("CONTEXT_MAX_BYTES", 1024 * 1024, "Largest remote @context accepted"),
    Setting("CONTEXT_FAILURE_TTL", 10.0, "Seconds a failed @context download is answered with 503 at once "
            "before it is tried again"),
    Setting("NOTIFY_TIMEOUT", 10.0, "Seconds allowed for one notification delivery"),
    Setting("NOTIFY_MAX_RETRIES", 8, "Delivery attempts before a notification counts as failed"),
    Setting("NOTIFY_CA_FILE", "", "PEM file of CA certificates trusted for https:// and mqtts:// notification "
            "endpoints, on top of the system's (for receivers with a private CA)"),
    Setting("NOTIFY_INSECURE", False, "Send https:// and mqtts:// notifications without verifying the "
            "receiver's certificate (as Orion-LD's -insecureNotif); for tests and closed networks only"),
    Setting("SUBSCRIPTION_SYNC_INTERVAL", 0.5, "Seconds between reloads of subscriptions from the store"),
)


class Settings(BaseModel):
    """Validated settings (field names are the lower-case setting names)."""

    model_config = ConfigDict(frozen=True)

    host: str = "0.0.0.0"
    port: int = Field(1026, ge=0, le=65535)
    mongodb_url: str = ""
    mongodb_db: str = Field("ngsild", pattern=r"^[A-Za-z0-9_]{1,40}$")
    sqlite_path: str = "data/ngsild.sqlite3"
    mqtt_url: str = ""
    agents: bool = True
    iota_north_port: int = Field(4041, ge=0, le=65535)
    iota_http_port: int = Field(7896, ge=0, le=65535)
    iota_cb_url: str = ""
    iota_json_ld_context: str = ""
    iota_default_resource: str = "/iot/json"
    iota_provider_url: str = ""
    iota_polling_expiration: int = Field(0, ge=0)
    iota_polling_daemon_freq: int = Field(1000, gt=0)
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    log_format: str = Field("json", pattern=r"^(json|text)$")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        """``--log-level warning`` works as well as ``WARNING``."""
        return value.upper() if isinstance(value, str) else value
    max_body_bytes: int = Field(2 * 1024 * 1024, gt=0)
    render_cache_mb: int = Field(256, ge=0)
    default_limit: int = Field(20, gt=0)
    max_limit: int = Field(1000, gt=0)
    max_batch: int = Field(1000, gt=0)
    core_context: str = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
    context_preload: str = ""
    context_builtin_models: bool = True
    context_fetch_timeout: float = Field(5.0, gt=0)
    context_max_bytes: int = Field(1024 * 1024, gt=0)
    context_failure_ttl: float = Field(10.0, ge=0)
    notify_timeout: float = Field(10.0, gt=0)
    notify_max_retries: int = Field(8, ge=0)
    notify_ca_file: str = ""
    notify_insecure: bool = False
    subscription_sync_interval: float = Field(0.5, gt=0)


def _flag(name: str) -> str:
    return "--" + name.lower().replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ngsild-broker", description="NGSI-LD context broker with IoT agents. Every flag is also "
        "an environment variable of the same name (upper case, '_' for '-').")
    for s in SETTINGS:
        parser.add_argument(_flag(s.name), dest=s.name.lower(), default=None,
                            help=f"{s.help} (env {s.name}, default {s.default!r})")
    return parser


def load_settings(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> Settings:
    """CLI flags win over environment variables, which win over defaults."""
    env = dict(os.environ if env is None else env)
    values: dict[str, Any] = {}
    for s in SETTINGS:
        if s.name in env:
            values[s.name.lower()] = env[s.name]
    args = build_parser().parse_args(list(argv) if argv is not None else [])
    for key, value in vars(args).items():
        if value is not None:
            values[key] = value
    for key in ("agents", "notify_insecure"):
        if isinstance(values.get(key), str):
            values[key] = values[key].strip().lower() not in ("0", "false", "no", "off", "")
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise SystemExit(f"invalid configuration: {exc}") from exc


def settings_table() -> str:
    """The README's configuration table."""
    rows = ["| Variable / flag | Default | Meaning |", "|---|---|---|"]
    for s in SETTINGS:
        rows.append(f"| `{s.name}` / `{_flag(s.name)}` | `{s.default!r}` | {s.help} |")
    return "\n".join(rows)
