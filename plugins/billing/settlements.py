"""Settling finished sessions: who pays whom, how much, recorded exactly once per session.

The four cases, decided in this order:

``home_reimbursement``
    The session ran on a registered home station (and the driver, when known, is its
    employee): the employer (the home station's organization, else the driver's) owes the
    employee the session's value at the home station's rate or tariff.
``staff_free``
    An employee charged at work: a station whose site belongs to the employee's organization
    (a site without an organization belongs to the operator). Nothing is due; the employer is
    recorded as payer with the value, for its statement.
``leasing``
    The card's or the driver's organization is a leasing partner: the partner owes the operator.
``customer``
    Everyone else pays the operator: the card's or driver's organization when it is a customer
    organization (fleet cards), else the driver, else the card itself (ad-hoc, ``payer_ref``).

A session with no tariff is still recorded (amounts 0, flag ``unpriced``) so its status shows.
The row is unique per session: a second settle of the same session changes nothing. Only an
explicit void followed by a re-run settles a session again (the voided figures are kept in the
row's ``history``); statements already issued keep their lines.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from csms.plugin_api import N_, ChargingSession, Organization, SessionCost, utcnow
from plugins.billing.assignments import SessionContext, session_context, session_row
from plugins.billing.costing import Quote, breakdown_json, quote_session
from plugins.billing.pricing import currency_minor_unit, round_money
from plugins.billing.tables import Settlement
from plugins.billing.tariffs import BillingError

log = logging.getLogger("csms.billing")

KINDS = ("customer", "home_reimbursement", "leasing", "staff_free")


@dataclass(frozen=True)
class Parties:
    kind: str
    payer_kind: str = "none"
    payer_id: int | None = None
    payer_ref: str = ""
    payee_kind: str = "operator"
    payee_id: int | None = None
    flags: tuple[str, ...] = ()
    free: bool = False


def to_minor(amount: Decimal, currency: str) -> int:
    """An amount as integer minor units of its currency (rounded half-up first)."""
    return int(round_money(amount, currency).scaleb(currency_minor_unit(currency)))


def from_minor(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-currency_minor_unit(currency))


def money(minor: int, currency: str) -> str:
    """Minor units as a decimal string with the currency's decimals (``1234`` EUR -> ``"12.34"``)."""
    return f"{from_minor(minor, currency):f}"


async def operator_organization_id() -> int | None:
    row = await Organization.select(Organization.id).where(Organization.kind == "operator").order_by(
        Organization.id).first()
    return row["id"] if row else None


async def parties_for(ctx: SessionContext) -> Parties:
    """Who pays whom for the session in ``ctx`` (see the module docstring)."""
    driver, home = ctx.driver, ctx.home
    if home is not None and (driver is None or driver["id"] == home["driver_id"]):
        employer = home["organization_id"] or (driver or {}).get("organization")
        if employer is None:
            return Parties("home_reimbursement", payee_kind="driver", payee_id=home["driver_id"],
                           flags=("no_employer",))
        return Parties("home_reimbursement", payer_kind="organization", payer_id=employer,
                       payee_kind="driver", payee_id=home["driver_id"])
    if driver is not None and driver["kind"] == "employee" and driver["organization"] is not None:
        workplace = ctx.site_organization_id or await operator_organization_id()
        if driver["organization"] == workplace:
            return Parties("staff_free", payer_kind="organization", payer_id=driver["organization"], free=True)
    leasing = ctx.organization_of("leasing_partner")
    if leasing is not None:
        return Parties("leasing", payer_kind="organization", payer_id=leasing["id"])
    flags = ("leasing_driver_without_partner",) if driver is not None and driver["kind"] == "leasing" else ()
    fleet = ctx.organization_of("customer")
    if fleet is not None:
        return Parties("customer", payer_kind="organization", payer_id=fleet["id"], flags=flags)
    if driver is not None:
        return Parties("customer", payer_kind="driver", payer_id=driver["id"], flags=flags)
    return Parties("customer", payer_kind="token", payer_ref=ctx.id_token, flags=flags + ("anonymous",))


async def settlement_row(session_id: int) -> dict[str, Any] | None:
    return await Settlement.select().where(Settlement.session_id == session_id).first()


def _values(session: dict[str, Any], ctx: SessionContext, parties: Parties, cost: SessionCost | None,
            quote: Quote | None) -> dict[str, Any]:
    flags = list(parties.flags)
    if cost is None:
        currency = ctx.home["currency"] if ctx.home else "EUR"
        excl = incl = 0
        flags.append("unpriced")
    else:
        currency = cost.currency
        excl, incl = to_minor(cost.total_excl_vat, currency), to_minor(cost.total_incl_vat, currency)
        flags.extend(cost.flags)
    own = quote is not None and cost is quote.cost
    return {
        "kind": parties.kind, "station_id": ctx.station_id, "evse_id": session.get("evse_id") or 0,
        "transaction_id": session.get("transaction_id") or "", "id_token": session.get("id_token") or "",
        "driver_id": (ctx.driver or {}).get("id"), "started_at": session["started_at"],
        "stopped_at": session.get("stopped_at"), "energy_wh": session.get("energy_wh") or 0.0,
        "tariff_version": quote.choice.version_id if own else None,
        "tariff_code": (cost.tariff_id or "") if cost is not None else "",
        "currency": currency, "cost_excl_minor": excl, "cost_vat_minor": incl - excl, "cost_incl_minor": incl,
        "due_minor": 0 if parties.free else incl, "payer_kind": parties.payer_kind, "payer_id": parties.payer_id,
        "payer_ref": parties.payer_ref, "payee_kind": parties.payee_kind, "payee_id": parties.payee_id,
        "cost": json.dumps(cost.to_json()) if cost is not None else "null",
        "breakdown": breakdown_json(quote.breakdown) if own else "null",
        "flags": json.dumps(sorted(set(flags))), "updated_at": utcnow(),
    }


async def _price(session: dict[str, Any], ctx: SessionContext, cost: SessionCost | None) -> tuple[SessionCost | None, Quote | None]:
    """The final cost to settle with: this plugin's own quote, unless another plugin priced it."""
    quote = await quote_session(session, final=True, ctx=ctx)
    if quote is not None and (cost is None or cost.tariff_id == quote.cost.tariff_id):
        return quote.cost, quote
    return cost, None


async def settle(session: dict[str, Any], cost: SessionCost | None = None) -> dict[str, Any]:
    """Settle a finished session once; returns its settlement (the existing one if settled)."""
    existing = await settlement_row(session["id"])
    if existing is not None:
        return existing
    if session["state"] != "completed":
        raise BillingError(N_("session %(session)s is still running"), session=session["id"], status=409)
    ctx = await session_context(session)
    cost, quote = await _price(session, ctx, cost)
    values = _values(session, ctx, await parties_for(ctx), cost, quote)
    await Settlement.insert(Settlement(session_id=session["id"], **values)).on_conflict(
        target=Settlement.session_id, action="DO NOTHING")
    return await settlement_row(session["id"])  # type: ignore[return-value]


async def void(session_id: int, reason: str) -> dict[str, Any]:
    """Void a settlement so that the next re-run settles the session again."""
    row = await settlement_row(session_id)
    if row is None:
        raise BillingError(N_("session %(session)s has no settlement"), session=session_id, status=404)
    if row["status"] == "void":
        raise BillingError(N_("the settlement of session %(session)s is already void"), session=session_id, status=409)
    if not reason.strip():
        raise BillingError(N_("a reason is required to void a settlement"))
    await Settlement.update({Settlement.status: "void", Settlement.void_reason: reason.strip()[:200],
                             Settlement.voided_at: utcnow(), Settlement.updated_at: utcnow()}).where(
        (Settlement.session_id == session_id) & (Settlement.status == "settled"))
    return await settlement_row(session_id)  # type: ignore[return-value]


async def _resettle(session: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    ctx = await session_context(session)
    cost, quote = await _price(session, ctx, None)
    values = _values(session, ctx, await parties_for(ctx), cost, quote)
    history = json.loads(row["history"]) + [settlement_json(row)]
    values.update(status="settled", revision=row["revision"] + 1, history=json.dumps(history), void_reason="",
                  voided_at=None)
    await Settlement.update({getattr(Settlement, k): v for k, v in values.items()}).where(
        (Settlement.session_id == session["id"]) & (Settlement.status == "void"))
    return await settlement_row(session["id"])  # type: ignore[return-value]


async def rerun(start: datetime, end: datetime) -> dict[str, Any]:
    """Settle every session that ended in ``[start, end)`` and has no settlement, and re-settle
    the voided ones. Settled sessions are never touched."""
    if end <= start:
        raise BillingError(N_("the period's end must be after its start"))
    sessions = await ChargingSession.select(ChargingSession.id).where(
        (ChargingSession.state == "completed") & (ChargingSession.stopped_at >= start)
        & (ChargingSession.stopped_at < end)).order_by(ChargingSession.id)
    done: dict[str, list[int]] = {"settled": [], "resettled": [], "unchanged": [], "failed": []}
    for s in sessions:
        session = await session_row(s["id"])
        if session is None:
            continue
        row = await settlement_row(s["id"])
        try:
            if row is None:
                await settle(session)
                done["settled"].append(s["id"])
            elif row["status"] == "void":
                await _resettle(session, row)
                done["resettled"].append(s["id"])
            else:
                done["unchanged"].append(s["id"])
        except Exception:
            log.exception("settling session %s failed", s["id"])
            done["failed"].append(s["id"])
    return {"start": start.isoformat(), "end": end.isoformat(), **done}


def stored_cost(row: dict[str, Any]) -> SessionCost | None:
    data = json.loads(row["cost"])
    return SessionCost.from_json(data) if data else None


def settlement_json(row: dict[str, Any]) -> dict[str, Any]:
    """A settlement as the REST API shows it: amounts as decimal strings and as minor units."""
    cur = row["currency"]
    out = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()
           if k not in ("cost", "breakdown", "flags", "history")}
    out.update(
        cost_excl_vat=money(row["cost_excl_minor"], cur), cost_vat=money(row["cost_vat_minor"], cur),
        cost_incl_vat=money(row["cost_incl_minor"], cur), due=money(row["due_minor"], cur),
        flags=json.loads(row["flags"]), revisions_voided=len(json.loads(row["history"])),
    )
    return out
