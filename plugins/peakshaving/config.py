"""Defaults of the peak-shaving plugin (``CSMS_PEAKSHAVING_*`` or ``[peakshaving]``); a site's own settings win."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from csms.plugin_api import CsmsSettings


class PeakShavingSettings(CsmsSettings):
    """Defaults for every site (a site's own shifting settings win)."""

    model_config = SettingsConfigDict(env_prefix="CSMS_PEAKSHAVING_", extra="ignore")

    default_departure_h: float = Field(8.0, description="Hours after its start a session is assumed to end when nobody said.")
    default_energy_wh: float | None = Field(None, description="Energy a session is assumed to want when nobody said; unset: such sessions are not shifted.")
    slot_minutes: int = Field(15, description="Length of the planning slots (prices usually change on the quarter hour).")
    horizon_h: float = Field(36.0, description="How far ahead capacity is planned.")
