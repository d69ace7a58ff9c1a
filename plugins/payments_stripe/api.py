"""The Stripe plugin's REST routes under ``/api/v1/payments/stripe`` and the driver portal's
Payment page (see README.md)."""

from __future__ import annotations

import logging
from typing import Any

import stripe
from litestar import Request, Response, Router, get, post
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_200_OK

from csms.plugin_api import (
    DRIVER_EXCEPTION_HANDLERS, GLOBAL_ONLY, N_, PUBLIC, audited, current_driver, driver_page, public_route, require,
)
from plugins.payments_stripe import payments, provider
from plugins.payments_stripe.payments import PaymentError, payment_json
from plugins.payments_stripe.tables import StripePayment

log = logging.getLogger("csms.payments_stripe")
PARTY_KINDS = ("driver", "organization", "leasing_partner")


def payment_error(_: Request, exc: PaymentError) -> Response:
    return Response({"status_code": exc.status, "detail": exc.message}, status_code=exc.status)


def _body(data: Any) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PaymentError("the body must be a JSON object")
    return data


@post("/webhook", status_code=HTTP_200_OK, opt={"tenant": PUBLIC})
async def webhook(request: Request) -> Response:
    """Stripe's events, accepted only with a valid ``Stripe-Signature``; anything else is a 400
    and changes nothing."""
    payload = await request.body()
    try:
        event = provider.verified_event(payload, request.headers.get("stripe-signature", ""))
    except (ValueError, stripe.SignatureVerificationError) as exc:
        log.warning("Stripe webhook refused: %s", exc)
        return Response({"status_code": 400, "detail": "invalid payload or Stripe-Signature"}, status_code=400)
    try:
        done = await payments.handle_event(event)
    except stripe.StripeError as exc:  # Stripe retries the webhook later
        log.warning("Stripe webhook %s not applied: %s", event["id"], exc)
        return Response({"status_code": 503, "detail": "try again later"}, status_code=503)
    return Response({"received": event["id"], "result": done})


@get("/statements/{statement_id:int}", guards=[require("viewer")], opt={"tenant": GLOBAL_ONLY})
async def get_payment(statement_id: int) -> dict[str, Any]:
    """The statement's payment through Stripe: status, attempts, the PaymentIntent, refunds."""
    row = await payments.payment_row(statement_id)
    if row is None:
        raise PaymentError(f"statement {statement_id} was not collected through Stripe", status=404)
    return payment_json(row)


@get("/statements", guards=[require("viewer")], opt={"tenant": GLOBAL_ONLY})
async def list_payments(status: str | None = None) -> list[dict[str, Any]]:
    """The payments, newest first (``?status=failed``), at most 500."""
    query = StripePayment.select().order_by(StripePayment.id, ascending=False).limit(500)
    if status:
        query = query.where(StripePayment.status == status)
    return [payment_json(row) for row in await query]


@post("/statements/{statement_id:int}/refund", guards=[require("operator")], status_code=HTTP_200_OK,
      opt={"tenant": GLOBAL_ONLY})
async def refund(request: Request, statement_id: int, data: Any = None) -> dict[str, Any]:
    """Refund a paid statement: ``{"amount_minor": 100, "reason": "..."}`` (no amount: all that
    is left). Audited."""
    body = _body(data)
    amount = body.get("amount_minor")
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int)):
        raise PaymentError("amount_minor must be an integer (minor units of the statement's currency)")
    reason = str(body.get("reason") or "")[:500]
    before = await payments.payment_row(statement_id)
    after = await payments.refund(statement_id, amount, reason)
    refunded = after["refunded_minor"] - (before or {}).get("refunded_minor", 0)
    await audited(request, "update", "stripe_payment", statement_id, before=before, after=after,
                  summary=f"refund of {refunded} minor units of {after['currency']} for statement {after['number']}"
                          f" through Stripe{': ' + reason if reason else ''}")
    return payment_json(after)


@post("/setup-links", guards=[require("operator")], status_code=HTTP_200_OK, opt={"tenant": GLOBAL_ONLY})
async def setup_link(request: Request, data: Any) -> dict[str, str]:
    """A Stripe Checkout link (setup mode) for a payer to save a payment method:
    ``{"party_kind": "organization", "party_id": 7}`` (send it to them)."""
    body = _body(data)
    kind, party_id = body.get("party_kind"), body.get("party_id")
    if kind not in PARTY_KINDS:
        raise PaymentError(f"party_kind must be one of {', '.join(PARTY_KINDS)}")
    if isinstance(party_id, bool) or not isinstance(party_id, int):
        raise PaymentError("party_id must be an integer")
    return {"url": await payments.setup_link(kind, party_id, base_url=str(request.base_url))}


def stripe_api_router() -> Router:
    public = public_route(Router(path="/api/v1/payments/stripe", route_handlers=[webhook]),
                          "Stripe's webhook: every event is checked against the Stripe-Signature header "
                          "(HMAC with the endpoint's secret) before anything is read from it")
    return Router(path="/", route_handlers=[public, Router(
        path="/api/v1/payments/stripe", route_handlers=[get_payment, list_payments, refund, setup_link])],
        exception_handlers={PaymentError: payment_error})


# -- the driver portal --------------------------------------------------------------------------

# what came of Stripe Checkout (``?setup=``), translated where shown
SETUP_WORDS = {"done": N_("Thank you: your payment method is saved. It is charged for your next statements."),
               "cancelled": N_("No payment method was saved.")}


@get("/driver/payment")
async def payment_page(request: Request, setup: str = "") -> Template:
    driver = current_driver(request)
    rows = await StripePayment.select().where(
        (StripePayment.party_kind == "driver") & (StripePayment.party_id == driver["id"])).order_by(
        StripePayment.id, ascending=False).limit(24)
    return driver_page(request, "driver/payments_stripe/payment.html", title=N_("Payment"),
                       payments=rows, message=SETUP_WORDS.get(setup, ""), available=provider.configured())


@get("/driver/payment/setup", status_code=303)
async def start_setup(request: Request) -> Redirect | Template:
    """Off to Stripe Checkout, where the driver saves a card (or another method) for payments.

    A link, not a form: the portal's Content-Security-Policy (``form-action 'self'``) would stop a
    form's redirect to Stripe. Following it changes nothing in the CSMS but the driver's Stripe
    customer, made once; a Checkout Session nobody completes expires at Stripe."""
    driver = current_driver(request)
    try:
        url = await payments.setup_link("driver", driver["id"], base_url=str(request.base_url))
    except (PaymentError, stripe.StripeError) as exc:
        log.warning("no Checkout link for driver %s: %s", driver["id"], exc)
        return driver_page(request, "driver/payments_stripe/payment.html", title=N_("Payment"), payments=[],
                           message="", error=N_("Saving a payment method is not possible right now; please try later."),
                           available=provider.configured(), status_code=503)
    return Redirect(url, status_code=303)


def stripe_driver_router() -> Router:
    """The driver portal's Payment page (the core adds the driver's sign-in)."""
    return Router(path="/", route_handlers=[payment_page, start_setup], opt={"tenant": PUBLIC},
                  exception_handlers=DRIVER_EXCEPTION_HANDLERS, include_in_schema=False)
