"""Drivers and organizations: writing them, each change with its audit entry.

The admin's driver and organization forms write through here. Who may see and choose what (an
organization's place in the tree, the owner of a new driver) is checked by the caller before;
this module writes the rows and logs the change under the organization it concerns (an
organization's own entries belong to it, a driver's to its organization), which is also what
tells the stations' local lists of a changed organization. The REST collections
(:mod:`csms.api.crud`) write through here too.
"""

from __future__ import annotations

from typing import Any, Literal, Mapping

from piccolo.table import Table

from csms.core import audit
from csms.core.organizations import new_organization_plan
from csms.core.services import driver_data, plans
from csms.core.tables import ApiKey, Driver, Organization, UserRole

Kind = Literal["driver", "organization"]
TABLES: dict[str, type[Table]] = {"driver": Driver, "organization": Organization}


class OrganizationInUse(Exception):
    """Organizations (``what="organizations"``), or users or API keys (``what="members"``) belong
    to the organization: they are moved or revoked first."""

    def __init__(self, organization_id: int, what: str) -> None:
        below = "organizations below it" if what == "organizations" else "users or API keys"
        super().__init__(f"organization {organization_id} is still in use ({below})")
        self.organization_id = organization_id
        self.what = what


class OrganizationNameTaken(Exception):
    """Another organization has the name (names are unique: they tell organizations apart)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"an organization named {name!r} already exists")
        self.name = name


async def _check_name(kind: Kind, values: Mapping[str, Any], pk: int | None) -> None:
    if kind != "organization" or "name" not in values:
        return
    clash = Organization.exists().where(Organization.name == values["name"])
    if pk is not None:
        clash = clash.where(Organization.id != pk)
    if await clash:
        raise OrganizationNameTaken(values["name"])


async def _row(kind: Kind, pk: int) -> dict[str, Any] | None:
    table = TABLES[kind]
    return await table.select().where(table._meta.primary_key == pk).first()


def _organization(kind: Kind, pk: int, row: Mapping[str, Any] | None, actor_organization: int | None) -> int | None:
    if kind == "organization":
        return pk
    return actor_organization if row is None else row["organization"]


async def create(kind: Kind, values: Mapping[str, Any], *, actor: str, actor_organization: int | None) -> int:
    """Add a driver or an organization with ``values`` (column names); its id. A top-level
    organization that names no plan gets ``CSMS_NEW_ORGANIZATION_PLAN``'s; one with the name of
    another is refused with :class:`OrganizationNameTaken`."""
    await _check_name(kind, values, None)
    if kind == "organization" and "plan" not in values and values.get("parent") is None:
        values = {**values, "plan": await new_organization_plan()}
    row = TABLES[kind](**values)
    await row.save()
    pk: int = row[TABLES[kind]._meta.primary_key._meta.name]
    after = await _row(kind, pk)
    await audit.record(actor=actor, action="create", object_type=kind, object_id=pk, after=after,
                       organization=_organization(kind, pk, after, actor_organization),
                       actor_organization=actor_organization)
    return pk


async def update(kind: Kind, pk: int, values: Mapping[str, Any], *, actor: str, actor_organization: int | None) -> None:
    """Change driver or organization ``pk`` (``values`` by column name). A new plan or parent of
    an organization is refused with :class:`~csms.core.services.plans.PlanLimitReached` when the
    plan that would apply to it (or to an organization below it) has fewer stations, hubs, users
    or API keys than they have (nothing changes then), and a name another organization has with
    :class:`OrganizationNameTaken`."""
    table = TABLES[kind]
    await _check_name(kind, values, pk)
    before = await _row(kind, pk)
    if kind == "organization" and ("plan" in values or "parent" in values):
        # another plan may apply now: refused (PlanLimitReached) when it would be exceeded
        async with plans.write_transaction():
            await Organization.update({getattr(Organization, k): v for k, v in values.items()}).where(
                Organization.id == pk)
            await plans.check_organization(pk)
    else:
        await table.update({getattr(table, k): v for k, v in values.items()}).where(table._meta.primary_key == pk)
    after = await _row(kind, pk)
    await audit.record(actor=actor, action="update", object_type=kind, object_id=pk, before=before, after=after,
                       organization=_organization(kind, pk, after if after is not None else before,
                                                  actor_organization),
                       actor_organization=actor_organization)


async def delete(kind: Kind, pk: int, *, actor: str, actor_organization: int | None) -> None:
    """Remove driver or organization ``pk``; tokens keep their history (their foreign keys are
    set to NULL). A driver with charging sessions is refused
    (:class:`~csms.core.services.driver_data.DriverHasSessions`: erase their personal data
    instead; :class:`~csms.core.services.driver_data.UnknownDriver` when there is none), an
    organization with organizations, users or API keys below it with :class:`OrganizationInUse`."""
    before: dict[str, Any] | None
    if kind == "driver":
        before = await driver_data.delete(pk)  # refuses a driver with sessions, in one write transaction
    else:
        before = await _row(kind, pk)
        if await Organization.exists().where(Organization.parent == pk):
            raise OrganizationInUse(pk, "organizations")
        if await UserRole.exists().where(UserRole.organization == pk) or \
                await ApiKey.exists().where(ApiKey.organization == pk):
            raise OrganizationInUse(pk, "members")
        await Organization.delete().where(Organization.id == pk)
    await audit.record(actor=actor, action="delete", object_type=kind, object_id=pk, before=before,
                       organization=_organization(kind, pk, before, actor_organization),
                       actor_organization=actor_organization)
