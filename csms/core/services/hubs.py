"""Hubs: the one place that puts stations into a hub and keeps every hub within its limit.

A hub is a group of stations behind one communication device; none takes more than
:data:`HUB_STATION_LIMIT` stations, and a hub's own ``max_stations`` may lower that. Every path
that sets ``Station.hub`` (REST, admin forms, registration) or a hub's ``max_stations`` goes
through here: the hub's row is locked (PostgreSQL ``FOR UPDATE``; SQLite ``BEGIN IMMEDIATE``,
one writer at a time) and its stations counted in the same transaction as the write, so two
simultaneous adds cannot make one station too many.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from piccolo.columns.combination import Combinable
from piccolo.engine.sqlite import SQLiteEngine, TransactionType

from csms.core.services import plans
from csms.core.tables import Hub, Site, Station

HUB_STATION_LIMIT = 20


class HubFull(Exception):
    """Placing the stations would put more stations in a hub than it can have."""

    def __init__(self, hub_id: int, name: str, count: int, limit: int, adding: int) -> None:
        self.hub_id, self.name, self.count, self.limit, self.adding = hub_id, name, count, limit, adding
        most = "the most a hub can have" if limit == HUB_STATION_LIMIT else f"the most it can have (its maximum is {limit})"
        if adding == 0:
            message = f"hub {name!r} has {count} stations: its maximum cannot be {limit}"
        elif count >= limit:
            message = f"hub {name!r} already has {count} stations, {most}"
        else:
            message = (f"hub {name!r} has {count} stations and can have at most {limit}: "
                       f"{adding} more would make {count + adding}")
        super().__init__(message)


class HubLimitInvalid(ValueError):
    """A ``max_stations`` outside 1 to :data:`HUB_STATION_LIMIT`."""


class LocalControllerInvalid(ValueError):
    """A hub's local controller that is not one of its stations."""


class UnknownHub(LookupError):
    """No hub with that id."""


def hub_limit(max_stations: int | None) -> int:
    """The number of stations a hub with this ``max_stations`` can have."""
    return min(max_stations or HUB_STATION_LIMIT, HUB_STATION_LIMIT)


def check_max_stations(value: Any) -> None:
    """Refuse a ``max_stations`` that is not a whole number from 1 to :data:`HUB_STATION_LIMIT`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= HUB_STATION_LIMIT:
        raise HubLimitInvalid(f"max_stations must be 1 to {HUB_STATION_LIMIT}: "
                              f"a hub has at most {HUB_STATION_LIMIT} stations")


@asynccontextmanager
async def _write_transaction() -> AsyncIterator[None]:
    db = Station._meta.db
    if isinstance(db, SQLiteEngine):  # take the write lock first: the count cannot go stale
        async with db.transaction(transaction_type=TransactionType.immediate):
            yield
    else:
        async with db.transaction():
            yield


async def _locked_hub(hub_id: int) -> dict[str, Any]:
    if isinstance(Hub._meta.db, SQLiteEngine):
        rows = await Hub.select(Hub.id, Hub.name, Hub.max_stations).where(Hub.id == hub_id)
    else:
        rows = await Hub.raw("SELECT id, name, max_stations FROM hub WHERE id = {} FOR UPDATE", hub_id)
    if not rows:
        raise UnknownHub(f"no hub {hub_id}")
    return rows[0]


async def _check_room(hub: dict[str, Any], where: Combinable) -> None:
    count = await Station.count().where(Station.hub == hub["id"])
    adding = await Station.count().where(where & ((Station.hub != hub["id"]) | Station.hub.is_null()))
    limit = hub_limit(hub["max_stations"])
    if adding and count + adding > limit:
        raise HubFull(hub["id"], hub["name"], count, limit, adding)


async def _settle_local_controller(hub_id: int, hub_values: dict[Any, Any] | None) -> None:
    """After the hub's stations are set, in the same transaction: a local controller given in
    ``hub_values`` must be one of them (:class:`LocalControllerInvalid`); one the hub had that is
    no longer among them is cleared."""
    row = await Hub.select(Hub.local_controller).where(Hub.id == hub_id).first()
    controller = (row or {}).get("local_controller") or ""
    if not controller or await Station.exists().where((Station.station_id == controller) & (Station.hub == hub_id)):
        return
    if hub_values and Hub.local_controller in hub_values:
        raise LocalControllerInvalid(f"the local controller {controller!r} is not one of the hub's stations")
    await Hub.update({Hub.local_controller: ""}).where(Hub.id == hub_id)


async def _drop_departed_controllers() -> None:
    """Clear the local controller of every hub it is no longer a station of."""
    await Hub.raw("UPDATE hub SET local_controller = '' WHERE local_controller <> '' AND NOT EXISTS "
                  "(SELECT 1 FROM station WHERE station.station_id = hub.local_controller AND station.hub = hub.id)")


async def hub_site(hub_id: int) -> int | None:
    """The site of hub ``hub_id``, where its stations stand (None: none, or no such hub)."""
    hub = await Hub.select(Hub.site).where(Hub.id == hub_id).first()
    return None if hub is None else hub["site"]


async def _site_organization(site_id: int | None) -> int | None:
    row = None if site_id is None else await Site.select(Site.organization).where(Site.id == site_id).first()
    return None if row is None else row["organization"]


async def owner_on_site(site_id: int | None, organization: int | None) -> int | None:
    """The organization a station of ``organization`` has once it stands on site ``site_id``: its
    own when that is the site's organization or one below it (or the site has none), else the
    site's (a station on another organization's site moves to that organization)."""
    site_organization = await _site_organization(site_id)
    if site_organization is None or (organization is not None
                                     and organization in await plans.at_or_below(site_organization)):
        return organization
    return site_organization


async def adopt(where: Combinable, site_id: int | None) -> None:
    """Move the stations matching ``where`` onto the organization of site ``site_id`` unless they
    are of it or of one below it (:func:`owner_on_site`); nothing without a site or for a site of
    no organization. Run it inside :func:`plans.within_limits` of that organization, so that a
    plan with no room for them refuses the move."""
    site_organization = await _site_organization(site_id)
    if site_organization is not None:
        await Station.update({Station.organization: site_organization}).where(
            where & (Station.organization.is_null()
                     | Station.organization.not_in(await plans.at_or_below(site_organization))))


async def update_stations(where: Combinable, values: dict[Any, Any]) -> None:
    """``Station.update(values).where(where)``, refused with :class:`HubFull` when ``values``
    puts the stations into a hub that has no room for them, and with
    :class:`~csms.core.services.plans.PlanLimitReached` when it moves them to an organization whose
    plan has no room for them (nothing is written then). A station put into a hub goes to the
    hub's site; one put on a site of another organization moves to that organization
    (:func:`owner_on_site`); one given to another organization without a site leaves its site
    and hub when they are not of that organization (:func:`_leave_foreign_sites`)."""
    values = dict(values)
    hub_id = values.get(Station.hub)
    if hub_id is not None and values.get(Station.site) is None:
        values[Station.site] = await hub_site(hub_id)
    site_id = values.get(Station.site)
    if Station.organization in values:
        values[Station.organization] = await owner_on_site(site_id, values[Station.organization])
        receiving = values[Station.organization]
    else:
        receiving = await _site_organization(site_id)
    async with plans.within_limits(receiving, "stations"):
        async with _write_transaction():
            if hub_id is not None:
                await _check_room(await _locked_hub(hub_id), where)
            if Station.organization not in values:
                await Station.update(values).where(where)
                await adopt(where, site_id)
            else:
                if Station.site not in values:
                    await _leave_foreign_sites(where, receiving)
                await Station.update(values).where(where)
            if Station.hub in values or Station.organization in values:
                await _drop_departed_controllers()


async def _leave_foreign_sites(where: Combinable, organization: int | None) -> None:
    """Take the stations matching ``where`` off their site and hub when the site is of an
    organization that ``organization`` is not (at or below): a station given to another
    organization does not stay on its former owner's site."""
    rows = await Station.select(Station.station_id, Station.site).where(where & Station.site.is_not_null())
    leaving = [row["station_id"] for row in rows
               if await owner_on_site(row["site"], organization) != organization]
    if leaving:
        await Station.update({Station.site: None, Station.hub: None}).where(
            Station.station_id.is_in(leaving))


async def create_station(row: Station) -> None:
    """Save a new station row, refused with :class:`HubFull` when its hub is full."""
    if row.hub is None:
        await row.save()
        return
    hub_id = row.hub if isinstance(row.hub, int) else row.hub.id
    async with _write_transaction():
        hub = await _locked_hub(hub_id)
        count = await Station.count().where(Station.hub == hub_id)
        limit = hub_limit(hub["max_stations"])
        if count + 1 > limit:
            raise HubFull(hub_id, hub["name"], count, limit, 1)
        await row.save()


async def set_members(hub_id: int, station_ids: list[str], *, values: dict[Any, Any] | None = None,
                      allowed: Combinable | None = None, hub_values: dict[Any, Any] | None = None) -> None:
    """Make ``station_ids`` (those of them matching ``allowed``) the hub's stations, with
    ``values`` set on them and ``hub_values`` on the hub, all in one transaction; refused with
    :class:`HubFull` when they are more than the hub (with ``hub_values``) can have."""
    if hub_values and Hub.max_stations in hub_values:
        check_max_stations(hub_values[Hub.max_stations])
    async with _write_transaction():
        hub = await _locked_hub(hub_id)
        if hub_values:
            await Hub.update(hub_values).where(Hub.id == hub_id)
            hub = {**hub, "max_stations": hub_values.get(Hub.max_stations, hub["max_stations"])}
        await Station.update({Station.hub: None}).where((Station.hub == hub_id) & Station.station_id.not_in(
            station_ids or [""]))
        if station_ids:
            members: Combinable = Station.station_id.is_in(station_ids)
            if allowed is not None:
                members = members & allowed
            await _check_room(hub, members)
            await Station.update({**(values or {}), Station.hub: hub_id}).where(members)
        await _settle_local_controller(hub_id, hub_values)


async def create_hub(values: dict[Any, Any]) -> int:
    """Save a new hub with ``values`` (by column); its id. A ``max_stations`` must be 1 to
    :data:`HUB_STATION_LIMIT` (:class:`HubLimitInvalid`); a new hub has no stations yet."""
    if Hub.max_stations in values:
        check_max_stations(values[Hub.max_stations])
    if values.get(Hub.local_controller):
        raise LocalControllerInvalid("a new hub has no stations yet: give it its local controller once it has")
    row = Hub(**{column._meta.name: value for column, value in values.items()})
    await row.save()
    hub_id: int = row.id
    return hub_id


async def update_hub(hub_id: int, values: dict[Any, Any], *, station_values: dict[Any, Any] | None = None) -> None:
    """``Hub.update(values)``, and ``station_values`` set on the hub's stations in the same
    transaction; a new ``max_stations`` must be 1 to :data:`HUB_STATION_LIMIT` and not below the
    hub's present number of stations (:class:`HubFull` otherwise); a ``local_controller`` must be
    one of the hub's stations (:class:`LocalControllerInvalid`)."""
    if Hub.max_stations not in values and Hub.local_controller not in values and not station_values:
        await Hub.update(values).where(Hub.id == hub_id)
        return
    if Hub.max_stations in values:
        check_max_stations(values[Hub.max_stations])
    async with _write_transaction():
        hub = await _locked_hub(hub_id)
        if Hub.max_stations in values:
            count = await Station.count().where(Station.hub == hub_id)
            limit = hub_limit(values[Hub.max_stations])
            if count > limit:
                raise HubFull(hub_id, hub["name"], count, limit, 0)
        if values:
            await Hub.update(values).where(Hub.id == hub_id)
        if station_values:
            await Station.update(station_values).where(Station.hub == hub_id)
        await _settle_local_controller(hub_id, values)
