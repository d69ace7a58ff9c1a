"""The audit log: every change a person, an API key, the CLI or a plugin makes, and every command
it sends to a station, with the object's fields before and after.

Entries are only ever added here (no route or page edits or deletes them; the raw database
page does not list the table). One exception, which the law asks for: erasing a driver's personal
data (``csms.core.services.driver_data.erase``) replaces that driver's name, e-mail, phone and
notes in earlier entries by "(erased)"; what changed, when and by whom stays. Each entry carries the organization of the object it concerns,
so an organization's users read the entries of their own objects only.
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Callable, Mapping

from csms.core.tables import AuditEntry, Station

log = logging.getLogger("csms.audit")

SECRET_FIELDS = frozenset({"password", "password_hash", "pending_password_hash", "key_hash", "secret", "token_a",
                           "token_b", "token_c", "oidc_client_secret"})
COMMAND_ACTORS = ("user:", "api_key:", "cli", "ocpi:")  # commands worth an entry: not the automatic ones
# Told (object_type, action) of every recorded entry; the runtime registers the running core's
# local lists here, so that a changed card reaches the stations' local lists.
CHANGE_LISTENERS: list[Callable[[str, str], None]] = []


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, str) and len(value) > 2000:
        return value[:2000] + "…"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


def snapshot(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A row as it goes into the log: JSON values, secrets masked."""
    if row is None:
        return None
    return {k: ("***" if k in SECRET_FIELDS and v else _plain(v)) for k, v in row.items()}


def changed(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> tuple[dict | None, dict | None]:
    """Only the fields that differ (all of them for a create or a delete)."""
    b, a = snapshot(before), snapshot(after)
    if b is None or a is None:
        return b, a
    keys = [k for k in set(b) | set(a) if b.get(k) != a.get(k) and k not in ("updated_at",)]
    return {k: b.get(k) for k in keys}, {k: a.get(k) for k in keys}


async def record(*, actor: str, action: str, object_type: str, object_id: Any = "",
                 before: Mapping[str, Any] | None = None, after: Mapping[str, Any] | None = None,
                 organization: int | None = None, actor_organization: int | None = None,
                 summary: str = "") -> None:
    """Add one entry (an update that changed nothing adds none)."""
    b, a = changed(before, after)
    if action == "update" and before is not None and after is not None and not a:
        return
    await AuditEntry(actor=actor[:120], action=action[:40], object_type=object_type[:40],
                     object_id=str(object_id)[:100], before=b, after=a, organization=organization,
                     actor_organization=actor_organization, summary=summary[:255]).save()
    for listener in CHANGE_LISTENERS:
        listener(object_type, action)


async def record_command(station_id: str, action: str, payload: Mapping[str, Any], requested_by: str) -> None:
    """A command sent to a station by a person, a key, the CLI or a roaming partner."""
    if not requested_by.startswith(COMMAND_ACTORS):
        return
    row = await Station.select(Station.organization).where(Station.station_id == station_id).first()
    await record(actor=requested_by, action="command", object_type="station", object_id=station_id,
                 after={"action": action, "payload": dict(payload)},
                 organization=row["organization"] if row else None, summary=f"{action} sent to {station_id}")
