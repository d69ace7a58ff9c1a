"""The Stripe plugin's hook implementations (entry point ``payments_stripe`` in the ``csms`` group).

It answers the billing plugin's ``billing_request_payment`` and reports later outcomes through
billing's ``billing_payment_update``, both by hook name: it never imports billing, and starts
(collecting nothing) when billing is disabled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from csms.plugin_api import N_, NavItem, hookimpl
from plugins.payments_stripe.config import StripeSettings

TEMPLATE_DIR = Path(__file__).parent / "templates"
LOCALE_DIR = Path(__file__).parent / "locale"
SETTINGS_CLASSES = (StripeSettings,)


@hookimpl
def piccolo_apps():
    return ["plugins.payments_stripe.piccolo_app"]


@hookimpl(optionalhook=True)
def billing_request_payment(statement, lines):
    """Collect what the party owes with its saved payment method (first attempt now, retries later)."""
    from plugins.payments_stripe.payments import collect

    async def pay() -> Any:
        return await collect(statement)

    return pay


@hookimpl
def driver_data_export(driver):
    """The driver's Stripe customer id and payments, for their data export (GDPR)."""
    from plugins.payments_stripe.personal_data import driver_export

    async def export() -> Any:
        return await driver_export(driver["id"])

    return export


@hookimpl
def driver_erased(driver):
    """Forget the driver's Stripe customer; the payments stay as accounting records."""
    from plugins.payments_stripe.personal_data import driver_erase

    async def erase() -> None:
        await driver_erase(driver["id"])

    return erase


@hookimpl
def startup(app, settings):
    from plugins.payments_stripe.payments import retrier, use_public_url

    use_public_url(settings.public_url)
    return retrier.start


@hookimpl
def shutdown(app):
    from plugins.payments_stripe.payments import retrier

    return retrier.stop


@hookimpl
def register_routes(settings):
    from plugins.payments_stripe.admin import stripe_admin_router
    from plugins.payments_stripe.api import stripe_api_router, stripe_driver_router

    return [stripe_api_router(), stripe_driver_router(), stripe_admin_router()]


@hookimpl
def template_dirs():
    return [str(TEMPLATE_DIR)]


@hookimpl
def locale_dirs():
    return [str(LOCALE_DIR)]


@hookimpl
def admin_panels(page, request, context):
    """The payment and its refund form on the billing plugin's statement page."""
    from plugins.payments_stripe.admin import panel

    return panel(page, request, context)


@hookimpl
def driver_nav(request):
    return [NavItem(N_("Payment"), "/driver/payment", order=35)]


@hookimpl
def locale_dirs():
    return [str(LOCALE_DIR)]
