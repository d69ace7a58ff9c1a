"""The driver portal's Notifications page: push notifications on the driver's phone.

``/driver/notifications`` (menu entry through ``driver_nav``) shows the section "Push
notifications on this device": its script (``static/push.js``) registers the service worker
``/driver/push-sw.js`` (scope ``/driver/``), subscribes with the installation's VAPID public key
(``data-key`` of the section) and posts the subscription to ``/driver/notifications/push`` with
the portal's CSRF header; *Turn off on this device* unsubscribes the browser and tells the server.
The page lists the driver's subscribed devices, each with a Remove button (a plain form).

Routes under ``/driver/`` are behind the driver's sign-in (the core's guard) and read and write
only the signed-in driver's subscriptions; another driver's id is a 404 like one that does not
exist. The two scripts are public static files (no data in them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Request, Response, Router, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Redirect, Template

from csms.plugin_api import (
    DRIVER_EXCEPTION_HANDLERS, N_, PUBLIC, current_driver, current_language, driver_page, gettext, public_route,
    in_language,
)
from plugins.notifications import subscriptions as subs
from plugins.notifications import webpush
from plugins.notifications.tables import Subscription

STATIC = Path(__file__).parent / "static"
NOTICES = {"on": N_("Push notifications are on for this device."),
           "off": N_("Push notifications are off for this device."),
           "removed": N_("The device was removed: it gets no more notifications.")}


def _script(name: str, extra: dict[str, str] | None = None) -> Response[bytes]:
    return Response((STATIC / name).read_bytes(), media_type="text/javascript; charset=utf-8",
                    headers={"Cache-Control": "no-cache", **(extra or {})})


@get("/driver/push-sw.js")
async def service_worker() -> Response[bytes]:
    """The service worker: shows pushed notifications, opens the session page on a tap."""
    return _script("push-sw.js", {"Service-Worker-Allowed": "/driver/"})


@get("/driver/notifications/push.js")
async def page_script() -> Response[bytes]:
    return _script("push.js")


@get("/driver/notifications")
async def notifications_page(request: Request, done: str = "") -> Template:
    driver = current_driver(request)
    _, public_key = await webpush.vapid_keys()
    devices = await subs.push_subscriptions(driver["id"])
    notice = gettext(NOTICES[done]) if done in NOTICES else ""
    return driver_page(request, "driver/notifications/push.html", title=N_("Notifications"), devices=devices,
                       public_key=public_key, notice=notice)


def _problem(message: str, status: int = 400) -> Response[dict[str, Any]]:
    return Response({"status_code": status, "detail": message}, status_code=status)


@post("/driver/notifications/push", status_code=201)
async def subscribe(request: Request) -> Response[dict[str, Any]]:
    """This browser's push subscription (``PushSubscription.toJSON()``, with ``language``: the
    page's, which the notifications are written in); 400 with the reason when it cannot be used."""
    driver = current_driver(request)
    try:
        data = await request.json()
    except Exception:
        return _problem(gettext("The body is not JSON."))
    try:
        push = webpush.check_subscription(data)
    except webpush.PushSubscriptionError as exc:
        return _problem(str(exc))
    language = data.get("language") if isinstance(data.get("language"), str) else ""
    row = await subs.save_push(driver["id"], push, device=webpush.device_name(request.headers.get("user-agent", "")),
                               language=_language_of(language[:8]) if language else current_language())
    return Response({"id": row["id"], "device": row["device"]}, status_code=201)


def _language_of(requested: str) -> str:
    """The language push messages are written in: ``requested`` if we have it, else the installation's."""
    with in_language(requested) as chosen:
        return chosen


@post("/driver/notifications/push/unsubscribe", status_code=200)
async def unsubscribe(request: Request) -> Response[dict[str, Any]]:
    """This browser turned notifications off: ``{"endpoint": ...}``; forgets the driver's
    subscription of that endpoint (none: nothing to do)."""
    driver = current_driver(request)
    try:
        data = await request.json()
    except Exception:
        return _problem(gettext("The body is not JSON."))
    endpoint = data.get("endpoint") if isinstance(data, dict) else None
    if not isinstance(endpoint, str) or not endpoint:
        return _problem(gettext("The push subscription has no endpoint."))
    gone = await Subscription.delete().where(
        (Subscription.channel == "webpush") & (Subscription.driver == driver["id"])
        & (Subscription.target == endpoint)).returning(Subscription.id)
    return Response({"removed": len(gone)})


@post("/driver/notifications/push/{subscription_id:int}/delete", status_code=303)
async def remove_device(request: Request, subscription_id: int) -> Redirect:
    driver = current_driver(request)
    gone = await Subscription.delete().where(
        (Subscription.id == subscription_id) & (Subscription.channel == "webpush")
        & (Subscription.driver == driver["id"])).returning(Subscription.id)
    if not gone:
        raise NotFoundException(gettext("There is no such device."))
    return Redirect("/driver/notifications?done=removed", status_code=303)


def push_driver_router() -> Router:
    """The Notifications page of the driver portal (the core adds the driver's sign-in) and its
    two public scripts."""
    scripts = public_route(Router(path="/", route_handlers=[service_worker, page_script]),
                           "the push notification scripts of the driver portal: static JavaScript, no data")
    return Router(path="/", route_handlers=[
        scripts, notifications_page, subscribe, unsubscribe, remove_device], opt={"tenant": PUBLIC},
        exception_handlers=DRIVER_EXCEPTION_HANDLERS, include_in_schema=False)
