"""A driver's data in this plugin (GDPR): their Stripe customer and their statements' payments.

Export: the Stripe customer id and each payment (statement number, amount, status, attempts,
refunds). Erasure: the link to the Stripe customer is deleted, so nothing here leads to the
driver's name, e-mail or saved payment methods at Stripe any more (delete the customer in
Stripe's dashboard too); the payments stay as accounting records (they name the driver by id only).
"""

from __future__ import annotations

from typing import Any

from plugins.payments_stripe.payments import payment_json
from plugins.payments_stripe.tables import StripeCustomer, StripePayment

EXPORTED = ("number", "amount_minor", "currency", "status", "attempts", "refunded_minor", "payment_intent",
            "created_at", "updated_at")


async def driver_export(driver_id: int) -> dict[str, Any] | None:
    customer = await StripeCustomer.select(StripeCustomer.customer_id).where(
        StripeCustomer.party == f"driver:{driver_id}").first()
    payments = await StripePayment.select(*(getattr(StripePayment, c) for c in EXPORTED)).where(
        (StripePayment.party_kind == "driver") & (StripePayment.party_id == driver_id)).order_by(StripePayment.created_at)
    if customer is None and not payments:
        return None
    return {"stripe_customer": customer["customer_id"] if customer else None,
            "payments": [payment_json(row) for row in payments]}


async def driver_erase(driver_id: int) -> None:
    await StripeCustomer.delete().where(StripeCustomer.party == f"driver:{driver_id}")
