"""Collecting a statement's balance through Stripe: customers, attempts, retries, dunning,
webhooks and refunds.

One ``payments_stripe_payment`` row per statement and one PaymentIntent per statement (created
with the idempotency key ``csms-statement-<id>``). Each attempt confirms it off-session with the
payer's saved method under the key ``csms-statement-<id>-attempt-<n>``: an attempt repeated after
a crash asks Stripe the same question and gets the same answer, a retry is a new attempt. An
attempt is claimed before it runs (``next_attempt_at`` moved on by :data:`CLAIM_SECONDS` in one
conditional update), so two nodes never run the same attempt and a crashed one is picked up later.

A failed attempt sends the payer a dunning e-mail (with a link to save a new payment method) and
is retried after the next of the configured delays; after the last one the payment is ``failed``.
Every outcome is handed to the billing plugin through its ``billing_payment_update`` hook, which
stores it as the statement's ``payment_status``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import stripe
from jinja2 import Environment, FileSystemLoader

from csms.plugin_api import (
    Driver, MailError, Organization, call_hook, gettext, in_language, mail_enabled, ngettext, recipient_language,
    send_mail, utcnow,
)
from plugins.payments_stripe import provider
from plugins.payments_stripe.config import stripe_settings
from plugins.payments_stripe.tables import StripeCustomer, StripePayment

log = logging.getLogger("csms.payments_stripe")

PROVIDER = "stripe"
CLAIM_SECONDS = 600  # an attempt not finished by then (the node died) is run again, same key
_MAIL = Environment(loader=FileSystemLoader(str(Path(__file__).parent / "templates" / "payments_stripe" / "email")),
                    autoescape=False, keep_trailing_newline=True, extensions=["jinja2.ext.i18n"])
_MAIL.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]  # the current language


class PaymentError(Exception):
    """A request this plugin refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def billing_status(status: str) -> str:
    """What the statement's ``payment_status`` says for a payment's status here."""
    return "pending" if status == "processing" else status


async def report(row: dict[str, Any]) -> None:
    """Hand the payment's outcome to the billing plugin (stored as the statement's payment status)."""
    try:
        await call_hook("billing_payment_update", statement_id=row["statement_id"],
                        status=billing_status(row["status"]), provider=PROVIDER, reference=row["payment_intent"])
    except LookupError:  # billing is disabled: the payment row keeps the outcome
        log.warning("billing is not loaded: statement %s's payment is %s here only", row["statement_id"],
                    row["status"])


# -- payers -------------------------------------------------------------------------------------


async def party_contact(kind: str, party_id: int) -> tuple[str, str | None]:
    """The payer's name and e-mail address (a driver's own; an organization's)."""
    table: Any = Driver if kind == "driver" else Organization
    row = await table.select(table.name, table.email).where(table.id == party_id).first()
    if row is None:
        raise PaymentError(f"no {kind.replace('_', ' ')} {party_id}", status=404)
    return row["name"], row["email"]


async def customer_for(kind: str, party_id: int) -> str:
    """The party's Stripe customer, created the first time (one per party: the unique ``party``
    key and the idempotency key make a concurrent second creation find the first)."""
    party = f"{kind}:{party_id}"
    row = await StripeCustomer.select(StripeCustomer.customer_id).where(StripeCustomer.party == party).first()
    if row is not None:
        return str(row["customer_id"])
    name, email = await party_contact(kind, party_id)
    customer = await provider.create_customer(name=name, email=email, party=party)
    await StripeCustomer.insert(StripeCustomer(party=party, party_kind=kind, party_id=party_id,
                                               customer_id=customer)).on_conflict(action="DO NOTHING")
    row = await StripeCustomer.select(StripeCustomer.customer_id).where(StripeCustomer.party == party).first()
    return str(row["customer_id"]) if row is not None else customer


_public_url = ""  # the core's CSMS_PUBLIC_URL, handed over by the startup hook


def use_public_url(url: str) -> None:
    global _public_url
    _public_url = url.rstrip("/")


async def setup_link(kind: str, party_id: int, *, base_url: str = "", return_path: str = "/driver/payment") -> str:
    """A Stripe Checkout link (setup mode) where the payer saves a payment method; Stripe sends
    them back to the driver portal's Payment page under the core's public URL (else ``base_url``,
    the URL of the request asking)."""
    if not provider.configured():
        raise PaymentError("Stripe is not configured (CSMS_PAYMENTS_STRIPE_API_KEY)", status=409)
    base = _public_url or base_url.rstrip("/")
    if not base:
        raise PaymentError("the public URL Stripe sends the payer back to is not set (CSMS_PUBLIC_URL)", status=409)
    customer = await customer_for(kind, party_id)
    return await provider.setup_session(customer, success_url=f"{base}{return_path}?setup=done",
                                        cancel_url=f"{base}{return_path}?setup=cancelled")


# -- collecting ---------------------------------------------------------------------------------


async def payment_row(statement_id: int) -> dict[str, Any] | None:
    return await StripePayment.select().where(StripePayment.statement_id == statement_id).first()


async def collect(statement: dict[str, Any]) -> dict[str, str] | None:
    """``billing_request_payment``: record the payment and run its first attempt. Only balances the
    party owes (``direction`` "collect") and only when Stripe is configured; else ``None``."""
    if not provider.configured() or statement.get("direction") != "collect" or statement["total_incl_minor"] <= 0:
        return None
    now = utcnow()
    await StripePayment.insert(StripePayment(
        statement_id=statement["id"], number=statement.get("number") or "", party_kind=statement["party_kind"],
        party_id=statement["party_id"], amount_minor=statement["total_incl_minor"], currency=statement["currency"],
        status="pending", next_attempt_at=now, created_at=now, updated_at=now)).on_conflict(action="DO NOTHING")
    row = await attempt(statement["id"])
    if row is None:  # another node runs it
        row = await payment_row(statement["id"])
    assert row is not None
    return {"status": billing_status(row["status"]), "provider": PROVIDER, "reference": row["payment_intent"]}


async def claim(statement_id: int) -> dict[str, Any] | None:
    """Take the payment's due attempt for this node, or ``None`` when it is not due or taken."""
    now = utcnow()
    claimed = await StripePayment.update({StripePayment.next_attempt_at: now + timedelta(seconds=CLAIM_SECONDS)}).where(
        (StripePayment.statement_id == statement_id) & (StripePayment.status == "pending")
        & (StripePayment.next_attempt_at <= now)).returning(StripePayment.id)
    return await payment_row(statement_id) if claimed else None


async def attempt(statement_id: int) -> dict[str, Any] | None:
    """Run the payment's due attempt: charge the payer's saved method off-session."""
    row = await claim(statement_id)
    if row is None:
        return None
    number = row["attempts"] + 1
    try:
        customer = row["customer_id"] or await customer_for(row["party_kind"], row["party_id"])
        intent = row["payment_intent"]
        if not intent:
            intent = await provider.create_payment_intent(row, customer)
            await StripePayment.update({StripePayment.customer_id: customer, StripePayment.payment_intent: intent}).where(
                StripePayment.id == row["id"])
            row.update(customer_id=customer, payment_intent=intent)
        method = await provider.default_payment_method(customer)
        if method is None:
            return await _failed(row, number, "no payment method is saved for the payer")
        result = await provider.confirm(intent, method, key=f"csms-statement-{statement_id}-attempt-{number}")
    except stripe.CardError as exc:
        return await _failed(row, number, exc.user_message or str(exc))
    except stripe.StripeError as exc:
        return await _failed(row, number, exc.user_message or str(exc) or type(exc).__name__)
    except PaymentError as exc:
        return await _failed(row, number, exc.message)
    if result["status"] == "succeeded":
        return await _store(row, status="paid", attempts=number, next_attempt_at=None, last_error="")
    if result["status"] == "processing":  # e.g. a SEPA debit: the webhook tells how it ends
        return await _store(row, status="processing", attempts=number, next_attempt_at=None, last_error="")
    reason = "the bank asks the payer to confirm the payment" if result["status"] == "requires_action" else \
        f"the payment is {result['status']}"
    return await _failed(row, number, reason)


async def _store(row: dict[str, Any], **values: Any) -> dict[str, Any]:
    return (await _write(row, **values))[0]


async def _write(row: dict[str, Any], **values: Any) -> tuple[dict[str, Any], bool]:
    """Write an outcome and report it to billing, only if the payment is still as ``row`` read it
    (status and amount refunded): of two writers at once (an attempt and a webhook, two refunds)
    the first wins and the second gets the row as it is now, unreported. The row, and whether
    this write went in."""
    values["updated_at"] = utcnow()
    changed = await StripePayment.update({getattr(StripePayment, k): v for k, v in values.items()}).where(
        (StripePayment.id == row["id"]) & (StripePayment.status == row["status"])
        & (StripePayment.refunded_minor == row["refunded_minor"])).returning(StripePayment.id)
    stored = await payment_row(row["statement_id"])
    assert stored is not None
    if changed:
        await report(stored)
    return stored, bool(changed)


async def _failed(row: dict[str, Any], number: int, reason: str) -> dict[str, Any]:
    """An attempt failed: retry after the next delay, or give up after the last; dun the payer."""
    delays = stripe_settings().delays()
    retry_at = utcnow() + timedelta(seconds=delays[number - 1]) if number <= len(delays) else None
    stored, changed = await _write(row, status="pending" if retry_at else "failed", attempts=number,
                                   next_attempt_at=retry_at, last_error=reason[:1000])
    if not changed:
        return stored  # something else decided meanwhile (a webhook said it is paid)
    log.info("payment of statement %s failed (attempt %s): %s", row["statement_id"], number, reason)
    await dun(stored)
    return stored


async def dun(row: dict[str, Any]) -> None:
    """The dunning e-mail after a failed attempt: what failed, when it is tried again (or that it
    is not), and a link to save a new payment method. Skipped (logged) without e-mail or address."""
    if not mail_enabled():
        log.warning("no dunning e-mail for statement %s: e-mail is off (CSMS_SMTP_HOST)", row["statement_id"])
        return
    try:
        name, email = await party_contact(row["party_kind"], row["party_id"])
    except PaymentError:
        return
    if not email:
        log.warning("no dunning e-mail for statement %s: the payer has no e-mail address", row["statement_id"])
        return
    link = ""
    try:
        link = await setup_link(row["party_kind"], row["party_id"])
    except (PaymentError, stripe.StripeError) as exc:
        log.warning("no payment method link in the dunning e-mail: %s", exc)
    amount = decimal_amount(row["amount_minor"], row["currency"])
    final = row["status"] == "failed"
    with in_language(await recipient_language(email)):  # the payer's (an admin user's choice), else the installation's
        subject = (gettext("Payment failed: statement %(number)s", number=row["number"]) if final
                   else gettext("Payment of statement %(number)s did not go through", number=row["number"]))
        text = _MAIL.get_template("dunning.txt").render(name=name, row=row, amount=amount, final=final, link=link)
    try:
        await send_mail(email, subject, text)
    except MailError as exc:
        log.warning("dunning e-mail for statement %s not sent: %s", row["statement_id"], exc)
        return
    await StripePayment.update({StripePayment.dunning_sent: StripePayment.dunning_sent + 1}).where(
        StripePayment.id == row["id"])


# Stripe's zero-decimal and three-decimal currencies; every other has two decimals
ZERO_DECIMAL = {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF",
                "XOF", "XPF"}
THREE_DECIMAL = {"BHD", "JOD", "KWD", "OMR", "TND"}


def decimal_places(currency: str) -> int:
    """Digits after the decimal point of ``currency``'s amounts (Stripe's minor units)."""
    return 0 if currency.upper() in ZERO_DECIMAL else 3 if currency.upper() in THREE_DECIMAL else 2


def decimal_amount(minor: int, currency: str) -> str:
    """``484`` EUR as ``"4.84"``, JPY ``484`` as ``"484"``, KWD ``4840`` as ``"4.840"``."""
    digits = decimal_places(currency)
    return str(Decimal(minor).scaleb(-digits)) if digits else str(minor)


async def run_due() -> int:
    """Run every attempt that is due (retries, and attempts whose node died); how many ran."""
    due = await StripePayment.select(StripePayment.statement_id).where(
        (StripePayment.status == "pending") & (StripePayment.next_attempt_at <= utcnow())).limit(100)
    ran = 0
    for item in due:
        if await attempt(item["statement_id"]) is not None:
            ran += 1
    return ran


class Retrier:
    """Looks for due retries every ``retry_interval`` seconds while the server runs."""

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self._run(), name="payments_stripe.retrier")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
            self.task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(stripe_settings().retry_interval)
            if not provider.configured():
                continue
            try:
                await run_due()
            except Exception:  # noqa: BLE001 - a database hiccup must not end the loop
                log.exception("payment retries failed; trying again later")


retrier = Retrier()


# -- webhooks -----------------------------------------------------------------------------------


async def handle_event(event: dict[str, Any]) -> str:
    """Apply a verified Stripe event; returns what was done (for the log and the answer)."""
    kind = event["type"]
    obj = event["data"]["object"]
    if kind == "payment_intent.succeeded":
        row = await _by_intent(obj["id"])
        if row is None or row["status"] in ("paid", "refunded", "partially_refunded"):
            return "ignored"
        await _store(row, status="paid", next_attempt_at=None, last_error="")
        return "paid"
    if kind == "payment_intent.payment_failed":
        row = await _by_intent(obj["id"])
        # a confirmation answered at once was handled then; only an outcome that was open is news
        if row is None or row["status"] != "processing":
            return "ignored"
        error = obj.get("last_payment_error") or {}
        await _failed(row, row["attempts"], str(error.get("message") or "the payment failed"))
        return "failed"
    if kind == "charge.refunded":
        row = await _by_intent(obj.get("payment_intent") or "")
        if row is None:
            return "ignored"
        row = await _refunded(row, int(obj.get("amount_refunded") or 0), fully=bool(obj.get("refunded")))
        return str(row["status"])
    if kind == "checkout.session.completed" and obj.get("mode") == "setup" and obj.get("setup_intent"):
        customer = obj.get("customer")
        if not customer or await provider.make_default(customer, obj["setup_intent"]) is None:
            return "ignored"
        # the payer saved a method: a payment waiting for its retry is tried at once
        parties = await StripeCustomer.select(StripeCustomer.party_kind, StripeCustomer.party_id).where(
            StripeCustomer.customer_id == customer)
        for party in parties:
            await StripePayment.update({StripePayment.next_attempt_at: utcnow()}).where(
                (StripePayment.party_kind == party["party_kind"]) & (StripePayment.party_id == party["party_id"])
                & (StripePayment.status == "pending") & (StripePayment.next_attempt_at > utcnow())
                & (StripePayment.attempts > 0))
        return "payment method saved"
    return "ignored"


async def _refunded(row: dict[str, Any], total: int, *, fully: bool = False) -> dict[str, Any]:
    """Store Stripe's refunded ``total`` of the payment (``fully``: Stripe says all of it). A
    refund or a webhook may have stored since ``row`` was read: written again on the row as it
    is now until it is in, or the row already holds as much (never lowered). The row after."""
    for _ in range(10):
        amount = max(total, row["refunded_minor"])
        status = "refunded" if fully or amount >= row["amount_minor"] else "partially_refunded"
        row, changed = await _write(row, status=status, refunded_minor=amount)
        if changed or row["refunded_minor"] >= total:
            break
    return row


async def _by_intent(intent: str) -> dict[str, Any] | None:
    if not intent:
        return None
    return await StripePayment.select().where(StripePayment.payment_intent == intent).first()


# -- refunds ------------------------------------------------------------------------------------


async def refund(statement_id: int, amount_minor: int | None, reason: str = "") -> dict[str, Any]:
    """Refund a paid statement, in full (``amount_minor`` None) or in part."""
    row = await payment_row(statement_id)
    if row is None:
        raise PaymentError(f"statement {statement_id} was not collected through Stripe", status=404)
    if row["status"] not in ("paid", "partially_refunded"):
        raise PaymentError(f"the payment of statement {statement_id} is {row['status']}: only a paid one is refunded",
                           status=409)
    rest = row["amount_minor"] - row["refunded_minor"]
    amount = rest if amount_minor is None else amount_minor
    if amount <= 0 or amount > rest:
        raise PaymentError(f"amount_minor must be between 1 and {rest} (what is left to refund)")
    key = f"csms-statement-{statement_id}-refund-{row['refunded_minor']}-{amount}"
    try:
        result = await provider.refund(row["payment_intent"], amount, key=key, reason=reason)
    except stripe.StripeError as exc:
        raise PaymentError(f"Stripe refused the refund: {exc.user_message or exc}", status=502) from None
    if result["status"] not in ("succeeded", "pending"):
        raise PaymentError(f"Stripe answered the refund with status {result['status']}", status=502)
    try:
        # Stripe's total: this refund and any made meanwhile (another request refunding the same
        # statement at the same time stores its own; the answer holds both)
        total = await provider.refunded_total(result["charge"])
    except (stripe.StripeError, KeyError, TypeError):
        total = row["refunded_minor"] + amount  # refunded all the same; the webhook brings Stripe's total
    return await _refunded(row, total)


def payment_json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
