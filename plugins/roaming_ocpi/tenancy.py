"""Whose roaming partners are (organizations as tenants), and what a partner may see.

* A **partner** with an ``organization`` is that organization's: the users of that organization
  (and of those above it) see and manage it; another organization's partner is a 404. A
  partner of no organization is the installation's: global users only.
* What a partner **gets and does** is limited the same way, with the partner in the place of
  a user: an organization's partner gets the Locations (sites), Tariffs and Tokens (cards) of
  that organization's tree, its tokens charge at that tree's stations, its commands reach that
  tree's Locations; the installation's partners get everything. Tariffs of no organization are
  the installation's, used by every organization (as billing has it): every partner gets them.
* Everything that names a partner (pushes, commands, request log, sessions, CDRs, objects it
  sent) is seen by whoever sees the partner.

The object kinds registered here (``roaming_partner``, ``roaming_push``, ``roaming_command``) are
what the roaming routes name in their tenant rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from csms.plugin_api import (
    GLOBAL, Scope, Station, owner_by, register_kind, restrict, scope_for,
)
from plugins.roaming_ocpi.tables import CommandRecord, Outbox, Partner

Q = TypeVar("Q")


async def _organization_of(partner_id: int) -> int | None:
    row = await Partner.select(Partner.organization).where(Partner.id == partner_id).first()
    return row["organization"] if row is not None else None


def _through_partner(column: Any) -> Any:
    """An owner lookup for a table naming its partner by id in ``column``: the organization of
    the row's partner (an unknown row: the lookup's answer for none)."""
    partner_of = owner_by(column._meta.table._meta.primary_key, column)

    async def owner(value: Any) -> Any:
        partner = await partner_of(value)
        return await _organization_of(partner) if isinstance(partner, int) else partner

    return owner


register_kind("roaming_partner", owner_by(Partner.id, Partner.organization))
register_kind("roaming_push", _through_partner(Outbox.partner))
register_kind("roaming_command", _through_partner(CommandRecord.partner))


# -- callers: which partners a scope sees -------------------------------------------------------


def restrict_partners(query: Q, scope: Scope) -> Q:
    """A query of partners limited to those ``scope`` sees."""
    return restrict(query, Partner.organization, scope)


async def visible_partner_ids(scope: Scope) -> list[int] | None:
    """The ids of the partners ``scope`` sees (None: all of them)."""
    if scope.is_global:
        return None
    return [r["id"] for r in await restrict_partners(Partner.select(Partner.id), scope)]


def by_partner(query: Q, column: Any, partner_ids: list[int] | None) -> Q:
    """``query`` limited to rows whose partner ``column`` is one of ``partner_ids`` (None: all)."""
    if partner_ids is None:
        return query
    return query.where(column.is_in(partner_ids or [0]))  # type: ignore[attr-defined]


# -- partners: what each one sees -------------------------------------------------------------------


async def partner_scope(partner: dict[str, Any] | None) -> Scope:
    """What ``partner`` sees: its organization's tree, or everything for the installation's."""
    organization = (partner or {}).get("organization")
    return GLOBAL if organization is None else await scope_for(organization)


def shown(scope: Scope, organization: int | None, *, shared: bool = False) -> bool:
    """Whether an object of ``organization`` goes to a partner of ``scope``; ``shared`` objects of
    no organization (the installation's tariffs) go to every partner."""
    return scope.sees(organization) or (shared and organization is None)


async def station_visible(scope: Scope, station_id: str) -> bool:
    """Whether the station is one of ``scope``'s (any station for the installation's partners)."""
    if scope.is_global:
        return True
    row = await Station.select(Station.organization).where(Station.station_id == station_id).first()
    return row is not None and scope.sees(row["organization"])


@dataclass(frozen=True)
class Audience:
    """Which partners a push is for: those seeing objects of ``organization`` (every partner for
    a ``shared`` one of no organization) but, for an object that moved to another organization,
    not those seeing ``moved_to`` as well (they get the object in its new place instead)."""

    organization: int | None
    shared: bool = False
    moved_to: int | None = None
    moved: bool = False

    def reaches(self, scope: Scope) -> bool:
        if not shown(scope, self.organization, shared=self.shared):
            return False
        return not (self.moved and shown(scope, self.moved_to, shared=self.shared))
