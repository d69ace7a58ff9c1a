"""Whose billing objects are (organizations as tenants) and who may see or change them.

* A **tariff** of an organization is read and changed by that organization's tree; a tariff of
  no organization is the installation's: every caller reads and assigns it, only global callers
  change it.
* An **assignment** and a **statement** belong to their ``organization`` (a statement: its
  organization party, or its driver's organization when it was issued).
* A **home station** belongs to its employer: ``organization_id``, else the driver's
  organization.

The object kinds registered here (``tariff``, ``assignment``, ``home_station``, ``statement``) are
what the billing routes name in their tenant rules: another organization's object is a 404.
"""

from __future__ import annotations

from typing import Any, TypeVar

from csms.plugin_api import (
    N_, Driver, IdToken, Organization, Scope, Site, Station, owner_by, register_kind, restrict,
)
from plugins.billing.tables import Assignment, HomeStation, Statement, Tariff
from plugins.billing.tariffs import BillingError, tariff_readable

Q = TypeVar("Q")

_home_employer = owner_by(HomeStation.id, HomeStation.organization_id)
_statement_owner = owner_by(Statement.id, Statement.organization)


async def home_station_owner(value: Any) -> Any:
    owner = await _home_employer(value)
    if owner is not None:  # the employer's id, or "no such home station"
        return owner
    row = await HomeStation.select(HomeStation.driver_id.as_alias("driver")).where(HomeStation.id == value).first()
    driver = await Driver.select(Driver.organization).where(Driver.id == row["driver"]).first() if row else None
    return driver["organization"] if driver else None


async def statement_owner(value: Any) -> Any:
    """The owner of ``/statements/7``, ``/statements/7.csv`` or ``.pdf``."""
    number = str(value).partition(".")[0]
    return await _statement_owner(int(number) if number.isdigit() else 0)  # 0: no statement has it


register_kind("tariff", owner_by(Tariff.id, Tariff.organization))
register_kind("assignment", owner_by(Assignment.id, Assignment.organization))
register_kind("home_station", home_station_owner)
register_kind("statement", statement_owner)


# -- reading: lists limited to what a scope sees --------------------------------------------------


def readable_tariffs(query: Q, scope: Scope) -> Q:
    """``query`` limited to the tariffs ``scope`` reads: its own and the installation's."""
    if scope.is_global:
        return query
    return query.where(Tariff.organization.is_null() | Tariff.organization.is_in(  # type: ignore[attr-defined]
        sorted(scope.visible or {0})))


async def visible_driver_ids(scope: Scope) -> list[int] | None:
    if scope.is_global:
        return None
    return [r["id"] for r in await restrict(Driver.select(Driver.id), Driver.organization, scope)]


async def restrict_home_stations(query: Q, scope: Scope) -> Q:
    """``query`` limited to the home stations of the employers ``scope`` sees."""
    if scope.is_global:
        return query
    drivers = await visible_driver_ids(scope) or [0]
    return query.where(HomeStation.organization_id.is_in(sorted(scope.visible or {0}))  # type: ignore[attr-defined]
                       | (HomeStation.organization_id.is_null() & HomeStation.driver_id.is_in(drivers)))


# -- writing: what a scope may name -----------------------------------------------------------------


async def check_tariff_usable(tariff_id: int, scope: Scope, *, field: str = "tariff") -> None:
    """A tariff a scope may assign: its own or the installation's (else the answer for none)."""
    row = await Tariff.select(Tariff.organization).where(Tariff.id == tariff_id).first()
    if row is None or not tariff_readable(row, scope):
        raise BillingError(N_("no tariff %(tariff)s"), tariff=tariff_id, field=field)


async def check_visible(scope: Scope, *, station_id: str = "", site_id: int | None = None,
                        organization_id: int | None = None, driver_id: int | None = None,
                        id_token: str = "") -> None:
    """Refuse naming a station, site, organization, driver or card the scope does not see, with
    the same message as for one that does not exist (so another tenant's ids are not confirmed)."""
    if scope.is_global:
        return
    checks = ((station_id, "station_id", Station.select(Station.organization).where(Station.station_id == station_id),
               N_("no station %(station)s"), {"station": repr(station_id)}),
              (site_id is not None, "site_id", Site.select(Site.organization).where(Site.id == site_id),
               N_("no site %(site)s"), {"site": site_id}),
              (driver_id is not None, "driver_id", Driver.select(Driver.organization).where(Driver.id == driver_id),
               N_("no driver %(driver)s"), {"driver": driver_id}),
              (id_token, "id_token", IdToken.select(IdToken.organization).where(IdToken.id_token == id_token),
               N_("no card %(card)s"), {"card": repr(id_token)}))
    for named, field, query, message, params in checks:
        if named:
            row = await query.first()
            if row is None or not scope.sees(row["organization"]):
                raise BillingError(message, field=field, **params)
    if organization_id is not None and (not scope.sees(organization_id) or not await Organization.exists().where(
            Organization.id == organization_id)):
        raise BillingError(N_("no organization %(organization)s"), organization=organization_id, field="organization_id")


async def party_owner(kind: str, party_id: int) -> int | None:
    """The organization a statement of a party belongs to."""
    if kind == "driver":
        row = await Driver.select(Driver.organization).where(Driver.id == party_id).first()
        return row["organization"] if row else None
    return party_id
