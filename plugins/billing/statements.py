"""Statements: per driver, organization or leasing partner and period, as JSON, CSV and PDF.

A statement is a snapshot: it copies the lines of the settlements of its party whose session
ended in ``[period_start, period_end)`` and never changes afterwards (void it and create a new
one to correct it). Two statements of one party may not cover the same moment unless one is
void, so no session is billed twice. Lines are signed from the party's point of view: what the
party owes (a customer's sessions, the reimbursements an employer owes) is positive, what it is
owed (an employee's home-charging reimbursements) negative. Staff charging at work appears on
the employer's statement at 0 with its value in the description.

A statement belongs to its party's organization (the organization party itself, a driver's
organization when it is issued): that organization's tree reads it, global callers read all.
"""

from __future__ import annotations

import asyncio
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from csms.plugin_api import Driver, Organization, call_hook, csv_text, hook_impls, utcnow
from plugins.billing.config import billing_settings
from plugins.billing.owners import party_owner
from plugins.billing.settlements import from_minor, money
from plugins.billing.tables import Settlement, Statement, StatementLine
from plugins.billing.tariffs import BillingError

PARTY_KINDS = ("driver", "organization", "leasing_partner")
KIND_LABELS = {"customer": "Charging", "home_reimbursement": "Home charging reimbursement",
               "leasing": "Leasing charging", "staff_free": "Staff charging (free)"}


@dataclass(frozen=True)
class PaymentRequest:
    """What a payment provider answers to ``billing_request_payment``."""

    status: str  # pending|paid|failed
    provider: str
    reference: str = ""


def month_period(month: str, timezone: str) -> tuple[datetime, datetime]:
    """``"2026-11"`` as ``[start, end)`` in UTC, the month read in ``timezone``."""
    try:
        year, mon = (int(x) for x in month.split("-"))
        first = date(year, mon, 1)
    except ValueError:
        raise BillingError(f"month {month!r} is not YYYY-MM", field="month") from None
    nxt = date(year + (mon == 12), mon % 12 + 1, 1)
    tz = ZoneInfo(timezone)
    return (datetime.combine(first, time(), tz).astimezone(ZoneInfo("UTC")),
            datetime.combine(nxt, time(), tz).astimezone(ZoneInfo("UTC")))


async def party_name(kind: str, party_id: int) -> str:
    if kind not in PARTY_KINDS:
        raise BillingError(f"party_kind must be one of {', '.join(PARTY_KINDS)}")
    if kind == "driver":
        row = await Driver.select(Driver.name).where(Driver.id == party_id).first()
        if row is None:
            raise BillingError(f"no driver {party_id}")
        return row["name"]
    row = await Organization.select(Organization.name, Organization.kind).where(Organization.id == party_id).first()
    if row is None:
        raise BillingError(f"no organization {party_id}")
    if kind == "leasing_partner" and row["kind"] != "leasing_partner":
        raise BillingError(f"organization {party_id} is a {row['kind']}, not a leasing_partner")
    return row["name"]


def _party_filter(kind: str, party_id: int) -> Any:
    if kind == "driver":
        return (((Settlement.payer_kind == "driver") & (Settlement.payer_id == party_id))
                | ((Settlement.payee_kind == "driver") & (Settlement.payee_id == party_id)))
    return (Settlement.payer_kind == "organization") & (Settlement.payer_id == party_id)


def _line(position: int, s: dict[str, Any], kind: str, party_id: int) -> dict[str, Any]:
    credit = kind == "driver" and s["payee_kind"] == "driver" and s["payee_id"] == party_id
    sign = -1 if credit else 1
    cur = s["currency"]
    description = f"{KIND_LABELS.get(s['kind'], s['kind'])} at {s['station_id']}"
    if s["tariff_code"]:
        description += f" ({s['tariff_code']})"
    if s["due_minor"] == 0:
        excl = vat = incl = 0
        if s["cost_incl_minor"]:
            description += f", value {money(s['cost_incl_minor'], cur)} {cur}"
    else:
        excl, vat, incl = (sign * s["cost_excl_minor"], sign * s["cost_vat_minor"], sign * s["due_minor"])
    return {"position": position, "session_id": s["session_id"], "kind": s["kind"],
            "direction": "credit" if credit else "charge", "started_at": s["started_at"],
            "stopped_at": s["stopped_at"], "station_id": s["station_id"], "id_token": s["id_token"],
            "description": description[:300], "energy_wh": s["energy_wh"], "excl_minor": excl, "vat_minor": vat,
            "incl_minor": incl}


async def create_statement(party_kind: str, party_id: int, start: datetime, end: datetime, *,
                           currency: str | None = None, created_by: str = "") -> dict[str, Any]:
    """Issue a statement for a party and period; refused when a live statement overlaps it."""
    name = await party_name(party_kind, party_id)
    if end <= start:
        raise BillingError("period_end must be after period_start", field="period_end")
    open_period_refused(end)
    for other in await Statement.select().where(
            (Statement.party_kind == party_kind) & (Statement.party_id == party_id) & (Statement.status == "issued")):
        if other["period_start"] < end and start < other["period_end"] and (
                currency is None or other["currency"] == currency):
            raise BillingError(
                f"statement {other['id']} already covers {other['period_start'].isoformat()} to "
                f"{other['period_end'].isoformat()} for this {party_kind}; void it first to issue a new one",
                status=409)
    query = Settlement.select().where(
        (Settlement.status == "settled") & (Settlement.stopped_at >= start) & (Settlement.stopped_at < end)
        & _party_filter(party_kind, party_id)).order_by(Settlement.stopped_at).order_by(Settlement.session_id)
    settlements = await query
    currencies = sorted({s["currency"] for s in settlements})
    if currency is None:
        if len(currencies) > 1:
            raise BillingError(f"this party has sessions in {', '.join(currencies)}: give the currency")
        currency = currencies[0] if currencies else "EUR"
    settlements = [s for s in settlements if s["currency"] == currency]
    lines = [_line(i + 1, s, party_kind, party_id) for i, s in enumerate(settlements)]
    row = Statement(
        party_kind=party_kind, party_id=party_id, party_name=name[:200], period_start=start, period_end=end,
        currency=currency, line_count=len(lines), total_excl_minor=sum(ln["excl_minor"] for ln in lines),
        total_vat_minor=sum(ln["vat_minor"] for ln in lines), total_incl_minor=sum(ln["incl_minor"] for ln in lines),
        charges_incl_minor=sum(ln["incl_minor"] for ln in lines if ln["incl_minor"] > 0),
        credits_incl_minor=-sum(ln["incl_minor"] for ln in lines if ln["incl_minor"] < 0), created_by=created_by,
        organization=await party_owner(party_kind, party_id),
    )
    async with Statement._meta.db.transaction():
        await row.save()
        if lines:
            await StatementLine.insert(*(StatementLine(statement=row.id, **ln) for ln in lines))
    statement = await statement_row(row.id)
    if hook_impls("billing_request_payment"):
        _spawn(request_payment(statement["id"]))
    return statement


def open_period_refused(end: datetime) -> None:
    """Statements are issued for periods that have ended: a statement is final, so one issued
    for the running month would lock it and leave out every session that ends later in it."""
    if end > utcnow():
        tz = ZoneInfo(billing_settings().statement_timezone)
        raise BillingError(
            f"the period has not ended yet (it ends {end.astimezone(tz):%Y-%m-%d %H:%M} {tz.key}): a statement is "
            "final, and sessions that end later in the period would be left out of it; issue it once the period "
            "is over", status=409, field="period_end")


def last_closed_month(now: datetime | None = None) -> str:
    """``"2026-11"``: the most recent month that has ended, in the statement time zone."""
    tz = ZoneInfo(billing_settings().statement_timezone)
    first = (now or utcnow()).astimezone(tz).date().replace(day=1)
    return f"{(first - timedelta(days=1)):%Y-%m}"


_tasks: set[asyncio.Task[Any]] = set()


def _spawn(coro: Any) -> None:
    task = asyncio.ensure_future(coro)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def request_payment(statement_id: int) -> None:
    """Hand an issued statement with a balance to the payment provider plugin, if any."""
    statement = await statement_row(statement_id)
    if statement["total_incl_minor"] == 0:
        return
    lines = await statement_lines(statement_id)
    answer = await call_hook("billing_request_payment", statement=statement_json(statement),
                             lines=lines_json(lines, statement["currency"]))
    if answer is None:
        return
    await Statement.update({Statement.payment_status: answer.status[:24], Statement.payment_provider: answer.provider[:64],
                            Statement.payment_reference: answer.reference[:200]}).where(Statement.id == statement_id)


async def void_statement(statement_id: int) -> dict[str, Any]:
    row = await statement_row(statement_id)
    if row["status"] == "void":
        raise BillingError(f"statement {statement_id} is already void", status=409)
    await Statement.update({Statement.status: "void", Statement.voided_at: utcnow()}).where(
        Statement.id == statement_id)
    return await statement_row(statement_id)


async def statement_row(statement_id: int) -> dict[str, Any]:
    row = await Statement.select().where(Statement.id == statement_id).first()
    if row is None:
        raise BillingError(f"no statement {statement_id}", status=404)
    return row


async def statement_lines(statement_id: int) -> list[dict[str, Any]]:
    return await StatementLine.select().where(StatementLine.statement == statement_id).order_by(
        StatementLine.position)


def statement_number(row: dict[str, Any]) -> str:
    return f"ST-{row['id']:06d}"


def statement_json(row: dict[str, Any]) -> dict[str, Any]:
    cur = row["currency"]
    out = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
    out.update(number=statement_number(row), total_excl_vat=money(row["total_excl_minor"], cur),
               total_vat=money(row["total_vat_minor"], cur), total_incl_vat=money(row["total_incl_minor"], cur),
               charges_incl_vat=money(row["charges_incl_minor"], cur),
               credits_incl_vat=money(row["credits_incl_minor"], cur),
               direction="payout" if row["total_incl_minor"] < 0 else "collect")
    return out


def _kwh(wh: float) -> Decimal:
    return Decimal(f"{wh / 1000:.3f}")


def line_json(ln: dict[str, Any], currency: str) -> dict[str, Any]:
    out = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in ln.items()}
    out.update(energy_kwh=str(_kwh(ln["energy_wh"])), amount_excl_vat=money(ln["excl_minor"], currency),
               vat=money(ln["vat_minor"], currency), amount_incl_vat=money(ln["incl_minor"], currency))
    return out


def lines_json(lines: list[dict[str, Any]], currency: str) -> list[dict[str, Any]]:
    return [line_json(ln, currency) for ln in lines]


def _local(value: datetime | None, tz: ZoneInfo) -> str:
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M") if value else ""


CSV_HEADER = ["statement", "position", "session_id", "kind", "direction", "started", "stopped", "station",
              "id_token", "description", "energy_kwh", "amount_excl_vat", "vat", "amount_incl_vat", "currency"]


def statement_csv(row: dict[str, Any], lines: list[dict[str, Any]]) -> str:
    """The statement as CSV: one row per line, then a TOTAL row; times in the statement time zone.
    Amounts and energy are numbers (a credit is negative); text is made formula-safe."""
    tz = ZoneInfo(billing_settings().statement_timezone)
    cur, number = row["currency"], statement_number(row)
    rows: list[list[Any]] = [CSV_HEADER]
    for ln in lines:
        rows.append([number, ln["position"], ln["session_id"], ln["kind"], ln["direction"],
                     _local(ln["started_at"], tz), _local(ln["stopped_at"], tz), ln["station_id"], ln["id_token"],
                     ln["description"], _kwh(ln["energy_wh"]), from_minor(ln["excl_minor"], cur),
                     from_minor(ln["vat_minor"], cur), from_minor(ln["incl_minor"], cur), cur])
    rows.append([number, "", "", "TOTAL", "", "", "", "", "", row["party_name"],
                 _kwh(sum(ln["energy_wh"] for ln in lines)), from_minor(row["total_excl_minor"], cur),
                 from_minor(row["total_vat_minor"], cur), from_minor(row["total_incl_minor"], cur), cur])
    return csv_text(rows)


def _latin1(text: str) -> str:
    """Text the PDF's built-in fonts can print (they cover Latin-1 only)."""
    text = unicodedata.normalize("NFKC", str(text))
    return text.encode("latin-1", "replace").decode("latin-1")


@dataclass(frozen=True)
class Party:
    """A seller or buyer as printed on a statement."""

    name: str
    address: str = ""
    vat_id: str = ""
    email: str = ""

    @property
    def address_lines(self) -> list[str]:
        return [x.strip() for x in self.address.replace(";", "\n").splitlines() if x.strip()]


async def seller() -> Party:
    """The installation as seller: the billing settings, else the organization of kind ``operator``."""
    cfg = billing_settings()
    row = await Organization.select().where(Organization.kind == "operator").order_by(Organization.id).first() or {}
    return Party(name=cfg.operator_name or row.get("name") or "Charging operator",
                 address=cfg.operator_address or row.get("address") or "",
                 vat_id=cfg.operator_vat_id or row.get("vat_id") or "")


async def buyer(row: dict[str, Any]) -> Party:
    """The statement's party with what is known of it: an organization's address and VAT id, a
    driver's e-mail and (when the driver belongs to one) the organization's address."""
    if row["party_kind"] == "driver":
        driver = await Driver.select().where(Driver.id == row["party_id"]).first()
        if driver is None:
            return Party(name=row["party_name"])
        org = await Organization.select().where(Organization.id == driver["organization"]).first() \
            if driver["organization"] else None
        return Party(name=driver["name"], email=driver["email"] or "",
                     address=f"c/o {org['name']};{org['address']}" if org and org["address"] else "")
    org = await Organization.select().where(Organization.id == row["party_id"]).first()
    if org is None:
        return Party(name=row["party_name"])
    return Party(name=org["name"], address=org["address"] or "", vat_id=org["vat_id"] or "", email=org["email"] or "")


def _vat_rate(ln: dict[str, Any]) -> str:
    """A line's VAT rate in percent, from its stored amounts (rounded to the tenth)."""
    if not ln["excl_minor"]:
        return ""
    rate = Decimal(ln["vat_minor"]) * 100 / Decimal(ln["excl_minor"])
    return f"{rate.quantize(Decimal('0.1')).normalize():f} %"


def statement_pdf(row: dict[str, Any], lines: list[dict[str, Any]], seller: Party, buyer: Party) -> bytes:
    """The statement as an invoice on one or more A4 pages (fpdf2, built-in Helvetica): seller
    and buyer with addresses and VAT ids, number, issue date, period, lines with their VAT, totals."""
    from fpdf import FPDF

    tz_name = billing_settings().statement_timezone
    tz = ZoneInfo(tz_name)
    cur = row["currency"]
    credit_note = row["total_incl_minor"] < 0
    kind = "Credit note" if credit_note else "Invoice"
    number = statement_number(row)
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.set_title(f"{kind} {number}")
    pdf.set_author(_latin1(seller.name))
    pdf.add_page()
    top = pdf.get_y()

    def block(x: float, title: str, party: Party) -> None:
        pdf.set_xy(x, top)
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(85, 5, title, new_x="LEFT", new_y="NEXT")
        pdf.set_font("Helvetica", "", 10)
        for text in [party.name, *party.address_lines, *([f"VAT id: {party.vat_id}"] if party.vat_id else []),
                     *([party.email] if party.email else [])]:
            pdf.cell(85, 5, _latin1(text)[:60], new_x="LEFT", new_y="NEXT")

    block(pdf.l_margin, "Seller", seller)
    seller_bottom = pdf.get_y()
    block(pdf.l_margin + 95, "Bill to" if not credit_note else "Credited to", buyer)
    pdf.set_xy(pdf.l_margin, max(seller_bottom, pdf.get_y()) + 6)
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 9, _latin1(f"{kind} {number}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    period_end = (row["period_end"] - timedelta(seconds=1)).astimezone(tz)
    for text in (f"Invoice number: {number}", f"Issue date: {row['created_at'].astimezone(tz):%Y-%m-%d}",
                 f"Period: {row['period_start'].astimezone(tz):%Y-%m-%d} to {period_end:%Y-%m-%d} ({tz_name})",
                 f"Customer: {row['party_kind'].replace('_', ' ')} {row['party_id']}",
                 *(["Status: VOID - this statement was cancelled"] if row["status"] == "void" else [])):
        pdf.cell(0, 6, _latin1(text), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    widths = (26, 20, 50, 14, 20, 14, 18, 20)
    headers = ("Started", "Station", "Description", "kWh", "Net", "VAT %", "VAT", "Gross")
    pdf.set_font("Helvetica", "B", 8)
    for w, h in zip(widths, headers):
        pdf.cell(w, 6, h, border="B", align="R" if h not in ("Started", "Station", "Description") else "L")
    pdf.ln()
    pdf.set_font("Helvetica", "", 8)
    for ln in lines:
        cells = (_local(ln["started_at"], tz), ln["station_id"][:13], ln["description"][:38],
                 str(_kwh(ln["energy_wh"])), money(ln["excl_minor"], cur), _vat_rate(ln), money(ln["vat_minor"], cur),
                 money(ln["incl_minor"], cur))
        for i, (w, c) in enumerate(zip(widths, cells)):
            pdf.cell(w, 5, _latin1(c), align="R" if i >= 3 else "L")
        pdf.ln()
    if not lines:
        pdf.cell(0, 6, "No settled sessions in this period.", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("Helvetica", "B", 10)
    totals = [(f"Total net, excl. VAT ({cur})", money(row["total_excl_minor"], cur)),
              (f"VAT ({cur})", money(row["total_vat_minor"], cur)),
              (f"Total incl. VAT ({cur})", money(row["total_incl_minor"], cur))]
    if row["credits_incl_minor"]:
        totals.insert(0, (f"Credits incl. VAT ({cur})", money(-row["credits_incl_minor"], cur)))
        totals.insert(0, (f"Charges incl. VAT ({cur})", money(row["charges_incl_minor"], cur)))
    for label, value in totals:
        pdf.cell(sum(widths[:-1]), 6, _latin1(label), align="R")
        pdf.cell(widths[-1], 6, value, align="R", new_x="LMARGIN", new_y="NEXT")
    if credit_note:
        pdf.set_font("Helvetica", "", 9)
        pdf.cell(0, 6, _latin1(f"A negative total is owed to {row['party_name']}."), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
