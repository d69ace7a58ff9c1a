"""Sites, hubs and where stations stand: the one path the admin and the REST API take to write them.

Each function writes and adds the audit entry (the organization of the site, of the hub's site,
of the station), so a caller only checks what its user may do and shows the outcome. The hub
limit is kept by :mod:`csms.core.services.hubs`, which every write of ``Station.hub`` or a hub's
``max_stations`` goes through; a station's own registration (password, status) and its removal
are the station service's (:mod:`csms.core.services.stations`).
"""

from __future__ import annotations

from typing import Any, Mapping

from piccolo.columns.combination import Combinable

from csms.core import audit
from csms.core.services import hubs, plans
from csms.core.tables import Hub, Site, Station


async def _site(site_id: int) -> dict[str, Any] | None:
    return await Site.select().where(Site.id == site_id).first()


async def _hub(hub_id: int) -> dict[str, Any] | None:
    return await Hub.select().where(Hub.id == hub_id).first()


async def site_organization(site_id: int | None, actor_organization: int | None) -> int | None:
    """The organization of site ``site_id`` (the caller's when there is no such site)."""
    row = None if site_id is None else await Site.select(Site.organization).where(Site.id == site_id).first()
    return actor_organization if row is None else row["organization"]


async def _hub_organization(hub_id: int, row: Mapping[str, Any] | None, actor_organization: int | None) -> int | None:
    """The organization of a hub: its site's (none without a site; the caller's when it is gone)."""
    if row is None:
        return actor_organization
    if row.get("site") is not None:
        return await site_organization(row["site"], actor_organization)
    return None


# -- sites -------------------------------------------------------------------------------------

async def create_site(values: Mapping[str, Any], *, actor: str, actor_organization: int | None) -> int:
    """Add a site with ``values`` (column names); its id."""
    row = Site(**values)
    await row.save()
    site_id: int = row.id
    after = await _site(site_id)
    await audit.record(actor=actor, action="create", object_type="site", object_id=site_id, after=after,
                       organization=(after or {}).get("organization", actor_organization),
                       actor_organization=actor_organization)
    return site_id


async def update_site(site_id: int, values: Mapping[str, Any], *, actor: str, actor_organization: int | None) -> None:
    """Change site ``site_id`` (``values`` by column name). A site given to another organization
    takes its hubs and its stations along (:func:`hubs.adopt`), refused with
    :class:`~csms.core.services.plans.PlanLimitReached` when that organization's plan has no room
    for them (nothing is written then)."""
    before = await _site(site_id)
    moving = before is not None and values.get("organization", before["organization"]) != before["organization"]
    # a site moved to another organization takes its hubs and stations along: its plan must have room
    async with plans.within_limits(values["organization"] if moving else None, "hubs", "stations"):
        await Site.update({getattr(Site, k): v for k, v in values.items()}).where(Site.id == site_id)
        if moving:
            await hubs.adopt(Station.site == site_id, site_id)
    after = await _site(site_id)
    row = after if after is not None else before
    await audit.record(actor=actor, action="update", object_type="site", object_id=site_id, before=before,
                       after=after, organization=actor_organization if row is None else row["organization"],
                       actor_organization=actor_organization)


async def delete_site(site_id: int, *, actor: str, actor_organization: int | None) -> None:
    """Remove site ``site_id``; its stations and hubs stay, on no site."""
    before = await _site(site_id)
    await Site.delete().where(Site.id == site_id)
    await audit.record(actor=actor, action="delete", object_type="site", object_id=site_id, before=before,
                       organization=actor_organization if before is None else before["organization"],
                       actor_organization=actor_organization)


async def add_stations(site_id: int, station_ids: list[str], *, allowed: Combinable | None = None, actor: str,
                       actor_organization: int | None) -> None:
    """Put the stations ``station_ids`` (those of them matching ``allowed``) on site ``site_id``;
    those of another organization move to the site's, refused with
    :class:`~csms.core.services.plans.PlanLimitReached` when its plan has no room for them."""
    if not station_ids:
        return
    members: Combinable = Station.station_id.is_in(station_ids)
    if allowed is not None:
        members = allowed & members
    await hubs.update_stations(members, {Station.site: site_id})
    await audit.record(actor=actor, action="update", object_type="site", object_id=site_id,
                       organization=await site_organization(site_id, actor_organization),
                       actor_organization=actor_organization,
                       summary=f"stations added: {', '.join(station_ids)[:200]}")


async def remove_station(site_id: int, station_id: str, *, actor: str, actor_organization: int | None) -> None:
    """Take station ``station_id`` off site ``site_id`` (and out of its hub)."""
    await Station.update({Station.site: None, Station.hub: None}).where(
        (Station.station_id == station_id) & (Station.site == site_id))
    await audit.record(actor=actor, action="update", object_type="site", object_id=site_id,
                       organization=await site_organization(site_id, actor_organization),
                       actor_organization=actor_organization, summary=f"station removed: {station_id[:64]}")


# -- hubs --------------------------------------------------------------------------------------

async def create_hub(values: Mapping[str, Any], *, actor: str, actor_organization: int | None) -> int:
    """Add a hub with ``values`` (column names; :func:`hubs.create_hub` checks its maximum); its id."""
    organization = await site_organization(values["site"], None) if values.get("site") is not None else None
    async with plans.within_limits(organization, "hubs"):
        hub_id = await hubs.create_hub({getattr(Hub, k): v for k, v in values.items()})
    after = await _hub(hub_id)
    await audit.record(actor=actor, action="create", object_type="hub", object_id=hub_id, after=after,
                       organization=await _hub_organization(hub_id, after, actor_organization),
                       actor_organization=actor_organization)
    return hub_id


async def update_hub(hub_id: int, values: Mapping[str, Any], station_ids: list[str] | None = None, *,
                     allowed: Combinable | None = None, actor: str, actor_organization: int | None) -> None:
    """Change hub ``hub_id`` (``values`` by column name) and, unless ``station_ids`` is None, make
    them (those matching ``allowed``) its stations; a hub given a site takes its stations along
    (the hub's stations are always at its site), and its stations of another organization than
    the site's move to the site's (:func:`hubs.adopt`). One transaction, refused (nothing
    written) with :class:`hubs.HubFull` when they are more than the hub can have, as is a
    ``max_stations`` below its present number of stations; with
    :class:`~csms.core.services.plans.PlanLimitReached` when the site's organization's plan has no
    room for the hub or its stations; :class:`hubs.HubLimitInvalid` for a ``max_stations`` no hub
    may have."""
    before = await _hub(hub_id)
    hub_values = {getattr(Hub, k): v for k, v in values.items()}
    site = values.get("site")
    moved = {Station.site: site} if site is not None else {}
    at = site if "site" in values else (before or {}).get("site")
    receiving = await site_organization(at, None) if at is not None else None
    # the receiving organization's plan: room for the stations that move to it, and for the hub
    # when it comes from another site
    kinds = ("hubs", "stations") if before is not None and at != before["site"] else ("stations",)
    async with plans.within_limits(receiving, *kinds):
        if station_ids is None:
            await hubs.update_hub(hub_id, hub_values, station_values=moved)
        else:
            await hubs.set_members(hub_id, station_ids, values=moved, allowed=allowed, hub_values=hub_values)
        await hubs.adopt(Station.hub == hub_id, at)
    after = await _hub(hub_id)
    await audit.record(actor=actor, action="update", object_type="hub", object_id=hub_id, before=before, after=after,
                       organization=await _hub_organization(hub_id, after if after is not None else before,
                                                            actor_organization),
                       actor_organization=actor_organization,
                       summary="" if station_ids is None else f"stations: {', '.join(station_ids)[:200]}")


async def delete_hub(hub_id: int, *, actor: str, actor_organization: int | None) -> None:
    """Remove hub ``hub_id``; its stations stay, in no hub."""
    before = await _hub(hub_id)
    organization = await _hub_organization(hub_id, before, actor_organization)
    await Hub.delete().where(Hub.id == hub_id)
    await audit.record(actor=actor, action="delete", object_type="hub", object_id=hub_id, before=before,
                       organization=organization, actor_organization=actor_organization)
