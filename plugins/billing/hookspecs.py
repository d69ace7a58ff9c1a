"""Hooks the billing plugin adds to the CSMS's plugin manager, for payment-provider plugins.

Declared with ``csms.plugins.add_hookspecs`` when the billing plugin loads (before the start-up
check of hook names); implement them with ``from csms import hookimpl`` like any core hook, marked
``@hookimpl(optionalhook=True)`` so a provider plugin still starts when billing is disabled.
Without an implementation the billing plugin issues statements only (``payment_status``
"statement_only").
"""

from __future__ import annotations

from csms.plugin_api import Rule, hookspec


@hookspec(Rule.FIRST_ANSWER)
def billing_request_payment(statement, lines):
    """First answer wins. A statement was issued: collect its balance (``statement["direction"]``
    "collect": the party pays) or pay it out ("payout": the party is owed, e.g. home-charging
    reimbursements). ``statement`` is the statement as the REST API returns it (amounts as
    decimal strings, ``total_incl_minor`` as integer minor units), ``lines`` its lines. Return a
    ``plugins.billing.statements.PaymentRequest`` or ``None`` to leave it to the next provider.
    May return an awaitable. Called off the request path, only for statements with a balance;
    an implementation that raises is logged and skipped (the statement keeps "statement_only")."""
