"""Peak shaving over REST, under ``/api/v1/sites/{site_id}/peak-shaving``: schedules (recurring
caps), the external signal (``PUT .../signal``) and the site's shifting settings. Every change
recomputes the site."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Controller, Request, delete, get, post, put
from litestar.exceptions import NotFoundException, ValidationException

from csms.plugin_api import Site, audited, get_core, jsonable, ocpp_ts, require, utcnow
from plugins.peakshaving.capacity import format_days, parse_days, parse_hhmm
from plugins.peakshaving.plugin import site_capacity_for, site_settings
from plugins.peakshaving.tables import PeakShavingSignal, PeakShavingSite, PeakShavingSchedule


class ScheduleBody(msgspec.Struct, forbid_unknown_fields=True):
    limit_a: list[float | None]
    days: str | list[str | int] = "Mon-Sun"
    start_time: str = "00:00"
    end_time: str = "00:00"
    label: str = ""


class SignalBody(msgspec.Struct, forbid_unknown_fields=True):
    limit_a: list[float | None]
    until: datetime
    source: str = ""


class SettingsBody(msgspec.Struct, forbid_unknown_fields=True):
    price_shifting: bool | None = None
    default_departure_h: float | None = None
    default_energy_wh: float | None = None


def _three(limit_a: list[float | None]) -> dict[str, float | None]:
    if len(limit_a) != 3 or any(v is not None and v < 0 for v in limit_a):
        raise ValidationException("limit_a is three amps >= 0 (null: no limit on that phase)")
    return {"limit_l1_a": limit_a[0], "limit_l2_a": limit_a[1], "limit_l3_a": limit_a[2]}


def _limit_a(row: dict[str, Any]) -> list[float | None]:
    return [row["limit_l1_a"], row["limit_l2_a"], row["limit_l3_a"]]


async def _site(site_id: int) -> dict[str, Any]:
    row = await Site.select().where(Site.id == site_id).first()
    if row is None:
        raise NotFoundException(f"no site with id {site_id}")
    return row


def _recompute(site_id: int) -> None:
    get_core().smart_charging.request(site_id)


class PeakShavingController(Controller):
    path = "/api/v1/sites/{site_id:int}/peak-shaving"
    tags = ["peak shaving"]
    # everything here is one site's: an organization's users reach their own sites (another's: 404)
    opt = {"tenant": {"site_id": "site"}}

    @get("/", guards=[require("viewer")])
    async def overview(self, site_id: int) -> dict[str, Any]:
        """Schedules, signal, settings and the capacity they give from now on (shifting left out)."""
        site = await _site(site_id)
        schedules = await PeakShavingSchedule.select().where(PeakShavingSchedule.site == site_id).order_by(
            PeakShavingSchedule.id)
        signal = await PeakShavingSignal.select().where(PeakShavingSignal.site == site_id).first()
        capacity = await site_capacity_for(site, utcnow(), [])
        return {
            "site_id": site_id, "timezone": site["timezone"], "settings": await site_settings(site_id),
            "schedules": [{"id": w["id"], "days": w["days"], "start_time": w["start_time"], "end_time": w["end_time"],
                         "limit_a": _limit_a(w), "label": w["label"]} for w in schedules],
            "signal": None if signal is None else {"limit_a": _limit_a(signal), "until": ocpp_ts(signal["until"]),
                                                   "source": signal["source"], "active": signal["until"] > utcnow(),
                                                   "updated_at": ocpp_ts(signal["updated_at"])},
            "capacity": [] if capacity is None else [
                {"start": ocpp_ts(p.start), "limit_a": [None if v == float("inf") else v for v in p.limit_a]}
                for p in capacity.periods],
        }

    @post("/schedules", guards=[require("operator")])
    async def add_schedule(self, request: Request, site_id: int, data: ScheduleBody) -> dict[str, Any]:
        """A recurring cap, e.g. ``{"days": "Mon-Fri", "start_time": "17:00", "end_time": "20:00",
        "limit_a": [16, 16, 16]}``."""
        await _site(site_id)
        try:
            days = format_days(parse_days(data.days))
            parse_hhmm(data.start_time)
            parse_hhmm(data.end_time)
        except ValueError as exc:
            raise ValidationException(str(exc)) from None
        row = PeakShavingSchedule(site=site_id, days=days, start_time=data.start_time, end_time=data.end_time,
                                label=data.label[:100], **_three(data.limit_a))
        await row.save()
        _recompute(site_id)
        saved = await PeakShavingSchedule.select().where(PeakShavingSchedule.id == row.id).first()
        await audited(request, "create", "peakshaving_schedule", row.id, after=saved)
        return jsonable(saved)

    @delete("/schedules/{schedule_id:int}", guards=[require("operator")])
    async def remove_schedule(self, request: Request, site_id: int, schedule_id: int) -> None:
        before = await PeakShavingSchedule.select().where(
            (PeakShavingSchedule.id == schedule_id) & (PeakShavingSchedule.site == site_id)).first()
        if before is None:
            raise NotFoundException(f"no schedule {schedule_id} at site {site_id}")
        await PeakShavingSchedule.delete().where(PeakShavingSchedule.id == schedule_id)
        await audited(request, "delete", "peakshaving_schedule", schedule_id, before=before)
        _recompute(site_id)

    @put("/signal", guards=[require("operator")])
    async def set_signal(self, request: Request, site_id: int, data: SignalBody) -> dict[str, Any]:
        """An external limit until ``until``, e.g. from a grid operator or a building meter; it
        replaces the previous one."""
        await _site(site_id)
        if data.until.tzinfo is None:
            raise ValidationException("until needs a time zone (for example 2030-01-01T18:00:00Z)")
        values = {**_three(data.limit_a), "until": data.until, "source": data.source[:200], "updated_at": utcnow()}
        if await PeakShavingSignal.exists().where(PeakShavingSignal.site == site_id):
            await PeakShavingSignal.update({getattr(PeakShavingSignal, k): v for k, v in values.items()}).where(
                PeakShavingSignal.site == site_id)
        else:
            await PeakShavingSignal(site=site_id, **values).save()
        await audited(request, "update", "site", site_id, summary=f"peak-shaving signal {data.limit_a} A "
                                                                  f"until {ocpp_ts(data.until)}")
        _recompute(site_id)
        return {"site_id": site_id, "limit_a": data.limit_a, "until": ocpp_ts(data.until), "source": data.source,
                "active": data.until > utcnow()}

    @delete("/signal", guards=[require("operator")])
    async def clear_signal(self, request: Request, site_id: int) -> None:
        await _site(site_id)
        await PeakShavingSignal.delete().where(PeakShavingSignal.site == site_id)
        await audited(request, "update", "site", site_id, summary="peak-shaving signal cleared")
        _recompute(site_id)

    @put("/settings", guards=[require("operator")])
    async def set_settings(self, request: Request, site_id: int, data: SettingsBody) -> dict[str, Any]:
        """Shifting on/off and the defaults for sessions without a departure or an energy target."""
        await _site(site_id)
        values = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
        if any(v < 0 for k, v in values.items() if k != "price_shifting"):
            raise ValidationException("hours and energy are >= 0")
        if await PeakShavingSite.exists().where(PeakShavingSite.site == site_id):
            if values:
                await PeakShavingSite.update({getattr(PeakShavingSite, k): v for k, v in values.items()}).where(
                    PeakShavingSite.site == site_id)
        else:
            await PeakShavingSite(site=site_id, **values).save()
        await audited(request, "update", "site", site_id, summary=f"peak-shaving settings {values}")
        _recompute(site_id)
        return await site_settings(site_id)
