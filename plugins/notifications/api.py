"""REST endpoints of the notifications plugin, under ``/api/v1/notifications``."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, Router, delete, get, patch, post
from litestar.exceptions import NotFoundException

from csms.plugin_api import SCOPED, Int32, audited, jsonable, page_params, require, restrict, tenant_scope
from plugins.notifications import service
from plugins.notifications import subscriptions as subs
from plugins.notifications.messages import DRIVER_EVENTS, NOTIFICATION_EVENTS
from plugins.notifications.tables import Delivery, Subscription


class SubscriptionIn(msgspec.Struct, forbid_unknown_fields=True):
    channel: str
    target: str = ""
    name: str = ""
    events: list[str] | None = None
    secret: str = ""
    station_id: str = ""
    site: Int32 | None = None
    driver: Int32 | None = None
    enabled: bool = True
    organization: Int32 | None = None


class SubscriptionPatch(msgspec.Struct, forbid_unknown_fields=True):
    target: str | None = None
    name: str | None = None
    events: list[str] | None = None
    secret: str | None = None
    station_id: str | None = None
    site: Int32 | None = None
    enabled: bool | None = None
    organization: Int32 | None = None


class DriverSubscriptionIn(msgspec.Struct, forbid_unknown_fields=True):
    channel: str
    target: str = ""
    events: list[str] | None = None


def _show_secret(request: Request) -> bool:
    principal = request.scope.get("csms_principal")  # type: ignore[call-overload]
    return bool(principal and principal.can("operator"))


def subscription_error(request: Request, exc: subs.SubscriptionError) -> Response:
    return Response({"status_code": exc.status, "detail": exc.message}, status_code=exc.status)


def delivery_json(row: dict[str, Any]) -> dict[str, Any]:
    return jsonable(row)


ONE = {"subscription_id": "subscription"}  # the route names one subscription: another tenant's is a 404


class SubscriptionController(Controller):
    path = "/subscriptions"
    tags = ["notifications"]

    @get("/", guards=[require("viewer")], opt={"tenant": SCOPED})
    async def list_subscriptions(self, request: Request, driver: int | None = None) -> dict[str, Any]:
        query = restrict(Subscription.select().output(load_json=True).order_by(Subscription.id),
                         Subscription.organization, await tenant_scope(request))
        if driver is not None:
            query = query.where(Subscription.driver == driver)
        rows = await query
        return {"items": [subs.subscription_json(r, show_secret=_show_secret(request)) for r in rows]}

    @post("/", guards=[require("operator")], opt={"tenant": SCOPED})
    async def create_subscription(self, request: Request, data: SubscriptionIn) -> dict[str, Any]:
        row = await subs.create(msgspec.structs.asdict(data), await tenant_scope(request))
        await audited(request, "create", "subscription", row["id"], after=row)
        return subs.subscription_json(row, show_secret=True)

    @get("/{subscription_id:int}", guards=[require("viewer")], opt={"tenant": ONE})
    async def get_subscription(self, request: Request, subscription_id: int) -> dict[str, Any]:
        return subs.subscription_json(await subs.subscription_row(subscription_id),
                                      show_secret=_show_secret(request))

    @patch("/{subscription_id:int}", guards=[require("operator")], opt={"tenant": ONE})
    async def update_subscription(self, request: Request, subscription_id: int,
                                  data: SubscriptionPatch) -> dict[str, Any]:
        values = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
        before = await subs.subscription_row(subscription_id)
        row = await subs.update(subscription_id, values, await tenant_scope(request))
        await audited(request, "update", "subscription", subscription_id, before=before, after=row)
        return subs.subscription_json(row, show_secret=True)

    @delete("/{subscription_id:int}", guards=[require("operator")], opt={"tenant": ONE})
    async def delete_subscription(self, request: Request, subscription_id: int) -> None:
        before = await subs.subscription_row(subscription_id)
        await Subscription.delete().where(Subscription.id == subscription_id)
        await audited(request, "delete", "subscription", subscription_id, before=before)

    @post("/{subscription_id:int}/test", guards=[require("operator")], status_code=202, opt={"tenant": ONE})
    async def test_subscription(self, subscription_id: int) -> dict[str, Any]:
        """Send a ``notification.test`` to this subscription now."""
        await subs.subscription_row(subscription_id)
        return {"delivery_id": await service.send_test(subscription_id)}


class DeliveryController(Controller):
    path = "/deliveries"
    tags = ["notifications"]

    @get("/", guards=[require("viewer")], opt={"tenant": SCOPED})
    async def list_deliveries(self, request: Request, status: str | None = None, subscription: int | None = None,
                              event: str | None = None, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        limit, offset = page_params(limit, offset)
        scope = await tenant_scope(request)
        query = restrict(Delivery.select(), Delivery.subscription.organization, scope)
        count = restrict(Delivery.count(), Delivery.subscription.organization, scope)
        for column, value in ((Delivery.status, status), (Delivery.subscription, subscription),
                              (Delivery.event, event)):
            if value is not None:
                query, count = query.where(column == value), count.where(column == value)
        rows = await query.order_by(Delivery.id, ascending=False).limit(limit).offset(offset)
        return {"items": [delivery_json(r) for r in rows], "total": await count, "limit": limit, "offset": offset}

    @get("/{delivery_id:int}", guards=[require("viewer")], opt={"tenant": {"delivery_id": "delivery"}})
    async def get_delivery(self, delivery_id: int) -> dict[str, Any]:
        row = await Delivery.select().where(Delivery.id == delivery_id).first()
        if row is None:
            raise NotFoundException(f"no delivery {delivery_id}")
        return delivery_json(row)

    @post("/{delivery_id:int}/replay", guards=[require("operator")], status_code=202,
          opt={"tenant": {"delivery_id": "delivery"}})
    async def replay(self, delivery_id: int) -> dict[str, Any]:
        """Send the same notification again as a new delivery (freshly signed)."""
        try:
            new_id = await service.replay(delivery_id)
        except LookupError as exc:
            raise NotFoundException(str(exc)) from None
        return {"delivery_id": new_id, "replay_of": delivery_id}


class DriverController(Controller):
    path = "/drivers/{driver_id:int}"
    tags = ["notifications"]
    opt = {"tenant": {"driver_id": "driver"}}

    @get("/subscriptions", guards=[require("viewer")])
    async def list_driver_subscriptions(self, request: Request, driver_id: int) -> dict[str, Any]:
        rows = await Subscription.select().where(Subscription.driver == driver_id).output(load_json=True)
        return {"items": [subs.subscription_json(r, show_secret=_show_secret(request)) for r in rows],
                "events": list(DRIVER_EVENTS)}

    @post("/subscriptions", guards=[require("operator")])
    async def create_driver_subscription(self, request: Request, driver_id: int,
                                         data: DriverSubscriptionIn) -> dict[str, Any]:
        row = await subs.create({**msgspec.structs.asdict(data), "driver": driver_id,
                                 "name": f"driver {driver_id} {data.channel}"}, await tenant_scope(request))
        await audited(request, "create", "subscription", row["id"], after=row)
        return subs.subscription_json(row, show_secret=True)

    @post("/link", guards=[require("operator")], status_code=200)
    async def link(self, request: Request, driver_id: int) -> dict[str, Any]:
        """The driver's private page to manage their own notifications (send it to them)."""
        token = await subs.driver_link(driver_id, await tenant_scope(request))
        return {"url": f"{str(request.base_url).rstrip('/')}/notifications/driver/{token}"}


@get("/events", guards=[require("viewer")], tags=["notifications"], opt={"tenant": SCOPED})
async def events() -> dict[str, Any]:
    """The notification events (other plugins' events pass through under their own names)."""
    return {"events": list(NOTIFICATION_EVENTS), "driver_events": list(DRIVER_EVENTS)}


def notifications_api_router() -> Router:
    return Router(path="/api/v1/notifications",
                  route_handlers=[SubscriptionController, DeliveryController, DriverController, events],
                  exception_handlers={subs.SubscriptionError: subscription_error})
