"""Charging sessions: filtered list, CSV export, and a session's meter values and cost."""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from litestar import Request, get
from litestar.exceptions import NotFoundException
from litestar.response import Stream, Template

from csms.admin.csvdownload import csv_download
from csms.admin.auth import current_user
from csms.admin.templating import as_datetime, is_htmx, paginate, render, viewing_zone_name, zone_named
from csms.api.tenancy import SCOPED, restrict, tenant_scope
from csms.core.runtime import get_core
from csms.core.services.sessions import CURRENT, ENERGY_REGISTER, POWER
from csms.core.tables import ChargingSession, Driver, MeterValue
from csms.i18n import N_, gettext
from csms.csvexport import csv_text
from csms.plugins import call_hook
from csms.textsearch import contains

STATES = [("", N_("Any state")), ("active", N_("Active")), ("completed", N_("Completed"))]  # translated where shown

# what a session's flags say, for the session page (a flag not listed is shown as it is)
FLAG_LABELS = {
    "force_closed": N_("Closed by an operator"),
    "closed_after_reboot": N_("Closed by the CSMS: the station rebooted without ending it"),
    "closed_after_reconnect": N_("Closed by the CSMS: the station no longer knew it after reconnecting"),
    "superseded_by_new_transaction": N_("Closed by the CSMS: a new transaction started on its connector"),
    "ended_late_by_station": N_("The station ended it after the CSMS had closed it"),
    "stop_without_start": N_("The station reported its end without its start"),
    "replayed_offline": N_("Sent by the station later (it was offline)"),
    "departure_from_ev": N_("Departure time from the EV"),
    "energy_target_from_ev": N_("Energy needed from the EV"),
}


def flag_labels(flags: Any) -> list[str]:
    """The session's flags in words, in the viewer's language."""
    if isinstance(flags, str):
        flags = json.loads(flags or "[]")
    labels = []
    for flag in flags or []:
        if flag in FLAG_LABELS:
            labels.append(gettext(FLAG_LABELS[flag]))
        elif flag.startswith("start_not_authorized:"):
            labels.append(gettext("Started without authorization (%(status)s)", status=flag.split(":", 1)[1]))
        elif flag.startswith("first_seen_as_"):
            labels.append(gettext("First seen in a “%(event)s” message", event=flag.removeprefix("first_seen_as_")))
        else:
            labels.append(flag)
    return labels


def _columns() -> list[Any]:
    return [ChargingSession.all_columns(), ChargingSession.station.station_id.as_alias("station_id"),
            ChargingSession.station._.site._.timezone.as_alias("site_timezone"),
            ChargingSession.driver.name.as_alias("driver_name")]


def _day(value: str, tz: tzinfo = timezone.utc) -> datetime | None:
    """Midnight starting ``value`` (YYYY-MM-DD) in ``tz``."""
    try:
        return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=tz)
    except ValueError:
        return None


async def viewer_zone(request: Request) -> ZoneInfo:
    """The zone the requesting user sees times in (their days are the date filters' days)."""
    return zone_named(viewing_zone_name(request, await current_user(request))) or ZoneInfo("UTC")


def session_filters(params: Any, tz: tzinfo = timezone.utc) -> tuple[list[Any], dict[str, str], list[str]]:
    """Conditions from the query string, the values to show back, and complaints about bad ones;
    the dates are days in ``tz`` (the viewer's zone)."""
    shown = {k: params.get(k, "").strip() for k in ("station", "token", "driver", "from", "to", "state")}
    conds: list[Any] = []
    problems: list[str] = []
    if shown["station"]:
        conds.append(contains(ChargingSession.station.station_id, shown['station']))
    if shown["token"]:
        conds.append(contains(ChargingSession.id_token, shown['token']))
    if shown["driver"].isdigit():
        conds.append(ChargingSession.driver == int(shown["driver"]))
    if shown["state"] in ("active", "completed"):
        conds.append(ChargingSession.state == shown["state"])
    for key, op in (("from", "ge"), ("to", "lt")):
        if shown[key]:
            day = _day(shown[key], tz)
            if day is None:
                problems.append(gettext("“%(value)s” is not a date (YYYY-MM-DD); the %(filter)s filter is ignored.",
                                        value=shown[key], filter=gettext("From") if key == "from" else gettext("To")))
            elif op == "ge":
                conds.append(ChargingSession.started_at >= day.astimezone(timezone.utc))
            else:  # the "to" day is included (a local day: 23 or 25 hours at a DST change)
                end = datetime.combine(day.date() + timedelta(days=1), datetime.min.time(), tzinfo=tz)
                conds.append(ChargingSession.started_at < end.astimezone(timezone.utc))
    return conds, shown, problems


@get("/admin/sessions", include_in_schema=False, opt={"tenant": SCOPED})
async def session_list(request: Request) -> Template:
    conds, shown, problems = session_filters(request.query_params, await viewer_zone(request))
    scope = await tenant_scope(request)
    query = restrict(ChargingSession.select(*_columns()), ChargingSession.station.organization, scope)
    count = restrict(ChargingSession.count(), ChargingSession.station.organization, scope)
    for c in conds:
        query, count = query.where(c), count.where(c)
    page = await paginate(request, query.order_by(ChargingSession.started_at, ascending=False), count)
    costs = await session_costs(page.items)
    for row, cost in zip(page.items, costs):
        row["cost"] = cost
    context: dict[str, Any] = dict(page=page, filters=shown, problems=problems, states=STATES, query_string=request.url.query)
    if is_htmx(request):
        return await render(request, "sessions/_table.html", **context)
    drivers = await restrict(Driver.select(Driver.id, Driver.name), Driver.organization, scope).order_by(
        Driver.name).limit(1000)
    return await render(request, "sessions/list.html", title=gettext("Sessions"), drivers=drivers, **context)


async def session_costs(rows: list[dict[str, Any]], *, concurrency: int = 8) -> list[Any]:
    """The ``price_session`` answer for each row (a settled session's stored cost, else its live or
    final price), a few at a time; None where no pricing plugin answers."""
    gate = asyncio.Semaphore(concurrency)

    async def one(row: dict[str, Any]) -> Any:
        async with gate:
            return await call_hook("price_session", session=row, final=row["state"] == "completed")

    return list(await asyncio.gather(*(one(r) for r in rows)))


CSV_COLUMNS = ["id", "station_id", "evse_id", "connector_id", "transaction_id", "id_token", "driver_name", "state",
               "started_at", "stopped_at", "duration_min", "energy_kwh", "meter_start_wh", "meter_stop_wh",
               "stop_reason", "tariff", "cost_excl_vat", "cost_incl_vat", "currency", "cost_final"]


def _csv_rows(batch: list[dict[str, Any]]) -> str:
    """A batch of sessions (with their ``cost``) as CSV lines (numbers as numbers, text made
    formula-safe); the cost columns are empty where no pricing plugin priced the session."""
    lines = []
    for r in batch:
        start, stop = as_datetime(r["started_at"]), as_datetime(r["stopped_at"])
        cost = r.get("cost")
        lines.append([
            r["id"], r["station_id"], r["evse_id"], r["connector_id"], r["transaction_id"], r["id_token"],
            r["driver_name"], r["state"], start.isoformat() if start else "", stop.isoformat() if stop else "",
            Decimal(f"{(stop - start).total_seconds() / 60:.1f}") if start and stop else None,
            Decimal(f"{(r['energy_wh'] or 0) / 1000:.3f}"), r["meter_start_wh"], r["meter_stop_wh"],
            r["stop_reason"],
            *((cost.tariff_id or "", cost.total_excl_vat, cost.total_incl_vat, cost.currency,
               "yes" if cost.final else "no") if cost is not None else ("", None, None, "", "")),
        ])
    return csv_text(lines)


@get("/admin/sessions.csv", include_in_schema=False, opt={"tenant": SCOPED})
async def session_csv(request: Request) -> Stream:
    """The filtered sessions as CSV (times ISO 8601 in UTC with their ``+00:00`` offset, whatever
    the viewer's zone; energy in kWh), streamed in chunks formatted off the event loop. The date
    filters are the viewer's days, as on the page."""
    conds, _, _ = session_filters(request.query_params, await viewer_zone(request))
    scope = await tenant_scope(request)

    def query() -> Any:
        q = restrict(ChargingSession.select(*_columns()), ChargingSession.station.organization, scope)
        for c in conds:
            q = q.where(c)
        return q.order_by(ChargingSession.started_at, ascending=False).order_by(ChargingSession.id, ascending=False)

    async def with_costs(batch: list[dict[str, Any]]) -> None:
        for row, cost in zip(batch, await session_costs(batch)):
            row["cost"] = cost

    return csv_download("sessions", CSV_COLUMNS, query, _csv_rows, complete=with_costs)


def _phase(phase: str) -> str:
    return phase.split("-")[0] if phase else ""


async def meter_series(session_id: int) -> dict[str, Any]:
    """uPlot-ready series: power (kW), energy (kWh) and current per phase (A) over time."""
    await get_core().writer.flush()
    rows = await MeterValue.select(MeterValue.timestamp, MeterValue.measurand, MeterValue.phase,
                                   MeterValue.value).where(
        (MeterValue.session == session_id)
        & MeterValue.measurand.is_in([POWER, ENERGY_REGISTER, CURRENT])).order_by(
        MeterValue.timestamp).order_by(MeterValue.id).limit(20000)
    power: dict[float, float] = {}
    energy: dict[float, float] = {}
    current: dict[str, dict[float, float]] = {"L1": {}, "L2": {}, "L3": {}}
    for r in rows:
        when = as_datetime(r["timestamp"])
        if when is None:
            continue
        t = when.timestamp()
        phase = _phase(r["phase"])
        if r["measurand"] == POWER and not phase:
            power[t] = r["value"] / 1000
        elif r["measurand"] == ENERGY_REGISTER and not phase:
            energy[t] = r["value"] / 1000
        elif r["measurand"] == CURRENT and phase in current:
            current[phase][t] = r["value"]
    times = sorted(set(current["L1"]) | set(current["L2"]) | set(current["L3"]))
    phases = [p for p in ("L1", "L2", "L3") if current[p]]
    return {
        "power": [sorted(power), [power[t] for t in sorted(power)]],
        "energy": [sorted(energy), [energy[t] for t in sorted(energy)]],
        "current": [times, *[[current[p].get(t) for t in times] for p in phases]],
        "phases": phases,
    }


@get("/admin/sessions/{session_id:int}", include_in_schema=False, opt={"tenant": {"session_id": "session"}})
async def session_detail(request: Request, session_id: int) -> Template:
    row = await ChargingSession.select(*_columns()).where(ChargingSession.id == session_id).first()
    if row is None:
        raise NotFoundException(gettext("There is no session %(session)s.", session=session_id))
    live = get_core().sessions.find(row["station_id"], row["transaction_id"])
    if live is not None:
        row.update(energy_wh=live.energy_wh, power_w=live.power_w, meter_last_wh=live.meter_last_wh)
    start, stop = as_datetime(row["started_at"]), as_datetime(row["stopped_at"])
    duration = ((stop or datetime.now(timezone.utc)) - start) if start else None
    cost = await call_hook("price_session", session=row, final=row["state"] == "completed")
    context: dict[str, Any] = dict(session=row, series=await meter_series(session_id), cost=cost,
                                   flags=flag_labels(row["flags"]),
                                   duration_min=int(duration.total_seconds() // 60) if duration else None)
    template = "sessions/_detail_body.html" if is_htmx(request) else "sessions/detail.html"
    return await render(request, template, title=gettext("Session %(session)s", session=session_id), panel_page="session", **context)
