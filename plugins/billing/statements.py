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

from piccolo.engine.sqlite import SQLiteEngine, TransactionType

from csms.plugin_api import N_, Driver, Organization, call_hook, csv_text, hook_impls, run_cpu, utcnow
from plugins.billing.config import billing_settings
from plugins.billing.owners import party_owner
from plugins.billing.settlements import from_minor, money
from plugins.billing.tables import InvoiceSeries, Settlement, Statement, StatementLine
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


PAYMENT_STATUSES = ("pending", "paid", "failed", "refunded", "partially_refunded")


def _payment_answer(answer: Any) -> PaymentRequest:
    """A provider's answer: a :class:`PaymentRequest`, or a mapping with its keys (so a provider
    plugin need not import billing)."""
    if isinstance(answer, PaymentRequest):
        return answer
    return PaymentRequest(status=str(answer["status"]), provider=str(answer["provider"]),
                          reference=str(answer.get("reference") or ""))


def month_period(month: str, timezone: str) -> tuple[datetime, datetime]:
    """``"2026-11"`` as ``[start, end)`` in UTC, the month read in ``timezone``."""
    try:
        year, mon = (int(x) for x in month.split("-"))
        first = date(year, mon, 1)
    except ValueError:
        raise BillingError(N_("month %(month)s is not YYYY-MM"), month=repr(month), field="month") from None
    nxt = date(year + (mon == 12), mon % 12 + 1, 1)
    tz = ZoneInfo(timezone)
    return (datetime.combine(first, time(), tz).astimezone(ZoneInfo("UTC")),
            datetime.combine(nxt, time(), tz).astimezone(ZoneInfo("UTC")))


async def party_name(kind: str, party_id: int) -> str:
    if kind not in PARTY_KINDS:
        raise BillingError(N_("party_kind must be one of %(kinds)s"), kinds=", ".join(PARTY_KINDS))
    if kind == "driver":
        row = await Driver.select(Driver.name).where(Driver.id == party_id).first()
        if row is None:
            raise BillingError(N_("no driver %(driver)s"), driver=party_id)
        return row["name"]
    row = await Organization.select(Organization.name, Organization.kind).where(Organization.id == party_id).first()
    if row is None:
        raise BillingError(N_("no organization %(organization)s"), organization=party_id)
    if kind == "leasing_partner" and row["kind"] != "leasing_partner":
        raise BillingError(N_("organization %(organization)s is a %(kind)s, not a leasing_partner"), organization=party_id,
                           kind=row["kind"])
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


SELLER = "operator"  # the one seller this plugin models: the installation (see the README's "Invoices")


def _write_transaction() -> Any:
    """A transaction that holds the write lock from its start on SQLite (``BEGIN IMMEDIATE``: the
    single writer, so two issues are serialized); on PostgreSQL the series row's lock does that."""
    db = Statement._meta.db
    if isinstance(db, SQLiteEngine):
        return db.transaction(transaction_type=TransactionType.immediate)
    return db.transaction()


async def allocate_number(seller_key: str = SELLER, *, at: datetime | None = None) -> str:
    """The next number of ``seller_key``'s series for the year of ``at`` (now): ``INV-2026-000123``.

    Call it inside the issuing transaction: the ``UPDATE ... RETURNING`` locks the series row
    until that transaction ends, so concurrent issues wait for each other, never share a number,
    and a rolled-back issue gives its number back (the series stays gap-free)."""
    cfg = billing_settings()
    year = (at or utcnow()).astimezone(ZoneInfo(cfg.statement_timezone)).year
    key = f"{seller_key}:{year}"
    await InvoiceSeries.insert(InvoiceSeries(series=key, seller=seller_key, year=year, prefix=cfg.invoice_prefix,
                                             last_number=0)).on_conflict(target=InvoiceSeries.series,
                                                                         action="DO NOTHING")
    rows = await InvoiceSeries.update({InvoiceSeries.last_number: InvoiceSeries.last_number + 1}).where(
        InvoiceSeries.series == key).returning(InvoiceSeries.last_number, InvoiceSeries.prefix)
    prefix = rows[0]["prefix"] or cfg.invoice_prefix
    return f"{prefix}-{year}-{rows[0]['last_number']:06d}" if prefix else f"{year}-{rows[0]['last_number']:06d}"


async def _snapshot(party_kind: str, party_id: int, start: datetime, end: datetime,
                    currency: str | None) -> tuple[str, list[dict[str, Any]]]:
    """The lines of the party's settled sessions that ended in ``[start, end)``, and their currency."""
    query = Settlement.select().where(
        (Settlement.status == "settled") & (Settlement.stopped_at >= start) & (Settlement.stopped_at < end)
        & _party_filter(party_kind, party_id)).order_by(Settlement.stopped_at).order_by(Settlement.session_id)
    settlements = await query
    currencies = sorted({s["currency"] for s in settlements})
    if currency is None:
        if len(currencies) > 1:
            raise BillingError(N_("this party has sessions in %(currencies)s: give the currency"),
                               currencies=", ".join(currencies))
        currency = currencies[0] if currencies else "EUR"
    settlements = [s for s in settlements if s["currency"] == currency]
    return currency, [_line(i + 1, s, party_kind, party_id) for i, s in enumerate(settlements)]


def _totals(lines: list[dict[str, Any]]) -> dict[str, Any]:
    return {"line_count": len(lines), "total_excl_minor": sum(ln["excl_minor"] for ln in lines),
            "total_vat_minor": sum(ln["vat_minor"] for ln in lines),
            "total_incl_minor": sum(ln["incl_minor"] for ln in lines),
            "charges_incl_minor": sum(ln["incl_minor"] for ln in lines if ln["incl_minor"] > 0),
            "credits_incl_minor": -sum(ln["incl_minor"] for ln in lines if ln["incl_minor"] < 0)}


async def _check_overlap(party_kind: str, party_id: int, start: datetime, end: datetime, currency: str | None,
                         *, exclude: int | None = None) -> None:
    """Two live invoices (or drafts) of one party may not cover the same moment; a credited
    invoice no longer counts (its credit note cancelled it)."""
    credited = {r["corrects"] for r in await Statement.select(Statement.corrects).where(
        (Statement.kind == "credit_note") & (Statement.status == "issued"))}
    for other in await Statement.select().where(
            (Statement.party_kind == party_kind) & (Statement.party_id == party_id) & (Statement.kind == "invoice")
            & Statement.status.is_in(["issued", "draft"])):
        if other["id"] == exclude or other["id"] in credited:
            continue
        if other["period_start"] < end and start < other["period_end"] and (
                currency is None or other["currency"] == currency):
            covered = {"statement": other["id"], "start": other["period_start"].isoformat(),
                       "end": other["period_end"].isoformat(), "party": party_kind}
            if other["status"] == "draft":
                raise BillingError(N_("statement %(statement)s (a draft) already covers %(start)s to %(end)s for this "
                                      "%(party)s; regenerate or discard that draft"), status=409, **covered)
            raise BillingError(N_("statement %(statement)s (statement %(number)s) already covers %(start)s to %(end)s "
                                  "for this %(party)s; credit or void it first to issue a new one"), status=409,
                               number=statement_number(other), **covered)


async def _closed_early_start(party_kind: str, party_id: int, start: datetime) -> datetime:
    """Where a period really starts: a previous period of the party closed early hands the rest
    of itself (from the moment it was closed) to the period that follows it."""
    row = await Statement.select(Statement.period_end).where(
        (Statement.party_kind == party_kind) & (Statement.party_id == party_id) & (Statement.kind == "invoice")
        & (Statement.status == "issued") & (Statement.scheduled_end == start)).order_by(
        Statement.period_end, ascending=False).first()
    return row["period_end"] if row and row["period_end"] < start else start


def _close(end: datetime, *, close_early: bool, draft: bool = False) -> tuple[datetime, datetime | None]:
    """The period's end for issuing now: the end itself once it has passed; with ``close_early``
    now (and the planned end kept as ``scheduled_end``); otherwise refused."""
    now = utcnow()
    if end <= now:
        return end, None
    if not close_early:
        open_period_refused(end, draft=draft)
    return now.replace(microsecond=0), end


async def create_statement(party_kind: str, party_id: int, start: datetime, end: datetime, *,
                           currency: str | None = None, created_by: str = "", draft: bool = False,
                           close_early: bool = False) -> dict[str, Any]:
    """Issue a statement (an invoice, numbered) for a party and period, or save it as a draft.

    A period that has not ended can only be a draft, unless ``close_early`` closes it now (its
    later sessions then go to the next period). Refused when a live invoice or draft overlaps it."""
    name = await party_name(party_kind, party_id)
    if end <= start:
        raise BillingError(N_("period_end must be after period_start"), field="period_end")
    scheduled_end = None
    if not draft:
        end, scheduled_end = _close(end, close_early=close_early)
        if end <= start:
            raise BillingError(N_("the period has not started yet: nothing to close"), status=409, field="period_end")
    start = await _closed_early_start(party_kind, party_id, start)
    currency, lines = await _snapshot(party_kind, party_id, start, end, currency)
    row = Statement(
        party_kind=party_kind, party_id=party_id, party_name=name[:200], period_start=start, period_end=end,
        currency=currency, created_by=created_by, status="draft" if draft else "issued", kind="invoice",
        seller=SELLER, scheduled_end=scheduled_end, organization=await party_owner(party_kind, party_id),
        **_totals(lines))
    async with _write_transaction():
        if not draft:  # first: the series row's lock serializes the issues of this seller
            row.number = await allocate_number(SELLER)
            row.issued_at = utcnow()
        await _check_overlap(party_kind, party_id, start, end, currency)
        await row.save()
        if lines:
            await StatementLine.insert(*(StatementLine(statement=row.id, **ln) for ln in lines))
    statement = await statement_row(row.id)
    if not draft and hook_impls("billing_request_payment"):
        _spawn(request_payment(statement["id"]))
    return statement


async def _replace_lines(statement_id: int, lines: list[dict[str, Any]]) -> None:
    await StatementLine.delete().where(StatementLine.statement == statement_id)
    if lines:
        await StatementLine.insert(*(StatementLine(statement=statement_id, **ln) for ln in lines))


async def regenerate_draft(statement_id: int) -> dict[str, Any]:
    """A draft again from the settlements as they are now (its lines and totals replaced)."""
    row = await statement_row(statement_id)
    if row["status"] != "draft":
        raise BillingError(N_("statement %(statement)s is %(state)s, not a draft: only drafts are regenerated"),
                           statement=statement_id, state=row["status"], status=409)
    _, lines = await _snapshot(row["party_kind"], row["party_id"], row["period_start"], row["period_end"],
                               row["currency"])
    async with _write_transaction():
        # still a draft? (an issue since the snapshot above keeps the lines it was issued with); on
        # PostgreSQL the update waits for an issue under way and then finds the statement issued
        still = await Statement.update({getattr(Statement, k): v for k, v in _totals(lines).items()}).where(
            (Statement.id == statement_id) & (Statement.status == "draft")).returning(Statement.id)
        if not still:
            raise BillingError(N_("statement %(statement)s is no longer a draft"), statement=statement_id, status=409)
        await _replace_lines(statement_id, lines)
    return await statement_row(statement_id)


async def issue_draft(statement_id: int, *, close_early: bool = False) -> dict[str, Any]:
    """Issue a draft: its lines regenerated, a number from the seller's series, all in one
    transaction (a failure gives the number back). Only once its period has ended, or with
    ``close_early`` (the period then ends now; later sessions go to the next period)."""
    row = await statement_row(statement_id)
    if row["status"] != "draft":
        raise BillingError(N_("statement %(statement)s is %(state)s, not a draft"), statement=statement_id,
                           state=row["status"], status=409)
    end, scheduled_end = _close(row["period_end"], close_early=close_early, draft=True)
    if end <= row["period_start"]:
        raise BillingError(N_("the period has not started yet: nothing to close"), status=409, field="period_end")
    async with _write_transaction():
        number = await allocate_number(row["seller"] or SELLER)
        # the draft, locked: of two concurrent issues of one draft only the first finds it a draft
        claimed = await Statement.update({Statement.status: "issued", Statement.number: number,
                                          Statement.issued_at: utcnow(), Statement.period_end: end,
                                          Statement.scheduled_end: scheduled_end}).where(
            (Statement.id == statement_id) & (Statement.status == "draft")).returning(Statement.id)
        if not claimed:
            raise BillingError(N_("statement %(statement)s is no longer a draft"), statement=statement_id, status=409)
        await _check_overlap(row["party_kind"], row["party_id"], row["period_start"], end, row["currency"],
                             exclude=statement_id)
        _, lines = await _snapshot(row["party_kind"], row["party_id"], row["period_start"], end, row["currency"])
        await _replace_lines(statement_id, lines)
        await Statement.update({getattr(Statement, k): v for k, v in _totals(lines).items()}).where(
            Statement.id == statement_id)
    statement = await statement_row(statement_id)
    if hook_impls("billing_request_payment"):
        _spawn(request_payment(statement_id))
    return statement


async def credit_statement(statement_id: int, *, reason: str = "", created_by: str = "") -> dict[str, Any]:
    """Correct an issued invoice with a credit note: the next number of the same seller's series,
    the invoice's lines negated, ``corrects`` naming it. The invoice itself is not changed; its
    period may then be invoiced again."""
    original = await statement_row(statement_id)
    if original["kind"] != "invoice" or original["status"] != "issued":
        raise BillingError(N_("statement %(statement)s is not an issued invoice: only issued invoices are credited"),
                           statement=statement_id, status=409)
    lines = [{k: v for k, v in ln.items() if k not in ("id", "statement")}
             for ln in await statement_lines(statement_id)]
    for ln in lines:
        ln.update(excl_minor=-ln["excl_minor"], vat_minor=-ln["vat_minor"], incl_minor=-ln["incl_minor"],
                  description=ln["description"][:300])
    totals = {"line_count": len(lines), "total_excl_minor": -original["total_excl_minor"],
              "total_vat_minor": -original["total_vat_minor"], "total_incl_minor": -original["total_incl_minor"],
              "charges_incl_minor": original["credits_incl_minor"],
              "credits_incl_minor": original["charges_incl_minor"]}
    row = Statement(
        party_kind=original["party_kind"], party_id=original["party_id"], party_name=original["party_name"],
        period_start=original["period_start"], period_end=original["period_end"], currency=original["currency"],
        created_by=created_by, status="issued", kind="credit_note", seller=original["seller"] or SELLER,
        corrects=statement_id, reason=reason[:200], organization=original["organization"], **totals)
    async with _write_transaction():
        row.number = await allocate_number(row.seller)
        row.issued_at = utcnow()
        other = await Statement.select(Statement.id, Statement.number).where(
            (Statement.corrects == statement_id) & (Statement.kind == "credit_note")
            & (Statement.status == "issued")).first()
        if other is not None:
            raise BillingError(N_("statement %(statement)s is already credited by credit note %(number)s"),
                               statement=statement_id, number=other["number"], status=409)
        await row.save()
        if lines:
            await StatementLine.insert(*(StatementLine(statement=row.id, **ln) for ln in lines))
    statement = await statement_row(row.id)
    if hook_impls("billing_request_payment"):
        _spawn(request_payment(statement["id"]))
    return statement


def open_period_refused(end: datetime, *, draft: bool = False) -> None:
    """Statements are issued for periods that have ended: a statement is final, so one issued
    for the running month would lock it and leave out every session that ends later in it."""
    if end > utcnow():
        tz = ZoneInfo(billing_settings().statement_timezone)
        ends = f"{end.astimezone(tz):%Y-%m-%d %H:%M} {tz.key}"
        if draft:
            raise BillingError(N_("the period has not ended yet (it ends %(end)s): a statement is final, and sessions "
                                  "that end later in the period would be left out of it; issue this draft once the "
                                  "period is over or close the period early (later sessions go to the next period)"),
                               end=ends, status=409, field="period_end")
        raise BillingError(N_("the period has not ended yet (it ends %(end)s): a statement is final, and sessions "
                              "that end later in the period would be left out of it; save it as a draft (issue it "
                              "once the period is over) or close the period early (later sessions go to the next "
                              "period)"), end=ends, status=409, field="period_end")


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
    answer = _payment_answer(answer)
    # an outcome the provider reported meanwhile (billing_payment_update) is newer: it stays
    await Statement.update({Statement.payment_status: answer.status[:24], Statement.payment_provider: answer.provider[:64],
                            Statement.payment_reference: answer.reference[:200]}).where(
        (Statement.id == statement_id) & (Statement.payment_status == "statement_only"))


async def record_payment(statement_id: int, status: str, provider: str, reference: str = "") -> dict[str, Any] | None:
    """A payment provider's later outcome for an issued (or voided) statement: its
    ``payment_status``, provider and reference replaced. ``None`` for no such statement or a draft."""
    if status not in PAYMENT_STATUSES:
        raise ValueError(f"payment status {status!r} is not one of {', '.join(PAYMENT_STATUSES)}")
    updated = await Statement.update({Statement.payment_status: status, Statement.payment_provider: provider[:64],
                                      Statement.payment_reference: reference[:200]}).where(
        (Statement.id == statement_id) & (Statement.status != "draft")).returning(Statement.id)
    if not updated:
        return None
    return statement_json(await statement_row(statement_id))


async def void_statement(statement_id: int) -> dict[str, Any]:
    """Void an issued statement. The write is conditional: a statement voided by someone else
    since it was read is not voided again (its voided_at stays), it is refused."""
    voided = await Statement.update({Statement.status: "void", Statement.voided_at: utcnow()}).where(
        (Statement.id == statement_id) & (Statement.status == "issued")).returning(Statement.id)
    row = await statement_row(statement_id)
    if voided:
        return row
    if row["status"] == "void":
        raise BillingError(N_("statement %(statement)s is already void"), statement=statement_id, status=409)
    raise BillingError(N_("statement %(statement)s is a draft: discard it instead"), statement=statement_id,
                       status=409)


async def discard_draft(statement_id: int) -> dict[str, Any]:
    """Delete a draft (it has no number, so no series is touched); issued statements stay. A
    draft issued between the read and the delete is not deleted, and the answer says so."""
    row = await statement_row(statement_id)
    if row["status"] == "draft":
        if await Statement.delete().where((Statement.id == statement_id) & (Statement.status == "draft")).returning(
                Statement.id):
            return row
        row = await statement_row(statement_id)  # issued meanwhile
    raise BillingError(N_("statement %(statement)s is %(state)s: only drafts are discarded"), statement=statement_id,
                       state=row["status"], status=409)


async def statement_row(statement_id: int) -> dict[str, Any]:
    row = await Statement.select().where(Statement.id == statement_id).first()
    if row is None:
        raise BillingError(N_("no statement %(statement)s"), statement=statement_id, status=404)
    return row


async def statement_lines(statement_id: int) -> list[dict[str, Any]]:
    return await StatementLine.select().where(StatementLine.statement == statement_id).order_by(
        StatementLine.position)


def document_filename(row: dict[str, Any], fmt: str) -> str:
    """``statement-INV-2026-000001.pdf`` (``credit-note-...`` for a credit note)."""
    return f"{'credit-note' if row['kind'] == 'credit_note' else 'statement'}-{statement_number(row)}.{fmt}"


async def document_pdf(row: dict[str, Any]) -> bytes:
    """The statement's PDF, rendered off the event loop (a statement may have thousands of lines)."""
    lines = await statement_lines(row["id"])
    corrected = await statement_row(row["corrects"]) if row["corrects"] else None
    pdf: bytes = await run_cpu(statement_pdf, row, lines, await seller(), await buyer(row), corrected)
    return pdf


def statement_number(row: dict[str, Any]) -> str:
    """The invoice or credit note number; ``DRAFT-7`` for a draft; ``ST-000042`` for a statement
    issued before numbered series existed."""
    if row.get("number"):
        return row["number"]
    if row.get("status") == "draft":
        return f"DRAFT-{row['id']}"
    return f"ST-{row['id']:06d}"


def document_title(row: dict[str, Any]) -> str:
    """What the document is: ``Invoice``, ``Credit note`` or ``Draft``."""
    if row.get("status") == "draft":
        return N_("Draft")
    return N_("Credit note") if row.get("kind") == "credit_note" else N_("Invoice")


def statement_json(row: dict[str, Any]) -> dict[str, Any]:
    cur = row["currency"]
    out = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
    out.update(number=statement_number(row), title=document_title(row),
               total_excl_vat=money(row["total_excl_minor"], cur),
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


def money_text(minor: int, currency: str, locale: str | None = None) -> str:
    """An amount for people, formatted for ``locale`` (default the ``invoice_locale`` setting) with
    Babel: ``€1,234.50`` (en), ``1.234,50 €`` (de_DE), ``€ 1.234,50`` (nl_NL)."""
    from babel.core import UnknownLocaleError
    from babel.numbers import format_currency

    value = from_minor(minor, currency)
    try:
        return format_currency(value, currency, locale=locale or billing_settings().invoice_locale)
    except (UnknownLocaleError, ValueError):
        return format_currency(value, currency, locale="en")


def _kwh_text(wh: float, locale: str) -> str:
    from babel.core import UnknownLocaleError
    from babel.numbers import format_decimal

    try:
        return format_decimal(_kwh(wh), format="#,##0.000", locale=locale)
    except (UnknownLocaleError, ValueError):
        return str(_kwh(wh))


def _pdf_text(text: str) -> str:
    """Text the PDF's built-in fonts print (Windows-1252: Latin-1 and the euro sign)."""
    text = unicodedata.normalize("NFKC", str(text))
    return text.encode("cp1252", "replace").decode("cp1252")


def statement_pdf(row: dict[str, Any], lines: list[dict[str, Any]], seller: Party, buyer: Party,
                  corrected: dict[str, Any] | None = None) -> bytes:
    """The statement as an invoice, a credit note (naming the invoice it corrects) or a draft
    (no number, a DRAFT watermark on every page) on A4 (fpdf2, built-in Helvetica): seller and
    buyer with addresses and VAT ids, number, issue date, period, lines with their VAT, totals;
    amounts formatted for the ``invoice_locale``."""
    from fpdf import FPDF

    cfg = billing_settings()
    tz_name, locale = cfg.statement_timezone, cfg.invoice_locale
    tz = ZoneInfo(tz_name)
    cur = row["currency"]
    draft = row["status"] == "draft"
    credit_note = row.get("kind") == "credit_note"
    owed_to_party = row["total_incl_minor"] < 0
    kind = document_title(row)
    number = statement_number(row)

    class Document(FPDF):
        def header(self) -> None:
            if not draft:
                return
            self.set_font("Helvetica", "B", 110)
            self.set_text_color(225, 225, 225)
            with self.rotation(45, x=self.w / 2, y=self.h / 2):
                self.text(self.w / 2 - 70, self.h / 2 + 15, "DRAFT")
            self.set_text_color(0, 0, 0)
            self.set_xy(self.l_margin, self.t_margin)

    pdf = Document(orientation="P", unit="mm", format="A4")
    pdf.core_fonts_encoding = "windows-1252"
    pdf.set_auto_page_break(auto=True, margin=15)
    title = "Draft statement (not an invoice)" if draft else f"{kind} {number}"
    pdf.set_title(_pdf_text(title))
    pdf.set_author(_pdf_text(seller.name))
    pdf.add_page()
    top = pdf.get_y()

    def block(x: float, heading: str, party: Party) -> None:
        pdf.set_xy(x, top)
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(85, 5, heading, new_x="LEFT", new_y="NEXT")
        pdf.set_font("Helvetica", "", 10)
        for text in [party.name, *party.address_lines, *([f"VAT id: {party.vat_id}"] if party.vat_id else []),
                     *([party.email] if party.email else [])]:
            pdf.cell(85, 5, _pdf_text(text)[:60], new_x="LEFT", new_y="NEXT")

    block(pdf.l_margin, "Seller", seller)
    seller_bottom = pdf.get_y()
    block(pdf.l_margin + 95, "Credited to" if credit_note or owed_to_party else "Bill to", buyer)
    pdf.set_xy(pdf.l_margin, max(seller_bottom, pdf.get_y()) + 6)
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 9, _pdf_text(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    period_end = (row["period_end"] - timedelta(seconds=1)).astimezone(tz)
    issued = row.get("issued_at") or row["created_at"]
    facts = [f"{kind} number: {number}" if not draft else "Number: assigned when it is issued",
             f"Issue date: {issued.astimezone(tz):%Y-%m-%d}" if not draft
             else f"Drafted: {row['created_at'].astimezone(tz):%Y-%m-%d %H:%M}",
             f"Period: {row['period_start'].astimezone(tz):%Y-%m-%d} to {period_end:%Y-%m-%d} ({tz_name})"]
    if credit_note:
        of = f" of {(corrected.get('issued_at') or corrected['created_at']).astimezone(tz):%Y-%m-%d}" \
            if corrected else ""
        facts.append(f"Corrects invoice {statement_number(corrected) if corrected else row['corrects']}{of}")
        if row.get("reason"):
            facts.append(f"Reason: {row['reason']}")
    if row.get("scheduled_end"):
        facts.append(f"Period closed early on {row['period_end'].astimezone(tz):%Y-%m-%d %H:%M}: sessions "
                     "ending later go to the next period")
    if draft:
        facts.append("DRAFT: the period is open or the statement not issued; its figures may still change")
    facts.append(f"Customer: {row['party_kind'].replace('_', ' ')} {row['party_id']}")
    if row["status"] == "void":
        facts.append("Status: VOID - this statement was cancelled")
    for text in facts:
        pdf.cell(0, 6, _pdf_text(text), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    widths = (26, 20, 46, 14, 21, 13, 19, 22)
    headers = ("Started", "Station", "Description", "kWh", "Net", "VAT %", "VAT", "Gross")
    pdf.set_font("Helvetica", "B", 8)
    for w, h in zip(widths, headers):
        pdf.cell(w, 6, h, border="B", align="R" if h not in ("Started", "Station", "Description") else "L")
    pdf.ln()
    pdf.set_font("Helvetica", "", 8)
    for ln in lines:
        cells = (_local(ln["started_at"], tz), ln["station_id"][:13], ln["description"][:34],
                 _kwh_text(ln["energy_wh"], locale), money_text(ln["excl_minor"], cur, locale), _vat_rate(ln),
                 money_text(ln["vat_minor"], cur, locale), money_text(ln["incl_minor"], cur, locale))
        for i, (w, c) in enumerate(zip(widths, cells)):
            pdf.cell(w, 5, _pdf_text(c), align="R" if i >= 3 else "L")
        pdf.ln()
    if not lines:
        pdf.cell(0, 6, "No settled sessions in this period.", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("Helvetica", "B", 10)
    totals = [(f"Total net, excl. VAT ({cur})", money_text(row["total_excl_minor"], cur, locale)),
              (f"VAT ({cur})", money_text(row["total_vat_minor"], cur, locale)),
              (f"Total incl. VAT ({cur})", money_text(row["total_incl_minor"], cur, locale))]
    if row["credits_incl_minor"] and row["charges_incl_minor"]:
        totals.insert(0, (f"Credits incl. VAT ({cur})", money_text(-row["credits_incl_minor"], cur, locale)))
        totals.insert(0, (f"Charges incl. VAT ({cur})", money_text(row["charges_incl_minor"], cur, locale)))
    for label, value in totals:
        pdf.cell(sum(widths[:-1]), 6, _pdf_text(label), align="R")
        pdf.cell(widths[-1], 6, _pdf_text(value), align="R", new_x="LMARGIN", new_y="NEXT")
    if owed_to_party:
        pdf.set_font("Helvetica", "", 9)
        pdf.cell(0, 6, _pdf_text(f"A negative total is owed to {row['party_name']}."), new_x="LMARGIN",
                 new_y="NEXT")
    return bytes(pdf.output())
