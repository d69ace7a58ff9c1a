"""Charging profiles at a station over REST: what the CSMS knows the station holds, setting an
operator's profile (SetChargingProfile, both versions), asking the station for them (OCPP 2.0.1
GetChargingProfiles; a 1.6 station answers 409 ``NotSupported``) and clearing them by id or by
EVSE, purpose and stack level (ClearChargingProfile, both versions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Controller, Request, delete, get, post

from csms.api.auth import caller, require
from csms.api.bounds import Int32
from csms.api.crud import jsonable
from csms.api.stations import SchedulePeriod, run_command
from csms.core.runtime import get_core


class ProfileSetBody(msgspec.Struct, forbid_unknown_fields=True):
    evse_id: Int32  # 0: the station as a whole (1.6: the connector)
    purpose: str  # station_max, tx_default, tx
    periods: list[SchedulePeriod]  # the first at 0 s, then increasing
    unit: str = "A"  # A or W
    stack_level: Int32 = 0
    profile_id: Int32 | None = None  # none: the next free one below 100000
    kind: str = "Absolute"  # Absolute, Recurring, Relative
    recurrency: str | None = None  # Daily, Weekly (Recurring only)
    start_at: datetime | None = None  # Absolute / Recurring: when period 0 starts (none: now)
    duration: Int32 | None = None  # seconds
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: str | None = None  # tx: the transaction running at the EVSE


class ProfileReportBody(msgspec.Struct, forbid_unknown_fields=True):
    evse_id: Int32 | None = None  # 0: the station's own profiles; none: every EVSE
    purpose: str | None = None  # station_max, tx_default, tx
    stack_level: Int32 | None = None
    profile_ids: list[Int32] | None = None
    limit_sources: list[str] | None = None  # EMS, Other, SO, CSO


class ProfileClearBody(msgspec.Struct, forbid_unknown_fields=True):
    profile_id: Int32 | None = None  # or the criteria below (all none: every profile)
    evse_id: Int32 | None = None  # 1.6: the connector
    purpose: str | None = None  # station_max, tx_default, tx
    stack_level: Int32 | None = None


class ChargingProfileController(Controller):
    path = "/stations/{station_id:str}/charging-profiles"
    tags = ["stations"]
    opt = {"tenant": {"station_id": "station"}}

    @get("/", guards=[require("viewer")])
    async def charging_profiles(self, station_id: str) -> dict[str, Any]:
        """The profiles the station accepted from the CSMS or reported (ReportChargingProfiles),
        not cleared; ``reports_supported`` False for a 1.6 station."""
        listing = await run_command(get_core().charging_profiles.listing(station_id))
        return {**listing, "items": [jsonable(r) for r in listing["items"]]}

    @post("/", guards=[require("operator")])
    async def set_charging_profile(self, request: Request, station_id: str, data: ProfileSetBody) -> dict[str, Any]:
        """SetChargingProfile of an operator's profile (K01): checked first as the spec and the
        station's reported limits require (400, nothing sent), stored with the station's answer;
        the answer and the ``profile_id``. A profile at the smart-charging loop's stack level and
        purpose replaces the loop's until its next change."""
        body = msgspec.structs.asdict(data)
        body["periods"] = [msgspec.structs.asdict(p) for p in data.periods]
        return await run_command(get_core().charging_profiles.set_profile(station_id, by=caller(request), **body))

    @post("/report", guards=[require("operator")])
    async def report_charging_profiles(self, request: Request, station_id: str,
                                       data: ProfileReportBody | None = None) -> dict[str, Any]:
        """GetChargingProfiles: the station reports the matching profiles in ReportChargingProfiles
        right after its answer; the reported profiles stored before are replaced by them."""
        return await run_command(get_core().charging_profiles.request_report(
            station_id, by=caller(request), **msgspec.structs.asdict(data or ProfileReportBody())))

    @post("/clear", guards=[require("operator")])
    async def clear_charging_profiles(self, request: Request, station_id: str,
                                      data: ProfileClearBody) -> dict[str, Any]:
        """ClearChargingProfile by id or criteria; the station's answer. Stored profiles are marked
        cleared only when the station answers Accepted."""
        return await run_command(get_core().charging_profiles.clear(
            station_id, by=caller(request), **msgspec.structs.asdict(data)))

    @delete("/{profile_id:int}", guards=[require("operator")], status_code=200)
    async def clear_charging_profile(self, request: Request, station_id: str, profile_id: int) -> dict[str, Any]:
        """ClearChargingProfile of one profile id; the station's answer."""
        return await run_command(get_core().charging_profiles.clear(station_id, profile_id=profile_id,
                                                                    by=caller(request)))
