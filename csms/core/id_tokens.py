"""Changing an id token's status: the one path the admin, the REST API and the driver portal take.

The change is audited, and the audit entry is what tells the stations' local lists
(:func:`csms.core.services.local_lists.note_change`); roaming partners hear of it through the
OCPI token sync, which compares the table with what it sent.
"""

from __future__ import annotations

from typing import Any

from csms.core import audit
from csms.core.tables import IdToken


async def set_status(token_pk: int, status: str, *, actor: str, actor_organization: int | None,
                     summary: str = "") -> dict[str, Any] | None:
    """Set the status of token ``token_pk``; its row before the change, or None when it is gone."""
    before = await IdToken.select(IdToken.id_token, IdToken.status, IdToken.organization).where(
        IdToken.id == token_pk).first()
    if before is None:
        return None
    await IdToken.update({IdToken.status: status}).where(IdToken.id == token_pk)
    await audit.record(actor=actor, action="update", object_type="token", object_id=before["id_token"],
                       before={"status": before["status"]},
                       after={"status": status, "organization": before["organization"]},
                       organization=before["organization"], actor_organization=actor_organization, summary=summary)
    return before


async def set_label(token_pk: int, label: str, *, actor: str, actor_organization: int | None) -> None:
    """Give token ``token_pk`` a name its owner recognises ("blue fob", "car 2")."""
    before = await IdToken.select(IdToken.id_token, IdToken.label, IdToken.organization).where(
        IdToken.id == token_pk).first()
    if before is None:
        return
    await IdToken.update({IdToken.label: label}).where(IdToken.id == token_pk)
    await audit.record(actor=actor, action="update", object_type="token", object_id=before["id_token"],
                       before={"label": before["label"]}, after={"label": label, "organization": before["organization"]},
                       organization=before["organization"], actor_organization=actor_organization)
