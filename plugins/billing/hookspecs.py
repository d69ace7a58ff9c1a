"""Hooks the billing plugin adds to the CSMS's plugin manager, for payment-provider plugins.

Declared with ``csms.plugins.add_hookspecs`` when the billing plugin loads (before the start-up
check of hook names); implement them with ``from csms import hookimpl`` like any core hook, marked
``@hookimpl(optionalhook=True)`` so a provider plugin still starts when billing is disabled.
Without an implementation the billing plugin issues statements only (``payment_status``
"statement_only"). A provider reports later outcomes (a webhook, a retry) with
``billing_payment_update``, which this plugin implements itself: a provider plugin calls it with
``call_hook`` and never imports billing.
"""

from __future__ import annotations

from csms.plugin_api import Rule, hookspec


@hookspec(Rule.FIRST_ANSWER)
def billing_request_payment(statement, lines):
    """First answer wins. A statement was issued: collect its balance (``statement["direction"]``
    "collect": the party pays) or pay it out ("payout": the party is owed, e.g. home-charging
    reimbursements). ``statement`` is the statement as the REST API returns it (amounts as
    decimal strings, ``total_incl_minor`` as integer minor units), ``lines`` its lines. Return a
    ``plugins.billing.statements.PaymentRequest``, a mapping with the same keys (``status``,
    ``provider``, ``reference``: for a provider that does not import billing), or ``None`` to leave
    it to the next provider. The answer is stored unless ``billing_payment_update`` recorded an
    outcome first.
    May return an awaitable. Called off the request path, only for statements with a balance;
    an implementation that raises is logged and skipped (the statement keeps "statement_only")."""


@hookspec(Rule.FIRST_ANSWER)
def billing_payment_update(statement_id, status, provider, reference):
    """First answer wins; implemented by the billing plugin itself, called by payment providers
    (``await call_hook("billing_payment_update", ...)``) when a payment's outcome changes after
    ``billing_request_payment`` answered: a retry, a webhook, a refund. ``status`` is one of
    ``pending``, ``paid``, ``failed``, ``refunded``, ``partially_refunded``; ``provider`` and
    ``reference`` replace the stored ones. Answers the statement as the REST API returns it, or
    ``None`` for a statement that does not exist or is a draft; an unknown status raises
    ``ValueError`` (logged by ``call_hook``, so the caller gets ``None``)."""
