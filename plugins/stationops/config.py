"""The stationops plugin's settings: ``CSMS_STATIONOPS_*`` variables or the ``[stationops]`` table of the config file."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from csms.plugin_api import CsmsSettings


class StationOpsSettings(CsmsSettings):
    """Options of the stationops plugin (firmware, diagnostics, health, alerts)."""

    model_config = SettingsConfigDict(env_prefix="CSMS_STATIONOPS_", extra="ignore")

    public_url: str = Field("", description="Base URL stations use to reach this CSMS over HTTP(S), e.g. `https://csms.example.com`; firmware download and diagnostics upload URLs start with it. Empty: the URL the operator used for the request that started the campaign or diagnostics request.")
    runner: bool = Field(True, description="This node may drive firmware campaigns and evaluate alert rules: one node at a time does, the leader elected through Redis (`run_as_leader`; without Redis this node). Off: never on this node. Station reports are followed on every node.")
    campaign_interval: float = Field(10.0, description="Seconds between two passes of the campaign driver (events wake it earlier).")
    alert_interval: float = Field(30.0, description="Seconds between two evaluations of the alert rules (events wake it earlier).")
    upload_max_mb: int = Field(200, description="Largest diagnostics upload accepted, in MiB.")
    firmware_max_mb: int = Field(1024, description="Largest firmware file accepted, in MiB.")
    upload_token_hours: float = Field(24.0, description="Hours a diagnostics upload URL stays valid.")
    health_default_hours: float = Field(24.0, description="Period of a health report when `from` is not given.")


@lru_cache(maxsize=1)
def stationops_settings() -> StationOpsSettings:
    """The settings, read once (tests call ``stationops_settings.cache_clear()`` after changing them)."""
    return StationOpsSettings()
