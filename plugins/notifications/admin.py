"""Admin pages of the notifications plugin: subscriptions (webhooks, e-mail, drivers'), the
delivery log with replay, the live stream and the dashboard panel; and the drivers' own page."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Router, get, post
from litestar.exceptions import HTTPException, NotFoundException
from litestar.response import Redirect, ServerSentEvent, Template
from markupsafe import Markup

from csms.plugin_api import (
    ADMIN_EXCEPTION_HANDLERS, SCOPED, N_, Driver, Site, Station, admin_guard, current_user, http_error, paginate,
    audited, gettext, notice_text, notice_url, render, restrict, tenant_scope, visible_station_ids,
)
from plugins.notifications import service
from plugins.notifications import subscriptions as subs
from plugins.notifications.browser import item_html, shown_to
from plugins.notifications.messages import DRIVER_EVENTS, NOTIFICATION_EVENTS
from plugins.notifications.tables import Delivery, Subscription

BASE = "/admin/notifications"


async def _form(request: Request) -> dict[str, Any]:
    form = await request.form()
    return {k: str(v).strip() for k, v in form.items() if k != "_csrf_token"}


# What an action did, shown on the page it redirects to: the redirect names the notice by its key
# (``?m=subscription_added``) with its parameters, and the page words it in the viewer's language.
NOTICES = {
    "subscription_added": N_("Subscription added."),
    "subscription_enable": N_("Subscription enabled."),
    "subscription_disable": N_("Subscription disabled."),
    "subscription_delete": N_("Subscription deleted."),
    "subscription_test": N_("Test notification queued; see the delivery log."),
    "driver_link": N_("The driver's private page (send it to them): %(url)s"),
    "replayed": N_("Replay of delivery %(delivery)s queued."),
    "saved": N_("Saved."),
}


def _back(path: str, *, error: str = "", notice: str = "", **params: Any) -> Redirect:
    """Back to a page: with the key of a :data:`NOTICES` notice (and its parameters), or with a
    refusal (a ``SubscriptionError``'s message, in the viewer's language: the admin guard made it
    the request's before the handler ran)."""
    if error:
        return Redirect(f"{path}?{urlencode({'error': error})}", status_code=303)
    return Redirect(notice_url(path, notice, **params) if notice else path, status_code=303)


def _messages(request: Request) -> dict[str, str]:
    return {"error": request.query_params.get("error", ""), "notice": notice_text(request, NOTICES)}


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


ONE = {"subscription_id": "subscription"}  # another organization's subscription: 404
DELIVERY = {"delivery_id": "delivery"}


@get(BASE, opt={"tenant": SCOPED})
async def notifications_page(request: Request) -> Template:
    scope = await tenant_scope(request)
    rows = await restrict(Subscription.select(Subscription.all_columns(),
                                              Subscription.driver.name.as_alias("driver_name")),
                          Subscription.organization, scope).order_by(Subscription.id).output(load_json=True)
    user = await current_user(request)
    show = bool(user and user.can("operator"))
    recent = await restrict(Delivery.select(), Delivery.subscription.organization, scope).order_by(
        Delivery.id, ascending=False).limit(10)
    return await render(
        request, "notifications/index.html", title=gettext("Notifications"),
        subscriptions=[{**subs.subscription_json(r, show_secret=show), "driver_name": r["driver_name"]} for r in rows],
        recent=recent, events=NOTIFICATION_EVENTS, driver_events=DRIVER_EVENTS,
        sites=await restrict(Site.select(Site.id, Site.name), Site.organization, scope).order_by(Site.name),
        drivers=await restrict(Driver.select(Driver.id, Driver.name, Driver.email), Driver.organization,
                               scope).order_by(Driver.name).limit(2000),
        stations=await restrict(Station.select(Station.station_id), Station.organization, scope).order_by(
            Station.station_id).limit(2000),
        **_messages(request))


@post(f"{BASE}/subscriptions", opt={"tenant": SCOPED})
async def subscription_create(request: Request) -> Redirect:
    values = await _form(request)
    try:
        row = await subs.create({**values, "site": _int_or_none(values.get("site")),
                                 "driver": _int_or_none(values.get("driver")), "enabled": True,
                                 "organization": None}, await tenant_scope(request))
    except subs.SubscriptionError as exc:
        return _back(BASE, error=exc.message)
    await audited(request, "create", "subscription", row["id"], after=row)
    return _back(BASE, notice="subscription_added")


@post(f"{BASE}/subscriptions/{{subscription_id:int}}/{{action:str}}", opt={"tenant": ONE})
async def subscription_action(request: Request, subscription_id: int, action: str) -> Redirect:
    try:
        before = await subs.subscription_row(subscription_id)
        if action in ("enable", "disable"):
            after = await subs.update(subscription_id, {"enabled": action == "enable"})
            await audited(request, "update", "subscription", subscription_id, before=before, after=after)
        elif action == "delete":
            await Subscription.delete().where(Subscription.id == subscription_id)
            await audited(request, "delete", "subscription", subscription_id, before=before)
        elif action == "test":
            await service.send_test(subscription_id)
        else:
            raise NotFoundException(gettext("Unknown action %(action)s.", action=repr(action)))
    except subs.SubscriptionError as exc:
        return _back(BASE, error=exc.message)
    return _back(BASE, notice=f"subscription_{action}")


@post(f"{BASE}/drivers/link", opt={"tenant": SCOPED})
async def driver_link(request: Request) -> Redirect:
    values = await _form(request)
    try:
        token = await subs.driver_link(_int_or_none(values.get("driver")) or 0, await tenant_scope(request))
    except subs.SubscriptionError as exc:
        return _back(BASE, error=exc.message)
    url = f"{str(request.base_url).rstrip('/')}/notifications/driver/{token}"
    return _back(BASE, notice="driver_link", url=url)


@get(f"{BASE}/deliveries", opt={"tenant": SCOPED})
async def delivery_log(request: Request) -> Template:
    status = request.query_params.get("status", "")
    event = request.query_params.get("event", "")
    scope = await tenant_scope(request)
    query = restrict(Delivery.select(), Delivery.subscription.organization, scope)
    count = restrict(Delivery.count(), Delivery.subscription.organization, scope)
    for column, value in ((Delivery.status, status), (Delivery.event, event)):
        if value:
            query, count = query.where(column == value), count.where(column == value)
    subscription = _int_or_none(request.query_params.get("subscription"))
    if subscription is not None:
        query, count = query.where(Delivery.subscription == subscription), count.where(
            Delivery.subscription == subscription)
    page = await paginate(request, query.order_by(Delivery.id, ascending=False), count)
    return await render(request, "notifications/deliveries.html", title=gettext("Delivery log"), page=page, status=status,
                        event=event, events=NOTIFICATION_EVENTS, **_messages(request))


@get(f"{BASE}/deliveries/{{delivery_id:int}}", opt={"tenant": DELIVERY})
async def delivery_detail(request: Request, delivery_id: int) -> Template:
    row = await Delivery.select().where(Delivery.id == delivery_id).first()
    if row is None:
        raise NotFoundException(gettext("No delivery %(delivery)s.", delivery=delivery_id))
    payload = json.dumps(json.loads(row["payload"]), indent=2, sort_keys=True)
    return await render(request, "notifications/delivery.html", title=gettext("Delivery %(delivery)s", delivery=delivery_id), d=row,
                        payload=payload, **_messages(request))


@post(f"{BASE}/deliveries/{{delivery_id:int}}/replay", opt={"tenant": DELIVERY})
async def delivery_replay(delivery_id: int) -> Redirect:
    try:
        new_id = await service.replay(delivery_id)
    except LookupError as exc:
        raise NotFoundException(str(exc)) from None
    return _back(f"{BASE}/deliveries/{new_id}", notice="replayed", delivery=delivery_id)


@get(f"{BASE}/stream", opt={"tenant": SCOPED})
async def stream(request: Request) -> ServerSentEvent:
    """Live notifications for the admin (htmx-ext-sse): of the stations the caller sees."""
    notifier = service.notifier()
    if notifier is None:
        raise HTTPException(status_code=503, detail=gettext("Notifications are not running."))
    return notifier.browser.response(await _visible(request))


async def _visible(request: Request) -> frozenset[str] | None:
    """The station ids whose notifications the caller may see live (None: all)."""
    ids = await visible_station_ids(await tenant_scope(request))
    return None if ids is None else frozenset(ids)


# -- the driver's own page (no login: the private link is the credential) --------------------


async def _driver_page(request: Request, driver: dict[str, Any], token: str, rows: list[dict[str, Any]],
                       error: subs.SubscriptionError | None = None) -> Template:
    """The driver's page, in the language their browser asks for (a refusal too: the exception is
    worded when the page is rendered, after :func:`render` chose the language)."""
    email = next((r for r in rows if r["channel"] == "email"), None)
    webhook = next((r for r in rows if r["channel"] == "webhook"), None)
    return await render(request, "notifications/driver_page.html", status_code=error.status if error else 200,
                        driver=driver, token=token, email=email,
                        webhook=webhook, events=DRIVER_EVENTS, notice=notice_text(request, NOTICES),
                        error=error or "")


async def _driver_context(token: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    driver_id = await subs.driver_of_token(token)
    driver = await Driver.select(Driver.id, Driver.name, Driver.email).where(Driver.id == driver_id).first() \
        if driver_id is not None else None
    if driver is None:
        raise NotFoundException(gettext("This link is not valid (any more)."))
    rows = await Subscription.select().where(Subscription.driver == driver["id"]).order_by(
        Subscription.id).output(load_json=True)
    return driver, rows


@get("/notifications/driver/{token:str}", include_in_schema=False)
async def driver_page(request: Request, token: str) -> Template:
    driver, rows = await _driver_context(token)
    return await _driver_page(request, driver, token, rows)


@post("/notifications/driver/{token:str}", include_in_schema=False)
async def driver_save(request: Request, token: str) -> Any:
    driver, rows = await _driver_context(token)
    form = await request.form()
    chosen = [e for e in DRIVER_EVENTS if form.get(f"email:{e}")]
    address = str(form.get("email") or "").strip()
    url = str(form.get("webhook") or "").strip()
    hooks = [e for e in DRIVER_EVENTS if form.get(f"webhook:{e}")] or list(DRIVER_EVENTS)
    try:
        wanted = []
        if chosen:
            wanted.append(await subs.check({"channel": "email", "target": address, "events": chosen,
                                            "driver": driver["id"], "name": "driver e-mail"}))
        if url:
            old = next((r for r in rows if r["channel"] == "webhook" and r["target"] == url), None)
            wanted.append(await subs.check({"channel": "webhook", "target": url, "events": hooks,
                                            "driver": driver["id"], "name": "driver webhook",
                                            "secret": old["secret"] if old else ""}))
    except subs.SubscriptionError as exc:
        return await _driver_page(request, driver, token, rows, error=exc)
    # the e-mail and webhook chosen here replace the earlier ones; the browsers the driver turned
    # push notifications on in (the portal's Notifications page) stay
    await Subscription.delete().where((Subscription.driver == driver["id"])
                                      & Subscription.channel.is_in(["email", "webhook"]))
    for values in wanted:
        await Subscription(**values).save()
    return Redirect(notice_url(f"/notifications/driver/{token}", "saved"), status_code=303)


# -- the dashboard panel -----------------------------------------------------------------------


def panel(page: str, request: Any, context: dict[str, Any]) -> Any:
    if page != "dashboard":
        return None

    async def dashboard_panel() -> list[Markup]:
        notifier = service.notifier()
        visible = await _visible(request)
        items = [item_html(n) for n in notifier.browser.recent if shown_to(n, visible)] if notifier else []
        html = request.app.template_engine.get_template("admin/notifications/_panel.html").render(items=items)
        return [Markup(html)]

    return dashboard_panel


# -- the router --------------------------------------------------------------------------------






def notifications_admin_router() -> Router:
    return Router(
        path="/",
        route_handlers=[notifications_page, subscription_create, subscription_action, driver_link, delivery_log,
                        delivery_detail, delivery_replay, stream],
        guards=[admin_guard],
        exception_handlers=ADMIN_EXCEPTION_HANDLERS,
        include_in_schema=False,
    )


def driver_router() -> Router:
    return Router(path="/", route_handlers=[driver_page, driver_save], include_in_schema=False,
                  exception_handlers={HTTPException: http_error})
