"""Typed settings: every option is a ``CSMS_*`` environment variable or a key of a TOML file.

One registry holds them all (:func:`settings_registry`): the core's classes here (:class:`Settings`,
:class:`SmartChargingSettings`) and those of every loaded plugin. A plugin declares its settings
in one way: a :class:`CsmsSettings` subclass with ``env_prefix="CSMS_<TABLE>_"``, listed in
``SETTINGS_CLASSES`` of the module it registers (``SETTINGS_CLASSES = (BillingSettings,)``).

The file is named by ``CSMS_CONFIG_FILE``. Its top-level keys are the core's variables in lower
case without the prefix (``port = 9000``); every other class reads the table named after its
prefix (``CSMS_BILLING_COST_UPDATES`` is ``cost_updates`` in ``[billing]``). Environment
variables win over the file; keys nobody declares are logged at start-up
(:func:`report_config_file`). The README's configuration reference and each plugin README's
settings table are generated (``csms config --markdown``) and checked by a test.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import tomllib
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Literal

from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

log = logging.getLogger("csms.settings")


@lru_cache(maxsize=4)
def _parsed(path: str, mtime_ns: int) -> dict[str, Any]:
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def config_file() -> tuple[str, dict[str, Any]]:
    """The path named by ``CSMS_CONFIG_FILE`` and its contents (``("", {})`` without one)."""
    path = os.environ.get("CSMS_CONFIG_FILE", "")
    return (path, _parsed(path, os.stat(path).st_mtime_ns)) if path else ("", {})


@dataclass(frozen=True)
class Declared:
    """One declared setting: its variable, its place in the file and its field."""

    variable: str  # CSMS_BILLING_COST_UPDATES
    table: str  # "billing"; "" for the core's top-level keys
    key: str  # "cost_updates"
    name: str  # the attribute of the settings object
    field: FieldInfo

    @property
    def file_key(self) -> str:
        return f"{self.table}.{self.key}" if self.table else self.key

    @property
    def secret(self) -> bool:
        return bool((self.field.json_schema_extra or {}).get("secret"))  # type: ignore[union-attr]


def table_of(cls: type[BaseSettings]) -> str:
    """The file's table of a settings class: its prefix without ``CSMS_`` (``""`` for the core's)."""
    return cls.model_config.get("env_prefix", "").upper().removeprefix("CSMS_").rstrip("_").lower()


def declared(cls: type[BaseSettings]) -> list[Declared]:
    prefix = cls.model_config.get("env_prefix", "").upper()
    out = []
    for name, field in cls.model_fields.items():
        variable = (field.alias or prefix + name).upper()
        out.append(Declared(variable, table_of(cls), variable.removeprefix(prefix).lower(), name, field))
    return out


class _FileSource(PydanticBaseSettingsSource):
    """The values of the config file for one settings class (its table, or the top level)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ reads the whole table at once

    def __call__(self) -> dict[str, Any]:
        data = config_file()[1]
        table = table_of(self.settings_cls)
        values = data.get(table, {}) if table else data
        if not isinstance(values, dict):
            return {}
        return {d.field.alias or d.name: values[d.key] for d in declared(self.settings_cls) if d.key in values}


class CsmsSettings(BaseSettings):
    """Base of every settings class: a ``CSMS_*`` variable wins over the config file's key."""

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _FileSource(settings_cls)


class UnknownStationPolicy(str, Enum):
    accept = "accept"
    pending = "pending"
    reject = "reject"


class Settings(CsmsSettings):
    """The core's options (top-level keys of the config file)."""

    model_config = SettingsConfigDict(env_prefix="CSMS_", extra="ignore")

    config_file: str = Field("", description="TOML file with settings (core keys at the top level, each plugin's in its table); read from the environment only.")

    host: str = Field("127.0.0.1", description="Address `csms serve` listens on.")
    port: int = Field(8180, description="Port `csms serve` listens on.")
    public_url: str = Field("", description="Base URL people reach this server at (`https://csms.example.com`); links in e-mails (driver sign-in, user invitations and password resets) start with it. Empty: taken from each request's Host header (set it behind a proxy that passes Host through unchecked).")
    data_dir: Path = Field(Path("data"), description="Directory for the embedded SQLite database, uploads and firmware files.")
    database_url: str = Field("", description="`postgresql://user@host:port/db` for PostgreSQL; empty means SQLite `csms.sqlite` in the data directory.")
    redis_url: str = Field("", description="`redis://host:port/0` turns on multi-node mode (commands routed between nodes, presence registry).")
    node_id: str = Field("", description="Name of this node in multi-node mode; defaults to host:pid (with several workers: `<node_id>:<pid>` per worker).")
    workers: int = Field(1, ge=1, description="Processes `csms serve` runs on one port (`--workers`); above 1 each worker is a node of the cluster, which needs `redis_url` and PostgreSQL.")
    node_ttl: float = Field(30.0, gt=0, description="Multi-node: seconds a node's liveness key lives in Redis (renewed every third of it); a node silent this long is dead, and within twice this another node marks its stations offline.")
    leader_lease: float = Field(15.0, gt=0, description="Multi-node: seconds a background job's leader lease lasts (renewed every third of it); when its node dies another node takes the job over within about this long.")
    metrics_token: str = Field("", description="Bearer token that may read `/metrics` (for a Prometheus scraper); empty: an installation-wide API key is needed.", json_schema_extra={"secret": True})
    unknown_stations: UnknownStationPolicy = Field(UnknownStationPolicy.pending, description="What happens to a station id the CSMS does not know: `accept` (create and accept), `pending` (create, BootNotification Pending until approved), `reject`.")
    default_organization: str = Field("", description="Organization (id or name) that stations registering themselves under an unknown id belong to; a name that does not exist yet is created. Empty: none (such stations are seen by global users only).")
    new_organization_plan: str = Field("", description="Plan (by name, e.g. `HOME`) given to new top-level organizations that name none: over REST, preselected on the admin's organization form, and the default organization made for self-registering stations. Organizations below another get none (they have their parent's). Empty: no plan (no restrictions until an admin chooses one).")
    require_station_password: bool = Field(False, description="Refuse WebSocket handshakes without HTTP Basic credentials even for stations that have no password set.")
    heartbeat_interval: int = Field(300, description="Heartbeat interval (s) given to stations in the BootNotification answer.")
    pending_retry_interval: int = Field(60, description="Retry interval (s) given to Pending/Rejected stations.")
    ping_interval: float = Field(30.0, description="WebSocket ping interval (s); a station that misses a pong within `ping_timeout` is evicted. 0 disables pings.")
    ping_timeout: float = Field(30.0, description="Seconds to wait for a pong.")
    call_timeout: float = Field(30.0, description="Seconds the CSMS waits for a station's answer to a command.")
    final_cost_data_transfer: bool = Field(False, description="OCPP 1.6: after a StopTransaction, send the session's final cost (the `price_session` hook) to the station in a California Pricing `DataTransfer` (vendorId `org.openchargealliance.costmsg`, messageId `FinalCost`).")
    running_cost_data_transfer: bool = Field(False, description="OCPP 1.6: during a transaction, send the running cost the billing plugin pushes (OCPP 2.0.1 and 2.1 stations get `CostUpdated`) in a California Pricing `DataTransfer` (vendorId `org.openchargealliance.costmsg`, messageId `RunningCost`).")
    tariff_fallback_texts: bool = Field(True, description="OCPP 2.0.1 and 2.1: after an accepted BootNotification, set the station's fallback texts it does not hold yet (`TariffCostCtrlr.TariffFallbackMessage`: the `tariff_message` hook's tariff text for a driver without a contract; `TotalCostFallbackMessage`: `total_cost_fallback_message`), shown when it cannot reach the CSMS.")
    total_cost_fallback_message: str = Field("", description="OCPP 2.0.1 and 2.1: the text a station shows instead of the total cost when it cannot get it from the CSMS (`TariffCostCtrlr.TotalCostFallbackMessage`), e.g. `The cost of this session will be on your invoice.` Empty: not set.")
    final_cost_timeout: float = Field(2.0, ge=0, description="OCPP 2.0.1 and 2.1: seconds the answer to a transaction's `Ended` event may wait for its final cost (the `price_session` hook) to give the station `totalCost`; slower, failing or no pricing: answered without it. 0: never sent.")
    reconcile_transactions: bool = Field(True, description="After a station's accepted BootNotification, check the transactions still open for it and close those it lost in a reboot (stop reason `Reboot`, flag `closed_after_reboot`, last stored meter reading): OCPP 2.0.1 and 2.1 ask `GetTransactionStatus` for each, OCPP 1.6 closes one whose connector then reports `Available`.")
    transaction_check_after_reconnect_s: float = Field(10.0, ge=0, description="OCPP 2.0.1 and 2.1: seconds after a station reconnects without booting (a lost connection, not a reboot) before each transaction still open for it is checked with `GetTransactionStatus`; one the station no longer runs and has no queued messages of is closed (stop reason `Other`, flag `closed_after_reconnect`). 0: checked only after boots. Needs `reconcile_transactions`.")
    transaction_resume_grace_s: float = Field(0.0, ge=0, description="OCPP 1.6: seconds after an accepted BootNotification within which the station must resume a transaction still open for it (MeterValues of it, or its connector charging), or it is closed as lost in the reboot; 0: only a connector reporting `Available` closes it.")
    max_frame_bytes: int = Field(256 * 1024, description="Largest OCPP frame accepted; larger frames are refused and the socket closed with 1009.")
    ws_compression: bool = Field(False, description="Agree to WebSocket compression (permessage-deflate) with a station that offers it: smaller frames on a metered link, but tens of KiB of zlib state per connection and CPU on every frame; off, the station talks uncompressed (OCPP does not require it).")
    message_log: bool = Field(True, description="Keep the raw OCPP frame log.")
    message_log_retention_days: int = Field(14, description="Days of raw OCPP frames kept.")
    meter_value_retention_days: int = Field(0, description="Days of meter values kept (0 keeps them forever).")
    db_write_pipeline: int = Field(1, ge=1, le=8, description="PostgreSQL: batches of the write path (meter values, frame log, session progress) in flight at once, each in its own transaction on its own pooled connection; 2 writes the next batch while the previous one waits for its commit, for more calls/s where commits bound a node (`bench/README.md`). SQLite writes one batch at a time.")
    plugins: str = Field("", description="Comma-separated allow-list of plugin names to load (empty loads all installed).")
    disable_plugins: str = Field("", description="Comma-separated plugin names not to load.")
    trace_hooks: bool = Field(False, description="Log every hook call with its arguments and results.")
    tls_cert: str = Field("", description="PEM certificate file; with `tls_key` the server speaks wss/https (on `port`, or on `tls_port` when that is set).")
    tls_key: str = Field("", description="PEM private key file.")
    tls_port: int = Field(0, ge=0, le=65535, description="With a server certificate (`tls_cert`/`tls_key` or `tls_certs`): a second listener of the same server on this port speaks wss/https (security profiles 2 and 3), while `port` stays plain ws/http (profile 1, and a TLS-terminating proxy's traffic); 0: one listener on `port`, TLS when a certificate is set. Needs `workers` 1.")
    tls_certs: str = Field("", description="More server certificates, comma-separated `cert.pem:key.pem` pairs (after `tls_cert`/`tls_key`, which may be empty then): RSA and ECDSA side by side (each client gets the one its ciphers and signature algorithms allow) and certificates for other server names (chosen by SNI).")
    tls_ca: str = Field("", description="CA bundle used to verify station client certificates (security profile 3).")
    tls_client_cert: Literal["optional", "required"] = Field("optional", description="With `tls_ca`: `optional` lets profile 2 (password) and profile 3 (client certificate) stations share the listener, each station held to its stored security profile; `required` refuses every TLS handshake without a client certificate.")
    allow_plain_ws: bool = Field(True, description="Accept stations over plain ws:// (security profile 1). Off: a handshake that did not come over TLS (directly, or per `X-Forwarded-Proto` from a trusted proxy) is refused with 403.")
    tls_client_cn_check: bool = Field(True, description="Security profile 3: refuse a station whose client certificate's subject commonName is not its station id.")
    session_secret: str = Field("", description="Secret for signing admin sessions and CSRF tokens; generated and stored in the data directory when empty.", json_schema_extra={"secret": True})
    map_tile_url: str | None = Field(None, description="Leaflet tile URL template of the admin's maps (`https://.../{z}/{x}/{y}.png`); unset: OpenStreetMap's tiles; empty: a blank map.")
    public_country_code: str = Field("NL", pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 country code of the operator in the public Locations feed (`/public/locations`, OCPI `country_code`); set it as your OCPI party's.")
    public_party_id: str = Field("CSM", pattern=r"^[A-Z0-9]{3}$", description="OCPI party id (3 characters) of the operator in the public Locations feed (`/public/locations`, OCPI `party_id`).")
    map_attribution: str | None = Field(None, description="Attribution shown on the admin's maps; unset: OpenStreetMap's with its tiles, none with others.")
    admin_time_zone: str = Field("UTC", description="Time zone (IANA name, `Europe/Berlin`) the admin shows times in for users who have not chosen their own on their account page.")
    admin_language: str = Field("en", description="Language (`en`, `de`, `nl`, `fr`) of the admin, the driver portal and the public map for people who have not chosen one on their account page and whose browser asks for none of these.")
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")
    otel_endpoint: str = Field("", description="OTLP/HTTP traces endpoint of an OpenTelemetry collector (`http://collector:4318/v1/traces`): spans of HTTP requests, station CALLs and commands (needs the `otel` extra); empty: no tracing.")
    otel_service_name: str = Field("csms", description="`service.name` of the traces.")
    log_format: Literal["text", "json"] = Field("text", description="`text` for a terminal; `json`: one JSON object per line (time, level, logger, message, station_id, message_id) for a log pipeline.")

    @field_validator("admin_time_zone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        from zoneinfo import available_timezones

        value = value.strip() or "UTC"
        if value != "UTC" and value not in available_timezones():
            raise ValueError(f"{value!r} is not a known time zone (an IANA name such as Europe/Berlin)")
        return value

    @field_validator("admin_language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        from csms.i18n import LANGUAGES

        value = value.strip().lower() or "en"
        if value not in LANGUAGES:
            raise ValueError(f"{value!r} is not a language of the admin (one of {', '.join(LANGUAGES)})")
        return value

    @property
    def tls_enabled(self) -> bool:
        """The server speaks wss/https: a certificate in `tls_cert` or `tls_certs`."""
        return bool(self.tls_cert or self.tls_certs.strip())

    @property
    def port_is_tls(self) -> bool:
        """`port` speaks wss/https (a certificate and no `tls_port`, which would take TLS instead)."""
        return self.tls_enabled and not self.tls_port

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


class SmartChargingSettings(CsmsSettings):
    """Tuning of the core's smart-charging loop (``[smart_charging]``)."""

    model_config = SettingsConfigDict(env_prefix="CSMS_SMART_CHARGING_", extra="ignore")

    enabled: bool = Field(True, description="Run the smart-charging loop.")
    interval_s: float = Field(60.0, description="Seconds between rounds for every site, besides the events.")
    debounce_s: float = Field(0.2, description="Seconds to wait after an event so that events arriving together make one round.")
    meter_interval_s: float = Field(15.0, description="Fewest seconds between two rounds of a site caused by meter values.")
    min_change_a: float = Field(1.0, description="Increases smaller than this (A) are not sent; decreases always are.")
    discharge_frees_capacity: bool = Field(True, description="A discharging (V2X) EV's current counts against the import of every fuse above it, so that others may charge more; off: discharge is only checked against the fuses in the export direction.")
    stack_level: int = Field(1, description="Stack level of the profiles the loop sends (lowered to the station's maximum when known).")
    profile_id_base: int = Field(900_000, description="Profile ids are base + 10 × EVSE id + 1 (station maximum), 2 (default) or 3 (transaction).")
    default_max_current_a: float = Field(32.0, description="Connector maximum (A) when the station has no max_current_a.")
    phase_threshold_a: float = Field(1.0, description="A phase counts as in use when its measured current is at least this (A).")
    measure_settle_s: float = Field(10.0, description="Measurements older than a profile change plus this many seconds are not passed to the allocator.")
    horizon_s: int = Field(86_400, description="How far ahead (s) capacity changes are written into the profiles.")
    default_max_periods: int = Field(24, description="Schedule periods per profile when the station does not say.")
    station_max_profile: bool = Field(True, description="Install a station maximum profile from the station's max_current_a.")
    boot_grace_s: float = Field(10.0, description="Seconds after a connection without BootNotification before profiles are sent anyway.")
    retry_s: float = Field(30.0, description="Seconds before a station that refused or missed a profile is tried again (its draw stays reserved).")
    verify: bool = Field(True, description="Read back the composite schedule after changes and report stations that do not honour profiles.")
    verify_interval_s: float = Field(300.0, description="Fewest seconds between two read-backs of one station.")
    verify_tolerance_a: float = Field(0.5, description="A composite limit this much (A) above what was sent counts as not honoured.")
    learned_departures: bool = Field(False, description="Learn each session's departure from the site's past sessions (median stay per card, driver, then site by arrival hour and weekday/weekend; the last 90 days) and give the allocator the later of it and the driver's or EV's own estimate; shown as `departure_source: learned`. Off by default: on ACN-Data it predicts departures better but costs fairness (bench/README.md, *Learned departures*).")


class LocalListSettings(CsmsSettings):
    """Local authorization lists sent to stations (``[local_lists]``, :mod:`csms.core.services.local_lists`)."""

    model_config = SettingsConfigDict(env_prefix="CSMS_LOCAL_LISTS_", extra="ignore")

    enabled: bool = Field(True, description="Build each station's local authorization list from the cards it may use and keep it in step (OCPP 1.6 SendLocalList, 2.0.1 and 2.1 LocalAuthListCtrlr); off: nothing is sent automatically (\"send full list now\" still works).")
    debounce_s: float = Field(3.0, ge=0, description="Seconds to wait after a card change so that changes made together go out as one update per station.")
    connect_delay_s: float = Field(2.0, ge=0, description="Seconds after an accepted BootNotification before the station's list version is checked.")
    boot_grace_s: float = Field(10.0, ge=0, description="Seconds after a connection without BootNotification before the list version is checked anyway.")
    interval_s: float = Field(300.0, ge=0, description="Seconds between checks of every connected station's list against the cards (catches changes made outside the CSMS); 0: only on changes.")
    max_entries_per_message: int = Field(100, ge=1, description="Entries per SendLocalList when the station does not say (1.6 `SendLocalListMaxLength`, 2.0.1 and 2.1 `ItemsPerMessage`).")


class CertificateSettings(CsmsSettings):
    """Station certificates (``[certificates]``): the built-in CA and the checks of a station's
    certificate signing request (:mod:`csms.core.certificates`)."""

    model_config = SettingsConfigDict(env_prefix="CSMS_CERTIFICATES_", extra="ignore")

    ca_enabled: bool = Field(True, description="The built-in CA (made on first use in `<data_dir>/ca/`) signs the certificates stations ask for with SignCertificate (ChargingStationCertificate); off: only an `issue_certificate` plugin does.")
    ca_name: str = Field("CSMS Station CA", description="commonName of the built-in CA's certificate (when it is made or rotated).")
    ca_key_type: Literal["ec", "rsa"] = Field("ec", description="Key of the built-in CA: `ec` (ECDSA P-256) or `rsa` (3072 bits).")
    ca_validity_days: int = Field(3650, ge=1, description="Days the built-in CA's certificate is valid (when it is made or rotated).")
    certificate_validity_days: int = Field(365, ge=1, description="Days a station certificate signed by the built-in CA is valid (never beyond the CA's own expiry).")
    organization: str = Field("", description="organizationName a station's CSR must carry (and the built-in CA's); empty: not checked.")
    min_rsa_bits: int = Field(2048, ge=1024, description="Smallest RSA key accepted in a CSR (EC keys must be P-256, P-384 or P-521).")
    expiry_warning_days: int = Field(30, ge=0, description="Certificates issued to stations that expire within this many days are listed as expiring (REST and admin).")
    auto_renew: bool = Field(True, description="Ask a connected station to renew a certificate the CSMS signed for it once it expires within `expiry_warning_days` (TriggerMessage SignCertificate; 1.6 ExtendedTriggerMessage): after its accepted boots and once a day (one node of a cluster), at most once a day per station and type.")


class SmtpSettings(CsmsSettings):
    """The SMTP server e-mails are sent through (``[smtp]``): user invitations and password
    resets, and the notifications plugin's e-mail deliveries."""

    model_config = SettingsConfigDict(env_prefix="CSMS_SMTP_", extra="ignore")

    host: str = Field("", description="SMTP server; empty turns e-mail off (e-mail deliveries fail with a clear reason).")
    port: int = Field(587, description="SMTP port.")
    user: str = Field("", description="SMTP user name (none: no login).")
    password: str = Field("", description="SMTP password.", json_schema_extra={"secret": True})
    from_: str = Field("csms@localhost", alias="CSMS_SMTP_FROM", description="Sender address.")
    security: str = Field("auto", description="`auto` (STARTTLS when offered), `starttls`, `tls` (implicit TLS, port 465) or `none`.")
    timeout: float = Field(30.0, description="Seconds for the whole SMTP exchange.")


@lru_cache(maxsize=1)
def smtp_settings() -> SmtpSettings:
    """Read once; tests call ``smtp_settings.cache_clear()`` after changing the environment."""
    return SmtpSettings()


CORE_SETTINGS: tuple[type[CsmsSettings], ...] = (Settings, SmartChargingSettings, LocalListSettings, CertificateSettings,
                                                  SmtpSettings)


def load_settings(**overrides: Any) -> Settings:
    """The core's settings: the config file, then the environment, then explicit overrides."""
    return Settings(**overrides)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def settings_registry() -> dict[str, tuple[type[BaseSettings], ...]]:
    """Every settings class by owner: ``"core"`` first, then each loaded plugin that declares some
    (``SETTINGS_CLASSES`` of its module), by name."""
    from csms.plugins import load_plugins, pm

    load_plugins()
    registry: dict[str, tuple[type[BaseSettings], ...]] = {"core": CORE_SETTINGS}
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
        if classes := tuple(getattr(plugin, "SETTINGS_CLASSES", ())):
            registry[name] = classes
    return registry


def _shown(value: Any) -> str:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


def effective_settings() -> list[str]:
    """``VARIABLE=value`` lines for every setting, a ``# owner`` line before each owner's; secrets
    and passwords in URLs masked."""
    lines = []
    for owner, classes in settings_registry().items():
        lines.append(f"# {owner}")
        for cls in classes:
            values = cls()
            for d in declared(cls):
                text = _shown(getattr(values, d.name))
                text = "***" if d.secret and text else re.sub(r"(://[^:/@\s]*:)[^@/\s]+@", r"\1***@", text)
                lines.append(f"{d.variable}={text}")
    return lines


def settings_reference_markdown(owner: str | None = None, *, owners: Iterable[str] | None = None) -> str:
    """The configuration reference: one table for ``owner`` (``"core"`` or a plugin's name), or
    the README's block (the table of each of ``owners``, default every loaded one, under its
    heading)."""
    registry = settings_registry()
    if owner is None:
        listed = [name for name in registry if owners is None or name in owners]
        return "\n\n".join(f"### {'Core' if name == 'core' else f'Plugin `{name}`'}\n\n{settings_reference_markdown(name)}"
                            for name in listed)
    lines = ["| variable | file key | default | meaning |", "|---|---|---|---|"]
    for cls in registry[owner]:
        for d in declared(cls):
            default = _shown(d.field.default)
            shown = f"`{default}`" if default else "(unset)" if d.field.default is None else "(empty)"
            lines.append(f"| `{d.variable}` | `{d.file_key}` | {shown} | {d.field.description} |")
    return "\n".join(lines)


def config_file_problems() -> list[str]:
    """A line for each key of the config file that no registered settings class declares."""
    path, data = config_file()
    if not data:
        return []
    keys: dict[str, set[str]] = {}
    for classes in settings_registry().values():
        for cls in classes:
            keys.setdefault(table_of(cls), set()).update(d.key for d in declared(cls))
    tables = sorted(t for t in keys if t)
    problems = []

    def unknown(what: str, name: str, known: list[str], where: str = "") -> None:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(f"{path}: unknown {what} {name!r}{where}{hint}")

    for name, value in data.items():
        if isinstance(value, dict) and name in keys:
            for key in value:
                if key not in keys[name]:
                    unknown("key", key, sorted(keys[name]), f" in [{name}]")
        elif isinstance(value, dict):
            unknown("table", name, tables)
        elif name not in keys[""]:
            unknown("key", name, sorted(keys[""]) + tables)
    return problems


def report_config_file() -> None:
    """Log a warning for each key of the config file nobody declares (at start-up)."""
    for problem in config_file_problems():
        log.warning("%s; it is ignored", problem)
