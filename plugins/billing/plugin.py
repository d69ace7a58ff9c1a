"""The billing plugin's hook implementations (entry point ``billing`` in the ``csms`` group).

Tariff choice follows the precedence documented in :mod:`plugins.billing.assignments`
(organization / driver group > EVSE > station > site > default); pricing is the OCPI 2.2.1 engine
in :mod:`plugins.billing.pricing`; settlement and its four payer cases are in
:mod:`plugins.billing.settlements`. The pricing hooks are ``trylast`` like every built-in, so
another plugin can take over tariff choice or pricing through the same hooks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from csms.plugin_api import N_, NavItem, PlanFeature, Station, add_hookspecs, feature_enabled, hookimpl
from plugins.billing import hookspecs as billing_hookspecs
from plugins.billing.assignments import session_context
from plugins.billing.config import BillingSettings
from plugins.billing.cost_updates import cost_updates
from plugins.billing.costing import choose_tariff, quote_session
from plugins.billing.settlements import settle, settlement_row, stored_cost
from plugins.billing.station_tariff import station_tariff as station_tariff_for
from plugins.billing.station_tariff import tariff_message as tariff_message_for

add_hookspecs(billing_hookspecs)

TEMPLATE_DIR = Path(__file__).parent / "templates"
LOCALE_DIR = Path(__file__).parent / "locale"
SETTINGS_CLASSES = (BillingSettings,)
BILLING = "billing"  # the plan feature: sessions at stations of organizations without it get no tariff


@hookimpl
def piccolo_apps():
    return ["plugins.billing.piccolo_app"]


@hookimpl(trylast=True)
def select_tariff(session):
    """The home station's rate or tariff, else the assignment with the highest precedence; none
    (the session has no cost) at a station whose organization's plan does not include billing."""

    async def choose() -> Any:
        context = await session_context(session)
        station = await Station.select(Station.organization).where(Station.station_id == context.station_id).first()
        if station is not None and not await feature_enabled(station["organization"], BILLING):
            return None
        return await choose_tariff(context)

    return choose


@hookimpl(trylast=True)
def price_session(session, final):
    """Live or final cost; a settled session's cost is the one it was settled with."""

    async def price() -> Any:
        if session.get("state") == "completed":
            row = await settlement_row(session["id"])
            if row is not None and row["status"] == "settled":
                return stored_cost(row)
        quote = await quote_session(session, final=final)
        return quote.cost if quote is not None else None

    return price


@hookimpl(trylast=True)
def station_tariff(station_id, evse_id):
    """The public tariff at the station as OCPP 2.1 has it (SetDefaultTariff)."""

    async def tariff() -> Any:
        return await station_tariff_for(station_id, evse_id)

    return tariff


@hookimpl(trylast=True)
def tariff_message(station_id, evse_id, id_token, transaction_id, languages):
    """The text of the driver's tariff at the station (its OCPI ``tariff_alt_text``), in the
    display's language where the tariff has it; none at a station whose organization's plan does
    not include billing."""

    async def message() -> Any:
        station = await Station.select(Station.organization).where(Station.station_id == station_id).first()
        if station is not None and not await feature_enabled(station["organization"], BILLING):
            return None
        return await tariff_message_for(station_id, evse_id, id_token, languages)

    return message


@hookimpl
def published_tariffs():
    """The current version of every tariff that is not archived, for roaming partners and maps."""
    from plugins.billing.tariffs import current_ocpi_tariffs

    return current_ocpi_tariffs()


@hookimpl
def settle_session(session, cost):
    """Record who owes whom for the session, once (a repeated call finds the settlement)."""

    async def run() -> None:
        await settle(session, cost)

    return run


@hookimpl
def billing_payment_update(statement_id, status, provider, reference):
    """A payment provider's later outcome (retry, webhook, refund) stored on the statement."""
    from plugins.billing.statements import record_payment

    async def record() -> Any:
        return await record_payment(int(statement_id), str(status), str(provider), str(reference or ""))

    return record


@hookimpl
def driver_data_export(driver):
    """The driver's statements and home stations, for their data export (GDPR)."""
    from plugins.billing.personal_data import driver_export

    async def export() -> Any:
        return await driver_export(driver["id"])

    return export


@hookimpl
def driver_erased(driver):
    """Anonymise the party name of the driver's statements; amounts, numbers and lines stay."""
    from plugins.billing.personal_data import driver_erase

    async def erase() -> None:
        await driver_erase(driver["id"])

    return erase


@hookimpl
def register_routes(settings):
    from plugins.billing.admin import billing_admin_router
    from plugins.billing.api import billing_api_router
    from plugins.billing.driver_pages import billing_driver_router

    return [billing_api_router(), billing_admin_router(), billing_driver_router()]


@hookimpl
def template_dirs():
    return [str(TEMPLATE_DIR)]


@hookimpl
def locale_dirs():
    return [str(LOCALE_DIR)]


@hookimpl
def plan_features():
    return [PlanFeature(BILLING, N_("Billing: tariffs and session costs"))]


@hookimpl
def admin_nav(request):
    return [NavItem(N_("Billing"), "/admin/billing", order=60)]


@hookimpl
def driver_nav(request):
    return [NavItem("Statements", "/driver/statements", order=30)]


@hookimpl
def admin_panels(page, request, context):
    from plugins.billing.admin import panel

    return panel(page, request, context)


@hookimpl
def event_batch(events):
    for event in events:
        cost_updates.on_event(event)


@hookimpl
def shutdown(app):
    return cost_updates.stop
