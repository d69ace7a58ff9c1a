"""Which sites are published: shown on the public map and its feeds, and to roaming partners.

A site is published when its own ``publish`` flag is on and so is its organization's (a site of
no organization follows its own flag only), and the organization's plan includes public publishing
(:mod:`csms.core.services.plans`). The organization's switch is the owner's word for all of its
sites at once: off, none of them appears anywhere public, whatever the site's flag says.
Everything that publishes asks here (the public map, ``/public/locations``, and plugins through
:func:`csms.plugin_api.published_site_ids`), so the two switches mean the same everywhere.
"""

from __future__ import annotations

from typing import Any, Iterable

from csms.core.services import plans
from csms.core.tables import Site


async def published_condition() -> Any:
    """The ``where`` clause of a ``Site`` query that keeps the published sites only."""
    condition = (Site.publish == True) & (  # noqa: E712 (Piccolo builds SQL from the comparison)
        Site.organization.is_null() | (Site.organization.publish == True))  # noqa: E712
    unpublished = await plans.organizations_without(plans.PUBLIC_PUBLISHING)
    if unpublished:
        condition = condition & (Site.organization.is_null() | Site.organization.not_in(sorted(unpublished)))
    return condition


async def published_site_ids(site_ids: Iterable[int] | None = None) -> set[int]:
    """The ids of the published sites (of ``site_ids`` when given): the site's and its
    organization's ``publish`` switches both on, and the organization's plan includes public
    publishing. Coordinates, addresses and the like are the publisher's own conditions."""
    query = Site.select(Site.id).where(await published_condition())
    if site_ids is not None:
        wanted = list(site_ids)
        if not wanted:
            return set()
        query = query.where(Site.id.is_in(wanted))
    return {row["id"] for row in await query}
