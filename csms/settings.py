"""Typed settings: every option comes from a ``CSMS_*`` environment variable or a TOML file.

The file is named by ``CSMS_CONFIG_FILE`` and holds the same keys in lower case without the
prefix (``port = 9000``). Environment variables win over the file. The README's configuration
reference is generated from this class (``csms config --markdown``) and checked by a test.
"""

from __future__ import annotations

import os
import tomllib
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class UnknownStationPolicy(str, Enum):
    accept = "accept"
    pending = "pending"
    reject = "reject"


class Settings(BaseSettings):
    """All options of a CSMS process."""

    model_config = SettingsConfigDict(env_prefix="CSMS_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address `csms serve` listens on.")
    port: int = Field(8180, description="Port `csms serve` listens on.")
    data_dir: Path = Field(Path("data"), description="Directory for the embedded SQLite database, uploads and firmware files.")
    database_url: str = Field("", description="`postgresql://user@host:port/db` for PostgreSQL; empty means SQLite `csms.sqlite` in the data directory.")
    redis_url: str = Field("", description="`redis://host:port/0` turns on multi-node mode (commands routed between nodes, presence registry).")
    node_id: str = Field("", description="Name of this node in multi-node mode; defaults to host:pid.")
    unknown_stations: UnknownStationPolicy = Field(UnknownStationPolicy.pending, description="What happens to a station id the CSMS does not know: `accept` (create and accept), `pending` (create, BootNotification Pending until approved), `reject`.")
    require_station_password: bool = Field(False, description="Refuse WebSocket handshakes without HTTP Basic credentials even for stations that have no password set.")
    heartbeat_interval: int = Field(300, description="Heartbeat interval (s) given to stations in the BootNotification answer.")
    pending_retry_interval: int = Field(60, description="Retry interval (s) given to Pending/Rejected stations.")
    ping_interval: float = Field(30.0, description="WebSocket ping interval (s); a station that misses a pong within `ping_timeout` is evicted. 0 disables pings.")
    ping_timeout: float = Field(30.0, description="Seconds to wait for a pong.")
    call_timeout: float = Field(30.0, description="Seconds the CSMS waits for a station's answer to a command.")
    max_frame_bytes: int = Field(256 * 1024, description="Largest OCPP frame accepted; larger frames are refused and the socket closed with 1009.")
    message_log: bool = Field(True, description="Keep the raw OCPP frame log.")
    message_log_retention_days: int = Field(14, description="Days of raw OCPP frames kept.")
    meter_value_retention_days: int = Field(0, description="Days of meter values kept (0 keeps them forever).")
    flush_interval: float = Field(0.2, description="Seconds between batched writes of meter values and frame logs.")
    flush_max_rows: int = Field(5000, description="Rows that trigger a batched write before the interval elapses.")
    plugins: str = Field("", description="Comma-separated allow-list of plugin names to load (empty loads all installed).")
    disable_plugins: str = Field("", description="Comma-separated plugin names not to load.")
    trace_hooks: bool = Field(False, description="Log every hook call with its arguments and results.")
    tls_cert: str = Field("", description="PEM certificate file; with `tls_key` the server speaks wss/https.")
    tls_key: str = Field("", description="PEM private key file.")
    tls_ca: str = Field("", description="CA bundle used to verify station client certificates (security profile 3).")
    tls_client_cn_check: bool = Field(True, description="Security profile 3: refuse a station whose client certificate's subject commonName is not its station id.")
    session_secret: str = Field("", description="Secret for signing admin sessions and CSRF tokens; generated and stored in the data directory when empty.")
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'csms.sqlite').resolve()}"

    @property
    def is_postgres(self) -> bool:
        return self.effective_database_url.startswith(("postgres://", "postgresql://"))

    def plugin_allowed(self, name: str) -> bool:
        allow = {p.strip() for p in self.plugins.split(",") if p.strip()}
        deny = {p.strip() for p in self.disable_plugins.split(",") if p.strip()}
        return (not allow or name in allow) and name not in deny


def _file_values() -> dict[str, Any]:
    path = os.environ.get("CSMS_CONFIG_FILE")
    if not path:
        return {}
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the config file, then the environment, then explicit overrides."""
    values = _file_values()
    env = Settings()  # environment (and defaults)
    explicit = {k: getattr(env, k) for k in env.model_fields_set}
    return Settings.model_validate({**values, **explicit, **overrides})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def settings_reference_markdown() -> str:
    """The configuration reference table for the README."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default.value if isinstance(field.default, Enum) else field.default
        lines.append(f"| `CSMS_{name.upper()}` | `{default}` | {field.description} |")
    return "\n".join(lines)
