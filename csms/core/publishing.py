"""Which sites are published: shown on the public map and its feeds, and to roaming partners.

A site is published when its own ``publish`` flag is on and so is its organization's (a site of
no organization follows its own flag only). The organization's switch is the owner's word for all
of its sites at once: off, none of them appears anywhere public, whatever the site's flag says.
Everything that publishes asks here (the public map, ``/public/locations``, and plugins through
:func:`csms.plugin_api.published_site_ids`), so the two switches mean the same everywhere.
"""

from __future__ import annotations

from typing import Any, Iterable

from csms.core.tables import Site


def published_condition() -> Any:
    """The ``where`` clause of a ``Site`` query that keeps the published sites only."""
    return (Site.publish == True) & (  # noqa: E712 (Piccolo builds SQL from the comparison)
        Site.organization.is_null() | (Site.organization.publish == True))  # noqa: E712


async def published_site_ids(site_ids: Iterable[int] | None = None) -> set[int]:
    """The ids of the published sites (of ``site_ids`` when given): the site's and its
    organization's ``publish`` switches both on. Coordinates, addresses and the like are the
    publisher's own conditions."""
    query = Site.select(Site.id).where(published_condition())
    if site_ids is not None:
        wanted = list(site_ids)
        if not wanted:
            return set()
        query = query.where(Site.id.is_in(wanted))
    return {row["id"] for row in await query}
