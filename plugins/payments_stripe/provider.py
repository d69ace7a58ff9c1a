"""The calls this plugin makes to Stripe, through the official ``stripe`` library.

The library is synchronous: every call runs in a worker thread (``asyncio.to_thread``), never on
the event loop. It is configured from the settings before each call: the secret key and
``stripe.api_base`` (Stripe's own URL by default; the tests point it at a local stand-in).
Writes carry an idempotency key, so a call repeated after a lost answer (the library's own
network retries, or this plugin's after a crash) never creates or charges twice.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import stripe

from plugins.payments_stripe.config import stripe_settings


def configured() -> bool:
    return bool(stripe_settings().api_key)


def _configure() -> None:
    settings = stripe_settings()
    stripe.api_key = settings.api_key
    stripe.api_base = settings.api_base.rstrip("/")
    stripe.max_network_retries = 2


async def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """``fn`` in a worker thread; its answer as plain dicts and lists."""
    _configure()
    return (await asyncio.to_thread(fn, *args, **kwargs)).to_dict()


async def create_customer(*, name: str, email: str | None, party: str) -> str:
    customer = await _call(stripe.Customer.create, name=name, email=email or None,
                           metadata={"csms_party": party}, idempotency_key=f"csms-customer-{party}")
    return str(customer["id"])


async def setup_session(customer: str, *, success_url: str, cancel_url: str) -> str:
    """A Checkout Session in ``setup`` mode: the page where the payer saves a payment method."""
    session = await _call(stripe.checkout.Session.create, mode="setup", customer=customer,
                          payment_method_types=stripe_settings().method_types(),
                          success_url=success_url, cancel_url=cancel_url)
    return str(session["url"])


async def default_payment_method(customer: str) -> str | None:
    """The customer's default payment method, else the one saved last; None when there is none."""
    row = await _call(stripe.Customer.retrieve, customer)
    settings = row.get("invoice_settings") or {}
    if settings.get("default_payment_method"):
        method = settings["default_payment_method"]
        return str(method if isinstance(method, str) else method["id"])
    methods = await _call(stripe.Customer.list_payment_methods, customer, limit=1)
    return str(methods["data"][0]["id"]) if methods["data"] else None


async def make_default(customer: str, setup_intent: str) -> str | None:
    """The payment method a completed setup saved becomes the customer's default."""
    intent = await _call(stripe.SetupIntent.retrieve, setup_intent)
    method = intent.get("payment_method")
    if not method:
        return None
    method = method if isinstance(method, str) else method["id"]
    await _call(stripe.Customer.modify, customer, invoice_settings={"default_payment_method": method})
    return str(method)


async def create_payment_intent(statement: dict[str, Any], customer: str) -> str:
    """The statement's one PaymentIntent (idempotency key per statement), not confirmed yet."""
    intent = await _call(
        stripe.PaymentIntent.create, amount=statement["amount_minor"], currency=statement["currency"].lower(),
        customer=customer, description=f"Statement {statement['number']}",
        metadata={"csms_statement_id": str(statement["statement_id"]), "csms_number": statement["number"]},
        idempotency_key=f"csms-statement-{statement['statement_id']}")
    return str(intent["id"])


async def confirm(payment_intent: str, method: str, *, key: str) -> dict[str, Any]:
    """Charge the saved method off-session; raises ``stripe.StripeError`` (a decline is a ``CardError``)."""
    return await _call(stripe.PaymentIntent.confirm, payment_intent, payment_method=method, off_session=True,
                       idempotency_key=key)


async def refund(payment_intent: str, amount_minor: int, *, key: str, reason: str = "") -> dict[str, Any]:
    metadata = {"csms_reason": reason[:500]} if reason else {}
    return await _call(stripe.Refund.create, payment_intent=payment_intent, amount=amount_minor, metadata=metadata,
                       idempotency_key=key)


async def refunded_total(charge: str) -> int:
    """What Stripe holds as refunded of ``charge`` (every refund of it so far, in minor units)."""
    return int((await _call(stripe.Charge.retrieve, charge)).get("amount_refunded") or 0)


def verified_event(payload: bytes, signature: str) -> dict[str, Any]:
    """The webhook's event once its ``Stripe-Signature`` checks out (HMAC of the raw body with the
    endpoint's secret, within the library's tolerance); ``ValueError`` or
    ``stripe.SignatureVerificationError`` otherwise."""
    secret = stripe_settings().webhook_secret
    if not secret:
        raise stripe.SignatureVerificationError("no webhook secret is configured", signature, payload)
    return stripe.Webhook.construct_event(payload, signature, secret).to_dict()
