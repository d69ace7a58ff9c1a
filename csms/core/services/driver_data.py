"""A driver's personal data under the GDPR: the export of all we hold about them (right of
access, Art. 15/20) and its erasure (right to erasure, Art. 17). The driver portal and the
admin both call these; neither writes to the tables itself.

Erasure anonymises the :class:`~csms.core.tables.Driver` row instead of deleting it: charging
sessions and the statements plugins made from them are accounting records that must stay, and
they keep pointing at the same (now nameless) row, so totals per driver and per statement do not
change. The name, e-mail address, phone and notes go, the portal account and its sign-in secrets
go, every card is blocked and unlinked from the person, and the personal fields of the driver's
earlier audit entries are redacted (the fact of each change stays). The stations that may hold
data about the cards are asked to clear it (:mod:`csms.core.services.station_data_clear`,
queued here, sent in the background). Plugins erase their own
copies in ``driver_erased``; they add to the export in ``driver_data_export``.

An erasure is recorded in the audit log as ``erase`` of the driver; that entry is what makes a
second erasure a no-op (it only asks the plugins again, so one that failed can be retried).

Deleting the row (:func:`delete`) is for a driver without charging sessions only: it would set
the sessions' driver to NULL and leave the personal data in the audit log and plugins' copies.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, AsyncIterator, Iterable

from piccolo.columns.combination import Combinable
from piccolo.engine.sqlite import SQLiteEngine, TransactionType

from csms.core import audit, id_tokens
from csms.core.services import station_data_clear
from csms.core.tables import AuditEntry, ChargingSession, Driver, DriverAccount, DriverSecret, IdToken, Organization
from csms.core.timeutil import utcnow
from csms.plugins import call_hook

log = logging.getLogger("csms.driver_data")

EXPORT_FORMAT = "csms-driver-data/1"
ERASED_NAME = "Erased driver"
PERSONAL_FIELDS = ("name", "email", "phone", "notes")
REDACTED = "(erased)"
PRICING_CONCURRENCY = 8


class UnknownDriver(LookupError):
    """There is no driver with this id."""


class DriverBusy(Exception):
    """The driver has a charging session running: erasure waits until it has ended."""


class DriverHasSessions(Exception):
    """The driver has charging sessions: deleting the row would unlink them (erase instead)."""

    def __init__(self, driver_id: int, sessions: int) -> None:
        super().__init__(f"Driver {driver_id} has {sessions} charging session{'s' if sessions != 1 else ''}: "
                         "deleting the driver would unlink those sessions (per-driver totals lose them), "
                         "leave statements naming a driver who no longer exists, and keep the personal data "
                         "in the audit log and in plugins' copies. Erase the driver's personal data instead "
                         "(the sessions stay, with an anonymised driver).")
        self.driver_id = driver_id
        self.sessions = sessions


@dataclass
class Erasure:
    """What an erasure did (``already`` when the driver had been erased before)."""

    driver_id: int
    already: bool = False
    cards: list[str] = field(default_factory=list)
    sessions_kept: int = 0
    station_clears: int = 0  # station and card pairs queued for CustomerInformation clear (N10)
    failed_plugins: list[str] = field(default_factory=list)


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


async def _driver(driver_id: int) -> dict[str, Any]:
    row = await Driver.select(*Driver.all_columns()).where(Driver.id == driver_id).first()
    if row is None:
        raise UnknownDriver(f"no driver {driver_id}")
    return row


async def is_erased(driver_id: int) -> bool:
    return await AuditEntry.exists().where((AuditEntry.object_type == "driver") & (AuditEntry.action == "erase")
                                           & (AuditEntry.object_id == str(driver_id)))


# -- export ---------------------------------------------------------------------------------------


async def _priced(rows: list[dict[str, Any]]) -> list[Any]:
    gate = asyncio.Semaphore(PRICING_CONCURRENCY)

    async def one(row: dict[str, Any]) -> Any:
        async with gate:
            return await call_hook("price_session", session=row, final=row["state"] == "completed")

    return list(await asyncio.gather(*(one(r) for r in rows)))


async def export(driver_id: int) -> dict[str, Any]:
    """Everything held about driver ``driver_id`` as one JSON-ready dict: the driver, the portal
    account (never its password hash), the cards, every session with its station, energy and cost,
    and what plugins add (``driver_data_export``) under their names."""
    driver = await _driver(driver_id)
    organization = await Organization.select(Organization.id, Organization.name).where(
        Organization.id == driver["organization"]).first() if driver["organization"] is not None else None
    account = await DriverAccount.select(DriverAccount.password_hash, DriverAccount.updated_at).where(
        DriverAccount.driver == driver_id).first()
    open_sessions = await DriverSecret.count().where((DriverSecret.driver == driver_id)
                                                     & (DriverSecret.kind == "session")
                                                     & (DriverSecret.expires_at > utcnow()))
    cards = await IdToken.select(IdToken.id_token, IdToken.type, IdToken.status, IdToken.label, IdToken.group_id,
                                 IdToken.expires_at, IdToken.created_at).where(
        IdToken.driver == driver_id).order_by(IdToken.id)
    sessions = await ChargingSession.select(
        *ChargingSession.all_columns(), ChargingSession.station.station_id.as_alias("station_id")).where(
        ChargingSession.driver == driver_id).order_by(ChargingSession.started_at).output(load_json=True)
    costs = await _priced(sessions)
    answers = await call_hook("driver_data_export", driver=dict(driver))
    return _plain({
        "format": EXPORT_FORMAT,
        "exported_at": utcnow(),
        "driver": {"id": driver["id"], "name": driver["name"], "email": driver["email"], "phone": driver["phone"],
                   "kind": driver["kind"], "notes": driver["notes"], "created_at": driver["created_at"],
                   "organization": organization},
        "portal_account": None if account is None else {
            "password_set": bool(account["password_hash"]), "updated_at": account["updated_at"],
            "signed_in_browsers": open_sessions},
        "cards": cards,
        "sessions": [{
            "id": s["id"], "station_id": s["station_id"], "evse_id": s["evse_id"], "connector_id": s["connector_id"],
            "transaction_id": s["transaction_id"], "id_token": s["id_token"], "state": s["state"],
            "started_at": s["started_at"], "stopped_at": s["stopped_at"], "energy_wh": s["energy_wh"],
            "meter_start_wh": s["meter_start_wh"], "meter_stop_wh": s["meter_stop_wh"],
            "stop_reason": s["stop_reason"], "cost": cost.to_json() if cost is not None else None,
        } for s, cost in zip(sessions, costs)],
        "plugins": {answer.plugin: answer.value for answer in answers},
    })


# -- erasure --------------------------------------------------------------------------------------


@asynccontextmanager
async def _write_transaction() -> AsyncIterator[None]:
    db = Driver._meta.db
    if isinstance(db, SQLiteEngine):  # take the write lock first: no session starts between check and erase
        async with db.transaction(transaction_type=TransactionType.immediate):
            yield
    else:
        async with db.transaction():
            yield


async def running_session(driver_id: int) -> dict[str, Any] | None:
    """The driver's running session (by the driver or one of their cards), or None."""
    tokens = [r["id_token"] for r in await IdToken.select(IdToken.id_token).where(IdToken.driver == driver_id)]
    mine: Combinable = ChargingSession.driver == driver_id
    if tokens:
        mine = mine | ChargingSession.id_token.is_in(tokens)
    return await ChargingSession.select(ChargingSession.id, ChargingSession.station.station_id.as_alias("station_id")
                                        ).where((ChargingSession.state == "active") & mine).first()


async def redact_audit(object_type: str, object_ids: Iterable[Any], fields: Iterable[str]) -> int:
    """Replace the values of ``fields`` in the before/after snapshots of the audit entries of
    ``object_type`` objects ``object_ids`` with ``"(erased)"`` (empty values stay empty); the fact
    of each change stays. For plugins whose audited objects copy a driver's personal data (through
    :mod:`csms.plugin_api`). Returns how many entries changed."""
    ids, names = sorted({str(i) for i in object_ids}), set(fields)
    if not ids or not names:
        return 0
    entries = await AuditEntry.select(AuditEntry.id, AuditEntry.before, AuditEntry.after).where(
        (AuditEntry.object_type == object_type) & AuditEntry.object_id.is_in(ids)).output(load_json=True)
    changed = 0
    for entry in entries:
        redacted = {side: {k: (REDACTED if k in names and v not in (None, "") else v)
                           for k, v in entry[side].items()} if isinstance(entry[side], dict) else entry[side]
                    for side in ("before", "after")}
        if redacted != {"before": entry["before"], "after": entry["after"]}:
            await AuditEntry.update({AuditEntry.before: redacted["before"], AuditEntry.after: redacted["after"]}).where(
                AuditEntry.id == entry["id"])
            changed += 1
    return changed


async def _redact_audit(driver_id: int) -> None:
    await redact_audit("driver", [driver_id], PERSONAL_FIELDS)


async def erase(driver_id: int, *, actor: str, actor_organization: int | None) -> Erasure:
    """Erase the personal data of driver ``driver_id`` (see the module's docstring). Raises
    :class:`UnknownDriver`, or :class:`DriverBusy` while one of their sessions runs; erasing an
    erased driver changes nothing but asks the plugins again."""
    driver = await _driver(driver_id)
    result = Erasure(driver_id)
    async with _write_transaction():
        result.already = await is_erased(driver_id)
        if not result.already:
            running = await running_session(driver_id)
            if running is not None:
                raise DriverBusy(f"A charging session is running at {running['station_id']}: it has to end "
                                 "before the account can be deleted.")
            cards = await IdToken.select(IdToken.id, IdToken.id_token, IdToken.type, IdToken.status).where(
                IdToken.driver == driver_id).order_by(IdToken.id)
            for card in cards:
                if card["status"] != "Blocked":
                    await id_tokens.set_status(card["id"], "Blocked", actor=actor, actor_organization=actor_organization,
                                               summary="its driver's personal data was erased")
            await IdToken.update({IdToken.driver: None, IdToken.label: ""}).where(IdToken.driver == driver_id)
            await DriverAccount.delete().where(DriverAccount.driver == driver_id)
            await DriverSecret.delete().where(DriverSecret.driver == driver_id)
            await Driver.update({Driver.name: ERASED_NAME, Driver.email: None, Driver.phone: None,
                                 Driver.notes: ""}).where(Driver.id == driver_id)
            await _redact_audit(driver_id)
            result.cards = [c["id_token"] for c in cards]
            result.station_clears = await station_data_clear.queue(dict(driver), cards)
            result.sessions_kept = await ChargingSession.count().where(ChargingSession.driver == driver_id)
            await audit.record(actor=actor, action="erase", object_type="driver", object_id=driver_id,
                               after={"cards_unlinked": result.cards, "sessions_kept": result.sessions_kept,
                                      "organization": driver["organization"]},
                               organization=driver["organization"], actor_organization=actor_organization,
                               summary="personal data erased: cards blocked and unlinked, sessions kept")
    if result.station_clears:
        station_data_clear.queued()
    result.failed_plugins = await call_hook("driver_erased", driver=dict(driver))
    if result.failed_plugins:
        log.warning("driver %s erased, but plugins %s failed to erase their copies", driver_id, result.failed_plugins)
    return result


# -- deleting the row -----------------------------------------------------------------------------


async def delete(driver_id: int) -> dict[str, Any]:
    """Delete the row of driver ``driver_id``, one without charging sessions only; returns the row
    as it was. Raises :class:`UnknownDriver`, or :class:`DriverHasSessions`: the sessions'
    ``driver`` would be set to NULL (per-driver totals and statements would lose them) while the
    personal data stayed in the audit log's snapshots and in plugins' copies, so such a driver is
    erased (:func:`erase`) instead. A driver without sessions goes with their portal account and
    sign-ins (cascade); their cards stay, unlinked."""
    async with _write_transaction():  # no session starts between the check and the delete
        driver = await _driver(driver_id)
        sessions = await ChargingSession.count().where(ChargingSession.driver == driver_id)
        if sessions:
            raise DriverHasSessions(driver_id, sessions)
        await Driver.delete().where(Driver.id == driver_id)
    return driver
