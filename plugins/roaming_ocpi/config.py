"""The roaming plugin's settings: ``CSMS_OCPI_*`` variables or the ``[ocpi]`` table of the config file."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from csms.plugin_api import CsmsSettings

WHITELIST_TYPES = ("ALWAYS", "ALLOWED", "ALLOWED_OFFLINE", "NEVER")
ROAMING = "roaming"  # the plan feature: the sites of organizations without it are not given to partners


class OcpiSettings(CsmsSettings):
    """Who we are on OCPI and how the plugin behaves."""

    model_config = SettingsConfigDict(env_prefix="CSMS_OCPI_", extra="ignore")

    country_code: str = Field("NL", description="ISO 3166-1 alpha-2 country code of our OCPI party.")
    party_id: str = Field("CSM", description="Our OCPI party id (3 characters, ISO 15118).")
    business_name: str = Field("CSMS operator", description="Name in our BusinessDetails (credentials roles, Location.operator).")
    website: str = Field("", description="Website in our BusinessDetails.")
    logo_url: str = Field("", description="URL of our logo (PNG, JPG, GIF or SVG, at most 255 characters) for the `logo` of our BusinessDetails; empty: none.")
    signed_data_url: str = Field("", description="URL given to drivers in a CDR's `signed_data` to check the signed meter values (for example the transparency software's page); empty: none.")
    roles: str = Field("CPO,EMSP", description="Comma-separated OCPI roles we take: CPO, EMSP or both.")
    versions: str = Field("2.2.1,2.1.1", description="Comma-separated OCPI versions we offer and accept: 2.2.1, 2.1.1 or both (the newest both sides offer is used).")
    v211_partner_role: str = Field("EMSP", description="Role of an OCPI 2.1.1 partner (2.1.1 credentials name none) when we take both roles: EMSP or CPO; we take the other one towards it.")
    base_url: str = Field("", description="Public base URL of this server (`https://csms.example.com`); empty takes it from each request.")
    currency: str = Field("EUR", description="Currency of sessions and CDRs when no pricing plugin answers.")
    token_whitelist: str = Field("ALLOWED_OFFLINE", description="WhitelistType published with our tokens: ALWAYS, ALLOWED, ALLOWED_OFFLINE or NEVER.")
    authorize_timeout: float = Field(3.0, description="Seconds a real-time authorization at a partner may take before the whitelist rule decides.")
    authorize_unknown: bool = Field(False, description="Ask every eMSP partner in real time about a token that is neither ours nor pushed by a partner.")
    request_timeout: float = Field(15.0, description="Seconds an outbound OCPI request may take.")
    page_limit: int = Field(100, description="Largest page served by paginated GET endpoints (X-Limit).")
    sync_interval: float = Field(30.0, description="Seconds between scans for changed locations, tariffs and tokens to push (0: only on events and `POST /sync`).")
    session_update_interval: float = Field(60.0, description="Least seconds between two Session PATCHes (new charging period) of one session.")
    retry_delay: float = Field(1.0, description="Seconds before the first retry of a push the partner did not take (then doubled at each attempt).")
    retry_max_delay: float = Field(3600.0, description="Longest wait (s) between two delivery attempts of a push: the cap of the exponential backoff.")
    worker: bool = Field(True, description="This node may deliver queued pushes: one node of a cluster at a time does, the leader elected through Redis (`run_as_leader`; without Redis this node). Off: never on this node.")
    command_timeout: int = Field(60, description="Timeout (s) given in CommandResponse; the station's answer is awaited this long.")
    log_retention_days: int = Field(14, description="Days of the OCPI request log kept.")

    @property
    def role_set(self) -> set[str]:
        return {r.strip().upper() for r in self.roles.split(",") if r.strip()}

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed delivery: doubling, capped."""
        return min(self.retry_max_delay, max(self.retry_delay, 0.0) * 2 ** min(max(attempts - 1, 0), 40))


@lru_cache(maxsize=1)
def ocpi_settings() -> OcpiSettings:
    """The settings, read once (tests call ``ocpi_settings.cache_clear()`` after changing them)."""
    return OcpiSettings()
