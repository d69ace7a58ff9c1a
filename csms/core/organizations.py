"""Organizations named the way people name them: by id or by name."""

from __future__ import annotations

from csms.core.tables import Organization


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
    """The organization ``ref`` names, created (by that name) if there is none; None for ""."""
    if not ref.strip():
        return None
    found = await find_organization(ref)
    if found is not None:
        return found
    row = Organization(name=ref.strip(), kind="customer")
    await row.save()
    return row.id
