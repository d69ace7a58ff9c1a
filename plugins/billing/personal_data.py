"""A driver's personal data in billing (GDPR): the ``driver_data_export`` and ``driver_erased``
hooks.

What billing holds about a driver: the statements issued to them as a party (number, period,
totals, lines) and the home stations registered for them (the employer's reimbursement of their
home charging: rate or tariff, validity). The one personal field it copies is a driver
statement's ``party_name`` (and that name in the audit entries of the statement's issue and
void); the buyer's e-mail and address on a statement's PDF are read from the core's driver row
when it is printed, so the core's erasure already removes them there.

Erasure anonymises ``party_name`` to ``"Erased driver"`` and redacts it in the statements' audit
entries. Amounts, numbers, lines (sessions, stations, cards, energy), settlements and home
stations stay: they are accounting records and name the driver by id only, which now points to
the anonymised row. Doing it again changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from csms.plugin_api import redact_audit
from plugins.billing.settlements import money
from plugins.billing.statements import statement_number
from plugins.billing.tables import HomeStation, Statement, StatementLine

ERASED_PARTY = "Erased driver"  # the name the core gives an erased driver


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _driver_statements() -> Any:
    return Statement.party_kind == "driver"


async def driver_export(driver_id: int) -> dict[str, Any] | None:
    """The driver's statements (with their lines) and home stations; None when there are none."""
    statements = await Statement.select().where(_driver_statements() & (Statement.party_id == driver_id)).order_by(
        Statement.id)
    homes = await HomeStation.select(*HomeStation.all_columns(), HomeStation.tariff.code.as_alias("tariff_code")).where(
        HomeStation.driver_id == driver_id).order_by(HomeStation.id)
    if not statements and not homes:
        return None
    lines: dict[int, list[dict[str, Any]]] = {}
    if statements:
        for ln in await StatementLine.select().where(
                StatementLine.statement.is_in([s["id"] for s in statements])).order_by(StatementLine.position):
            lines.setdefault(ln["statement"], []).append(ln)
    return {
        "statements": [{
            "number": statement_number(s), "kind": s["kind"], "status": s["status"], "party_name": s["party_name"],
            "period_start": _iso(s["period_start"]), "period_end": _iso(s["period_end"]), "currency": s["currency"],
            "total_excl_vat": money(s["total_excl_minor"], s["currency"]),
            "total_vat": money(s["total_vat_minor"], s["currency"]),
            "total_incl_vat": money(s["total_incl_minor"], s["currency"]),
            "line_count": s["line_count"], "payment_status": s["payment_status"],
            "issued_at": _iso(s["issued_at"] or s["created_at"]) if s["status"] != "draft" else None,
            "voided_at": _iso(s["voided_at"]),
            "lines": [{
                "position": ln["position"], "session_id": ln["session_id"], "kind": ln["kind"],
                "direction": ln["direction"], "started_at": _iso(ln["started_at"]),
                "stopped_at": _iso(ln["stopped_at"]), "station_id": ln["station_id"], "id_token": ln["id_token"],
                "description": ln["description"], "energy_wh": ln["energy_wh"],
                "amount_excl_vat": money(ln["excl_minor"], s["currency"]),
                "vat": money(ln["vat_minor"], s["currency"]),
                "amount_incl_vat": money(ln["incl_minor"], s["currency"]),
            } for ln in lines.get(s["id"], [])],
        } for s in statements],
        "home_stations": [{
            "station_id": h["station_id"], "employer_organization": h["organization_id"], "mode": h["mode"],
            "rate_per_kwh": h["rate_per_kwh"], "currency": h["currency"], "tariff": h["tariff_code"],
            "valid_from": _iso(h["valid_from"]), "valid_to": _iso(h["valid_to"]), "created_at": _iso(h["created_at"]),
        } for h in homes],
    }


async def driver_erase(driver_id: int) -> int:
    """Anonymise the party of the driver's statements (and that name in their audit entries);
    returns how many statements changed (0 the second time)."""
    ids = [r["id"] for r in await Statement.select(Statement.id).where(
        _driver_statements() & (Statement.party_id == driver_id))]
    if not ids:
        return 0
    changed = await Statement.update({Statement.party_name: ERASED_PARTY}).where(
        Statement.id.is_in(ids) & (Statement.party_name != ERASED_PARTY)).returning(Statement.id)
    await redact_audit("statement", ids, ["party_name"])
    return len(changed)

