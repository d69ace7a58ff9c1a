"""A station's network connection profiles over REST (OCPP 2.0.1 SetNetworkProfile, B09), and
moving it onto one (A05 security profile upgrade, B10 migration to another CSMS): the profile,
its slot first in NetworkConfigurationPriority, a reset. A 1.6 station answers 409 ``NotSupported``."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, post

from csms.api.auth import caller, require
from csms.api.bounds import Int32
from csms.api.stations import run_command
from csms.core.runtime import get_core


class NetworkProfileBody(msgspec.Struct, forbid_unknown_fields=True):
    slot: Int32  # the configuration slot to store it in
    url: str  # ws://… (security profile 1) or wss://… (2, 3), without the station id
    security_profile: Int32  # 1, 2 or 3; not below the station's
    interface: str = "Wired0"  # Wired0-3, Wireless0-3
    message_timeout: Int32 = 30  # seconds


class NetworkSwitchBody(NetworkProfileBody, forbid_unknown_fields=True):
    reset: bool = True  # Reset OnIdle at the end, so that the station reconnects with the profile


class NetworkProfileController(Controller):
    path = "/stations/{station_id:str}/network-profiles"
    tags = ["stations"]
    opt = {"tenant": {"station_id": "station"}}

    @post("/", guards=[require("operator")])
    async def set_network_profile(self, request: Request, station_id: str, data: NetworkProfileBody) -> dict[str, Any]:
        """SetNetworkProfile into ``slot``; the station's answer."""
        return await run_command(get_core().network_profiles.set_profile(
            station_id, by=caller(request), **msgspec.structs.asdict(data)))

    @post("/switch", guards=[require("operator")])
    async def switch_network_profile(self, request: Request, station_id: str, data: NetworkSwitchBody) -> dict[str, Any]:
        """SetNetworkProfile, then its slot first in NetworkConfigurationPriority, then a reset
        (A05, B10); each step's answer, and the first one refused in ``failed_at``."""
        return await run_command(get_core().network_profiles.switch(
            station_id, by=caller(request), **msgspec.structs.asdict(data)))
