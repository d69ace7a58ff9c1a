"""The Stripe plugin's tables: the Stripe customer of each payer and one payment per statement."""

from __future__ import annotations

from piccolo.columns import BigInt, Integer, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class StripeCustomer(Table, tablename="payments_stripe_customer"):
    """The Stripe Customer (``cus_...``) of a billed party: a driver or an organization."""

    party = Varchar(length=48, unique=True)  # "driver:3", "organization:7": one customer per party
    party_kind = Varchar(length=24)  # driver|organization|leasing_partner, as on billing's statements
    party_id = Integer()
    customer_id = Varchar(length=64, unique=True)
    created_at = Timestamptz(default=TimestamptzNow())


class StripePayment(Table, tablename="payments_stripe_payment"):
    """The collection of one statement's balance: one PaymentIntent, confirmed once per attempt."""

    statement_id = Integer(unique=True)
    number = Varchar(length=64, default="")  # the statement's number, for e-mails and the admin
    party_kind = Varchar(length=24)
    party_id = Integer()
    customer_id = Varchar(length=64, default="")
    payment_intent = Varchar(length=64, default="", index=True)  # webhooks find the payment by it
    amount_minor = BigInt()
    currency = Varchar(length=3)
    # pending (an attempt running or a retry due) | processing (Stripe decides, a webhook tells) |
    # paid | failed (given up) | refunded | partially_refunded
    status = Varchar(length=24, default="pending")
    attempts = Integer(default=0)
    next_attempt_at = Timestamptz(null=True, default=None, index=True)
    last_error = Text(default="")
    refunded_minor = BigInt(default=0)
    dunning_sent = Integer(default=0)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


STRIPE_TABLES = (StripeCustomer, StripePayment)
