"""The load-balancing plugin's settings: ``CSMS_LOADBALANCING_*`` variables or the ``[loadbalancing]``
table of the config file."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from csms.plugin_api import CsmsSettings


class LoadBalancingSettings(CsmsSettings):
    """Tuning of the allocator (see the allocator's module docstring for each rule)."""

    model_config = SettingsConfigDict(env_prefix="CSMS_LOADBALANCING_", extra="ignore")

    buffer_a: float = Field(2.0, description="Headroom above the measured draw of a car that takes less than offered.")
    ramp_threshold: float = Field(0.9, description="Share of its limit a car must draw to be given its fair share again.")
    min_on_s: float = Field(300.0, description="Seconds a car that was switched on keeps charging before it may be paused.")
    min_off_s: float = Field(300.0, description="Seconds a paused car waits before it may be switched on again.")
    hysteresis_a: float = Field(1.0, description="Changes smaller than this keep the previous limit.")
    deadline_aware: bool = Field(True, description="Serve cars that leave sooner first (when their departure and energy are known); a car that can wait may be paused.")
    behind_schedule_s: float = Field(900.0, description="A timed car that would finish more than this many seconds after its departure even at its maximum charges first (negative: never).")
    untimed_start_s: float = Field(7200.0, description="A car without a known departure and energy ranks as one leaving this many seconds from now.")
    crunch_pressure: float = Field(2.0, description="A crunch: the timed cars need more than this many times a node's limit before they leave; then departures are set aside and the power evens out the shares of their demand the cars have received (0 turns this off).")
    max_wait_s: float = Field(1800.0, description="A paused car that has waited this long and does not fit keeps the cars after it in the queue off its phases until it fits.")
    crunch_size_exponent: float = Field(0.5, description="In a crunch, how much a car's requested energy weighs: 0 serves the smallest share of demand missing first (small demands first), 1 makes every car miss the same share; see the allocator's rule 3.")
