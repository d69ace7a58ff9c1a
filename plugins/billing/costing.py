"""Pricing a charging session: choose its tariff, rebuild its usage from the meter values the
core stored, and run the engine (``plugins.billing.pricing``).

A running session is priced up to now from its ``meter_value`` rows (the batched writer is
flushed first, so every answered MeterValues counts). The session's own start and stop register
readings (1.6 StartTransaction ``meterStart`` / StopTransaction ``meterStop``, 2.0.1 the first and
last register values) always count, as they do for the session's ``energy_wh``: a sample taken at
the same instant gives way to them, so the billed energy, the session's energy and the OCPI CDR
agree to the Wh. A session without meter values is priced from what exists (those
two readings, or time only) and flagged ``meter_values_missing``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from csms.plugin_api import CostLine, MeterValue, SessionCost, call_hook, fmt_quantity, get_core, utcnow
from plugins.billing.assignments import SessionContext, describe, known_context, resolve_assignment, session_context
from plugins.billing.pricing import CostBreakdown, MeterSample, SessionUsage, price_session
from plugins.billing.tables import Tariff, TariffVersion
from plugins.billing.tariff import PriceComponent, TariffDimensionType, TariffElement, to_decimal
from plugins.billing.tariff import Tariff as OcpiTariff
from plugins.billing.tariffs import tariff_of, version_in_force

ENERGY_REGISTER = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
CURRENT = "Current.Import"


@dataclass(frozen=True)
class TariffChoice:
    """The answer of the billing plugin's ``select_tariff``: a tariff version and why it applies."""

    tariff: OcpiTariff
    code: str
    source: str
    tariff_pk: int | None = None
    version_id: int | None = None
    version: int | None = None
    assignment_id: int | None = None
    home_station_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "source": self.source, "tariff_id": self.tariff_pk, "version": self.version,
                "version_id": self.version_id, "assignment_id": self.assignment_id,
                "home_station_id": self.home_station_id, "currency": self.tariff.currency}


@dataclass(frozen=True)
class Quote:
    """A priced session: the tariff chosen, the engine's breakdown and the hook's SessionCost."""

    choice: TariffChoice
    breakdown: CostBreakdown
    cost: SessionCost


def home_rate_tariff(home: dict[str, Any]) -> OcpiTariff:
    """The home-charging reimbursement as a one-component tariff: ``rate_per_kwh`` per kWh, no VAT."""
    return OcpiTariff(id=f"HOME-{home['id']}", currency=home["currency"], elements=(
        TariffElement(price_components=(PriceComponent(TariffDimensionType.ENERGY, home["rate_per_kwh"], None, 1),)),
    ))


async def _version_choice(tariff_pk: int, at: datetime, source: str, **ids: Any) -> TariffChoice | None:
    version = await version_in_force(tariff_pk, at)
    if version is None:
        return None
    code = await Tariff.select(Tariff.code).where(Tariff.id == tariff_pk).first()
    return TariffChoice(tariff=tariff_of(version), code=code["code"], source=source, tariff_pk=tariff_pk,
                        version_id=version["id"], version=version["version"], **ids)


async def choose_tariff(ctx: SessionContext) -> TariffChoice | None:
    """The tariff for a session: a home station's reimbursement first, else the assignments."""
    home = ctx.home
    if home is not None and (ctx.driver is None or ctx.driver["id"] == home["driver_id"]):
        if home["mode"] == "fixed_rate":
            return TariffChoice(tariff=home_rate_tariff(home), code=f"HOME-{home['id']}",
                                source=f"home station {home['id']} of driver {home['driver_id']} "
                                       f"({home['rate_per_kwh']} {home['currency']}/kWh)",
                                home_station_id=home["id"])
        if home["tariff"] is not None:
            return await _version_choice(home["tariff"], ctx.at, f"home station {home['id']} tariff",
                                         home_station_id=home["id"])
    assignment = await resolve_assignment(ctx)
    if assignment is None:
        return None
    return await _version_choice(assignment["tariff"], ctx.at,
                                 f"assignment {assignment['id']}: {describe(assignment)}",
                                 assignment_id=assignment["id"])


async def choice_for_version(version_id: int, source: str) -> TariffChoice:
    version = await TariffVersion.select(TariffVersion.all_columns(),
                                         TariffVersion.tariff.code.as_alias("code")).where(
        TariffVersion.id == version_id).first()
    return TariffChoice(tariff=tariff_of(version), code=version["code"], source=source, tariff_pk=version["tariff"],
                        version_id=version_id, version=version["version"])


def _by_timestamp(rows: list[dict[str, Any]]) -> list[MeterSample]:
    grouped: dict[datetime, dict[str, Any]] = {}
    for r in rows:
        if r["location"] not in ("", "Outlet"):
            continue
        g = grouped.setdefault(r["timestamp"], {"power_phases": {}, "current": {}})
        if r["measurand"] == ENERGY_REGISTER and not r["phase"]:
            g["energy"] = r["value"]
        elif r["measurand"] == POWER:
            if r["phase"]:
                g["power_phases"][r["phase"]] = r["value"]
            else:
                g["power"] = r["value"]
        elif r["measurand"] == CURRENT and r["phase"][:2] in ("L1", "L2", "L3"):
            g["current"][r["phase"][:2]] = r["value"]
    samples = []
    for ts, g in sorted(grouped.items()):
        if "energy" not in g:
            continue
        power = g.get("power", sum(g["power_phases"].values()) if g["power_phases"] else None)
        current = sum(g["current"].values()) if g["current"] else None
        samples.append(MeterSample(ts, to_decimal(g["energy"]), None if power is None else to_decimal(power),
                                   None if current is None else to_decimal(current)))
    return samples


async def session_usage(session: dict[str, Any], timezone: str, *,
                        now: datetime | None = None) -> tuple[SessionUsage, list[str]]:
    """The usage of a session for the engine, and flags about the data it was built from."""
    try:
        await get_core().writer.flush()
    except RuntimeError:  # no running core (a script): the rows are all there is
        pass
    rows = await MeterValue.select(MeterValue.timestamp, MeterValue.measurand, MeterValue.phase,
                                   MeterValue.location, MeterValue.value).where(
        (MeterValue.session == session["id"]) & MeterValue.measurand.is_in([ENERGY_REGISTER, POWER, CURRENT])
    ).order_by(MeterValue.timestamp).order_by(MeterValue.id)
    samples = _by_timestamp(rows)
    flags = [] if samples else ["meter_values_missing"]
    start = session["started_at"]
    if session["state"] == "completed":
        end = session["stopped_at"] or (samples[-1].timestamp if samples else start)
    else:
        end = now or utcnow()
        if samples and samples[-1].timestamp > end:
            end = samples[-1].timestamp
    end = max(end, start)
    samples = [s for s in samples if start <= s.timestamp <= end]
    if session.get("meter_start_wh") is not None:
        samples = _with_reading(samples, 0, start, session["meter_start_wh"])
    if session["state"] == "completed" and session.get("meter_stop_wh") is not None:
        samples = _with_reading(samples, -1, end, session["meter_stop_wh"])
    return SessionUsage(start=start, end=end, samples=samples, timezone=timezone), flags


def _with_reading(samples: list[MeterSample], index: int, at: datetime, wh: Any) -> list[MeterSample]:
    """The session's own start (``index`` 0) or stop (-1) register reading always counts, as it
    does for the session's energy: it replaces the energy of a sample taken at the same instant
    (keeping its power and current) and is added where no sample is."""
    reading = to_decimal(wh)
    if samples and samples[index].timestamp == at:
        samples[index] = replace(samples[index], energy_wh=reading)
    elif index == 0:
        samples.insert(0, MeterSample(at, reading))
    else:
        samples.append(MeterSample(at, reading))
    return samples


def _description(line: Any) -> str:
    kind = line.type.value
    if kind == "FLAT":
        return "Session fee"
    label = {"ENERGY": "Energy", "TIME": "Charging time", "PARKING_TIME": "Parking time"}[kind]
    if line.phase == "reservation":
        label = "Reservation time"
    price = line.unit_price
    shown = f"{price:.2f}" if price == price.quantize(Decimal("0.01")) else f"{price.normalize():f}"
    return f"{label} {fmt_quantity(line.billed_quantity, line.unit)} at {shown}/{line.unit}"


def session_cost(breakdown: CostBreakdown, code: str, *, final: bool, flags: list[str]) -> SessionCost:
    """The engine's breakdown as the core's ``SessionCost``; a min/max price adjustment is a line."""
    lines = [
        CostLine(component=ln.type.value, description=_description(ln), quantity=ln.billed_quantity, unit=ln.unit,
                 unit_price=ln.unit_price, amount_excl_vat=ln.amount_excl_vat, vat_amount=ln.vat_amount,
                 period_start=ln.period_start, period_end=ln.period_end)
        for ln in breakdown.lines
    ]
    if breakdown.min_price_applied or breakdown.max_price_applied:
        adj_excl = breakdown.price_adjustment_excl_vat
        lines.append(CostLine(
            component="MIN_PRICE" if breakdown.min_price_applied else "MAX_PRICE",
            description="Minimum price applied" if breakdown.min_price_applied else "Maximum price applied",
            quantity=Decimal(1), unit="session", unit_price=adj_excl, amount_excl_vat=adj_excl,
            vat_amount=breakdown.price_adjustment_incl_vat - adj_excl))
    return SessionCost(currency=breakdown.currency, total_excl_vat=breakdown.total_cost_excl_vat,
                       total_incl_vat=breakdown.total_cost_incl_vat, lines=tuple(lines), final=final,
                       tariff_id=code, flags=tuple(sorted(set(breakdown.flags) | set(flags))))


async def quote_session(session: dict[str, Any], *, final: bool, ctx: SessionContext | None = None,
                        now: datetime | None = None) -> Quote | None:
    """Price a session now (live when it runs, final when it ended); None when no tariff applies.

    The tariff comes from the ``select_tariff`` hook, so another plugin may choose it; a choice
    this plugin does not understand leaves the pricing to another plugin (None)."""
    ctx = ctx or await session_context(session)
    with known_context(ctx):  # this plugin's select_tariff reuses it
        choice = await call_hook("select_tariff", session=session)
    if isinstance(choice, OcpiTariff):
        choice = TariffChoice(tariff=choice, code=choice.id, source="select_tariff")
    if not isinstance(choice, TariffChoice):
        return None
    usage, flags = await session_usage(session, ctx.timezone, now=now)
    breakdown = price_session(choice.tariff, usage)
    return Quote(choice, breakdown, session_cost(breakdown, choice.code, final=final, flags=flags))


def breakdown_json(breakdown: CostBreakdown) -> str:
    return json.dumps(breakdown.to_dict())
