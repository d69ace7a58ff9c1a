"""Id tokens (cards, fobs, app tokens): the one path that writes them, for the admin, the REST API,
the CSV import and the driver portal.

Every change is audited here, and the audit entry is what tells the stations' local lists
(:meth:`csms.core.services.local_lists.LocalListService.note_change`); roaming partners hear of it through the
OCPI token sync, which compares the table with what it sent. The rules every caller shares (the
token's length, type and status; one row per token) are checked here too: callers that check
first with messages of their own (the admin's forms) keep them; what is left raises
:class:`InvalidToken` or :class:`TokenExists`.
"""

from __future__ import annotations

from typing import Any, Mapping

from csms.core import audit
from csms.core.tables import IdToken

TOKEN_TYPES = {"ISO14443", "ISO15693", "KeyCode", "Central", "eMAID", "MacAddress", "NoAuthorization", "Local"}
TOKEN_STATUSES = {"Accepted", "Blocked", "Expired", "Invalid"}
MAX_TOKEN = 36  # OCPP 2.0.1 IdToken; 1.6 idTag takes 20


class InvalidToken(ValueError):
    """A token text, type or status no card may have (``field`` names which)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class TokenExists(Exception):
    """Another card already has this token text."""

    def __init__(self, id_token: str) -> None:
        super().__init__(f"id token {id_token!r} already exists")
        self.id_token = id_token


def check_fields(type_: str | None = None, status: str | None = None, id_token: str | None = None) -> None:
    """Refuse (:class:`InvalidToken`) a token text that is not 1 to :data:`MAX_TOKEN` characters,
    an unknown type or status; None is not checked."""
    if id_token is not None and not 1 <= len(id_token) <= MAX_TOKEN:
        raise InvalidToken("id_token", "id_token must be 1-36 characters (OCPP 2.0.1 IdToken; 1.6 idTag allows 20)")
    if type_ is not None and type_ not in TOKEN_TYPES:
        raise InvalidToken("type", f"type must be one of {sorted(TOKEN_TYPES)}")
    if status is not None and status not in TOKEN_STATUSES:
        raise InvalidToken("status", f"status must be one of {sorted(TOKEN_STATUSES)}")


def _check_values(values: Mapping[str, Any]) -> None:
    check_fields(values.get("type"), values.get("status"), values.get("id_token"))


async def taken(id_token: str, *, other_than: int | None = None) -> bool:
    """Whether a card (other than the one with primary key ``other_than``) has ``id_token``."""
    query = IdToken.exists().where(IdToken.id_token == id_token)
    if other_than is not None:
        query = query.where(IdToken.id != other_than)
    return bool(await query)


async def _row(token_pk: int) -> dict[str, Any] | None:
    return await IdToken.select().where(IdToken.id == token_pk).first()


def _organization(row: Mapping[str, Any] | None, actor_organization: int | None) -> int | None:
    """The organization an entry about a card belongs to: the card's (the caller's when it is gone)."""
    return row["organization"] if row is not None else actor_organization


async def create(values: Mapping[str, Any], *, actor: str, actor_organization: int | None) -> dict[str, Any]:
    """Add a card with ``values`` (column names; ``id_token`` required); its row as stored.
    :class:`InvalidToken` or :class:`TokenExists` when it cannot be."""
    _check_values(values)
    id_token = values["id_token"]
    if await taken(id_token):
        raise TokenExists(id_token)
    await IdToken(**values).save()
    created = await IdToken.select().where(IdToken.id_token == id_token).first()
    await audit.record(actor=actor, action="create", object_type="token", object_id=id_token, after=created,
                       organization=_organization(created, actor_organization), actor_organization=actor_organization)
    assert created is not None
    return created


async def update(token_pk: int, values: Mapping[str, Any], *, actor: str,
                 actor_organization: int | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Change card ``token_pk`` (``values`` by column name; none: nothing is written); its rows
    before and after (None when there is no such card). :class:`InvalidToken` or
    :class:`TokenExists` (a new token text another card has) when it cannot be."""
    _check_values(values)
    if values.get("id_token") is not None and await taken(values["id_token"], other_than=token_pk):
        raise TokenExists(values["id_token"])
    before = await _row(token_pk)
    if values:
        await IdToken.update({getattr(IdToken, k): v for k, v in values.items()}).where(IdToken.id == token_pk)
    after = await _row(token_pk)
    await audit.record(actor=actor, action="update", object_type="token",
                       object_id=(after or {}).get("id_token", token_pk), before=before, after=after,
                       organization=_organization(after if after is not None else before, actor_organization),
                       actor_organization=actor_organization)
    return before, after


async def delete(token_pk: int, *, actor: str, actor_organization: int | None,
                 shown: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """Remove card ``token_pk`` (its sessions keep the token text); its row before, or None when
    there was none. ``shown`` is the row as the caller read it (the entry's *before*; the stored
    row when not given)."""
    before = await _row(token_pk)
    if before is None:
        return None
    await IdToken.delete().where(IdToken.id == token_pk)
    logged = shown if shown is not None else before
    await audit.record(actor=actor, action="delete", object_type="token", object_id=before["id_token"],
                       before=logged, organization=_organization(logged, actor_organization),
                       actor_organization=actor_organization)
    return before


async def import_rows(rows: list[tuple[str, dict[str, Any]]], *, actor: str, actor_organization: int | None,
                      source: str = "import") -> None:
    """Create or update many cards in one transaction and log them as one ``import`` entry.
    ``rows`` are (``"created"`` or ``"updated"``, the card's values by column name) in the order
    of the source; an update finds its card by ``id_token``. Nothing is written (and nothing
    logged) when one row is refused (:class:`InvalidToken`)."""
    if not rows:
        return
    for _, values in rows:
        _check_values(values)
    to_create = [values for result, values in rows if result == "created"]
    to_update = [values for result, values in rows if result == "updated"]
    async with IdToken._meta.db.transaction():
        if to_create:
            await IdToken.insert(*(IdToken(**values) for values in to_create))
        for values in to_update:
            changes = {getattr(IdToken, k): v for k, v in values.items() if k != "id_token"}
            await IdToken.update(changes).where(IdToken.id_token == values["id_token"])
    await audit.record(actor=actor, action="import", object_type="token", object_id="",
                       after={values["id_token"]: result for result, values in rows},
                       organization=actor_organization, actor_organization=actor_organization,
                       summary=f"{source}: {len(to_create)} created, {len(to_update)} updated")


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
