"""The Stripe payment on the billing plugin's statement page in the admin, with its refund form.

The billing plugin asks for panels on its statement page (``admin_panels``, page "statement",
``context["s"]`` the statement); this plugin answers with the statement's payment through Stripe
(status, amount, what was refunded, attempts, the next retry, the last error, the PaymentIntent)
and, for an operator, a form to refund all or part of a paid payment (amount in the statement's
currency, a reason, a confirmation). Payments are the installation's (the REST routes are
``GLOBAL_ONLY``): an organization's user sees no panel. The form posts to
``/admin/payments/stripe/statements/{id}/refund``: with htmx the answer is the panel again (the
outcome, or the error in words and the values typed), without it a redirect back to the
statement, or the panel on a page of its own when the refund was refused. The refund itself is
the REST route's (``payments.refund``), audited the same way.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from litestar import Request, Response, Router, post
from litestar.exceptions import NotFoundException
from litestar.response import Redirect, Template
from markupsafe import Markup

from csms.plugin_api import (
    ADMIN_EXCEPTION_HANDLERS, GLOBAL_ONLY, N_, audited, current_user, gettext, is_htmx, render, tenant_scope,
)
from plugins.payments_stripe import payments
from plugins.payments_stripe.payments import PaymentError, decimal_amount, decimal_places

STATUS_WORDS = {"pending": (N_("Pending"), "warn"), "processing": (N_("Processing at Stripe"), "warn"),
                "paid": (N_("Paid"), "ok"), "failed": (N_("Failed"), "bad"),
                "refunded": (N_("Refunded"), "muted"), "partially_refunded": (N_("Partly refunded"), "ok")}
REFUNDABLE = ("paid", "partially_refunded")


class RefundInputError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


def minor_units(text: str, currency: str) -> int:
    """``"4.84"`` (or ``"4,84"``) EUR as 484; a refund form's amount."""
    digits = decimal_places(currency)
    cleaned = text.strip().replace(" ", "").replace(",", ".")
    example = decimal_amount(1250 * 10 ** max(digits - 2, 0) if digits else 12, currency)
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise RefundInputError("amount", gettext("Enter the amount as a number, like %(example)s.",
                                                 example=example)) from None
    if not value.is_finite() or value != value.quantize(Decimal(1).scaleb(-digits)):
        raise RefundInputError("amount", gettext("Enter the amount with at most %(n)s decimals, like %(example)s.",
                                                 n=digits, example=example))
    return int(value.scaleb(digits))


def words(row: dict[str, Any]) -> tuple[str, str]:
    label, badge = STATUS_WORDS.get(row["status"], (row["status"], "muted"))
    return gettext(label), badge


async def panel_html(request: Request, statement_id: int, *, outcome: str = "", errors: dict[str, str] | None = None,
                     values: dict[str, str] | None = None) -> Markup | None:
    """The panel of a statement's Stripe payment; None when it was not collected through Stripe."""
    row = await payments.payment_row(statement_id)
    if row is None:
        return None
    user = await current_user(request)
    rest = row["amount_minor"] - row["refunded_minor"]
    status, badge = words(row)
    engine: Any = request.app.template_engine
    return Markup(engine.get_template("admin/payments_stripe/_statement_panel.html").render(
        request=request, p=row, status=status, badge=badge, rest=rest,
        money=lambda minor: decimal_amount(minor, row["currency"]),
        can_refund=bool(user and user.can("operator")) and row["status"] in REFUNDABLE and rest > 0,
        outcome=outcome, errors=errors or {}, values=values or {}))


def panel(page: str, request: Request, context: dict[str, Any]) -> Any:
    """``admin_panels`` on the billing plugin's statement page, for the installation's users."""
    statement = context.get("s")
    if page != "statement" or not statement:
        return None

    async def payment_panel() -> list[Markup]:
        if not (await tenant_scope(request)).is_global:
            return []
        html = await panel_html(request, statement["id"])
        return [html] if html is not None else []

    return payment_panel


@post("/statements/{statement_id:int}/refund", opt={"tenant": GLOBAL_ONLY, "role": "operator"})
async def refund_form(request: Request, statement_id: int) -> Response[Any]:
    form = dict(await request.form())
    values = {"amount": str(form.get("amount", ""))[:32], "reason": str(form.get("reason", ""))[:500]}
    before = await payments.payment_row(statement_id)
    if before is None:
        raise NotFoundException(gettext("This statement was not collected through Stripe."))
    errors: dict[str, str] = {}
    status_code = 200
    try:
        amount = minor_units(values["amount"], before["currency"]) if values["amount"].strip() else None
        rest = before["amount_minor"] - before["refunded_minor"]
        if amount is not None and not 0 < amount <= rest:
            raise RefundInputError("amount", gettext(
                "The amount must be more than 0 and at most %(rest)s %(currency)s, what is left to refund.",
                rest=decimal_amount(rest, before["currency"]), currency=before["currency"]))
        after = await payments.refund(statement_id, amount, values["reason"])
    except RefundInputError as exc:
        errors, status_code = {exc.field: exc.message}, 422
    except PaymentError as exc:
        status_code = exc.status
        if exc.status == 409:
            errors = {"": gettext("Only a paid payment can be refunded; this one is now: %(status)s.",
                                  status=words(await payments.payment_row(statement_id) or before)[0])}
        else:
            reason = exc.message.removeprefix("Stripe refused the refund: ")
            errors = {"": gettext("Stripe did not refund: %(reason)s", reason=reason)}
    else:
        refunded = after["refunded_minor"] - before["refunded_minor"]
        money = decimal_amount(refunded, after["currency"])
        reason = values["reason"]
        await audited(request, "update", "stripe_payment", statement_id, before=before, after=after,
                      summary=f"refund of {refunded} minor units of {after['currency']} for statement "
                              f"{after['number']} through Stripe{': ' + reason if reason else ''}")
        if not is_htmx(request):
            return Redirect(f"/admin/billing/statements/{statement_id}", status_code=303)
        html = await panel_html(request, statement_id, outcome=gettext(
            "Refunded %(amount)s %(currency)s through Stripe.", amount=money, currency=after["currency"]))
        return Response(html, media_type="text/html")
    html = await panel_html(request, statement_id, errors=errors, values=values)
    if is_htmx(request):
        return Response(html, media_type="text/html", status_code=status_code)
    return await render(request, "payments_stripe/refund_refused.html", status_code=status_code,
                        title=gettext("Refund"), panel=html, statement_id=statement_id)


def stripe_admin_router() -> Router:
    return Router(path="/admin/payments/stripe", route_handlers=[refund_form],
                  exception_handlers=ADMIN_EXCEPTION_HANDLERS, include_in_schema=False)
