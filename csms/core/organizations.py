"""Organizations named the way people name them: by id or by name; and the plan new ones get."""

from __future__ import annotations

import logging

from csms.core.tables import Organization, Plan

log = logging.getLogger("csms.plans")


async def find_organization(ref: str | int) -> int | None:
    """The id of the organization ``ref`` names (its id, or its exact name), or None."""
    text = str(ref).strip()
    if text.isdigit():
        row = await Organization.select(Organization.id).where(Organization.id == int(text)).first()
        if row is not None:
            return row["id"]
    row = await Organization.select(Organization.id).where(Organization.name == text).first()
    return row["id"] if row is not None else None


async def organization_for(ref: str) -> int | None:
    """The organization ``ref`` names, created (by that name, with ``CSMS_NEW_ORGANIZATION_PLAN``'s
    plan) if there is none; None for ""."""
    if not ref.strip():
        return None
    found = await find_organization(ref)
    if found is not None:
        return found
    row = Organization(name=ref.strip(), kind="customer", plan=await new_organization_plan())
    await row.save()
    return row.id


async def new_organization_plan() -> int | None:
    """The plan ``CSMS_NEW_ORGANIZATION_PLAN`` names for new top-level organizations (None: none,
    or no plan of that name, which is logged)."""
    from csms.settings import get_settings

    name = get_settings().new_organization_plan.strip()
    if not name:
        return None
    row = await Plan.select(Plan.id).where(Plan.name == name).first()
    if row is None:
        log.warning("CSMS_NEW_ORGANIZATION_PLAN names no plan: %r (new organizations get none)", name)
        return None
    return int(row["id"])
