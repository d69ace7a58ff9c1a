"""Clearing an erased driver's data on stations (OCPP 2.0.1 N10 Clear Customer Information).

When a driver is erased (:func:`csms.core.services.driver_data.erase`), each of their cards is
queued, in the erasure's transaction, for every station that may hold data about it: the
stations where the card was used (sessions), those whose acknowledged local list holds it, and
the stations of the driver's organization and the organizations below it. The queue is the
table ``station_data_clear``; one row per station and card.

- OCPP 2.0.1 and 2.1 stations get ``CustomerInformation`` with ``clear: true``, ``report:
  false`` and the card's ``idToken`` (through :class:`CustomerInformationService`, which logs
  the request in the station's event log) once they are connected and accepted: at once when
  online, after their next boot (or connection) when offline. A timeout is tried again at the
  next connection, up to :data:`MAX_ATTEMPTS` times.
- OCPP 1.6 has no CustomerInformation: the card goes to the station's local list as Blocked (the
  erasure blocks every card, and the local list follows every card change), which is what
  clears it there; the row records that at once.

Each outcome (the station's status, or why nothing was sent) stays in the row and is audited as
``clear_customer_data`` of the driver, so an operator can show it was done. Nothing here runs
in the erasure's request: the sending is a background task that never blocks the erasure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Callable

from csms.core import audit
from csms.core import events as ev
from csms.core.ocpp.outbound.local_lists import token_type
from csms.core.ocpp.validation import OcppError
from csms.core.services.commands import CommandTimeout, StationOffline, UnknownStation
from csms.core.services.local_lists import ancestors
from csms.core.services.operations import NotSupported, OperationError
from csms.core.services.station_rounds import StationDueTimes, for_each_station, run_rounds
from csms.core.tables import ChargingSession, Driver, LocalAuthList, Organization, Station, StationDataClear
from csms.core.timeutil import utcnow
from csms.settings import LocalListSettings

if TYPE_CHECKING:
    from csms.core.services.commands import CommandService
    from csms.core.services.customer_information import CustomerInformationService

log = logging.getLogger("csms.station_data_clear")

PENDING, LOCAL_LIST = "Pending", "LocalList"
MAX_ATTEMPTS = 5
CONCURRENT_STATIONS = 8
NO_CUSTOMER_INFORMATION = ("1.6",)
# Wakes the running service after an erasure committed (the running core appends to it).
QUEUED_LISTENERS: list[Callable[[], None]] = []


def _below(tree: dict[int, int | None], organization: int) -> set[int]:
    """``organization`` and every organization below it."""
    return {o for o in tree if organization in ancestors(tree, o)}


async def _stations_for(driver: dict[str, Any], tokens: list[str]) -> dict[str, str]:
    """station id → stored OCPP version of every station that may hold data about ``tokens``."""
    wanted: set[int] = set()
    rows = await ChargingSession.select(ChargingSession.station).where(ChargingSession.id_token.is_in(tokens))
    wanted.update(r["station"] for r in rows if r["station"] is not None)
    for row in await LocalAuthList.select(LocalAuthList.station, LocalAuthList.entries).output(load_json=True):
        if any(t in (row["entries"] or {}) for t in tokens):
            wanted.add(row["station"])
    if driver.get("organization") is not None:
        tree = {r["id"]: r["parent"] for r in await Organization.select(Organization.id, Organization.parent)}
        below = sorted(_below(tree, driver["organization"]))
        if below:
            wanted.update(r["id"] for r in await Station.select(Station.id).where(Station.organization.is_in(below)))
    if not wanted:
        return {}
    stations = await Station.select(Station.station_id, Station.ocpp_version).where(Station.id.is_in(sorted(wanted)))
    return {r["station_id"]: r["ocpp_version"] or "" for r in stations}


async def queue(driver: dict[str, Any], cards: list[dict[str, Any]]) -> int:
    """Queue the clearing of ``cards`` (``id_token``, ``type``) of the erased ``driver`` on the
    stations that may hold them (run inside the erasure's transaction); returns how many are to be
    sent (the rows of 1.6 stations are recorded as done: their local list clears the card)."""
    if not cards:
        return 0
    stations = await _stations_for(driver, [c["id_token"] for c in cards])
    now = utcnow()
    rows = []
    for station_id, version in sorted(stations.items()):
        for card in cards:
            done = version in NO_CUSTOMER_INFORMATION
            rows.append(StationDataClear(
                station_id=station_id, driver_id=driver["id"], id_token=card["id_token"],
                token_type=token_type(version or "2.0.1", card["type"]), created_at=now,
                status=LOCAL_LIST if done else PENDING, done_at=now if done else None,
                detail="OCPP 1.6 has no CustomerInformation: the card goes to the station's local list as Blocked"
                if done else ""))
    if rows:
        await StationDataClear.insert(*rows)
    return sum(1 for r in rows if r.status == PENDING)


def queued() -> None:
    """An erasure committed with rows queued: wake the running service."""
    for listener in QUEUED_LISTENERS:
        listener()


async def clears(driver_id: int) -> list[dict[str, Any]]:
    """The clearing requests of driver ``driver_id``, per station and card, oldest first."""
    return await StationDataClear.select(
        StationDataClear.station_id, StationDataClear.id_token, StationDataClear.status, StationDataClear.detail,
        StationDataClear.attempts, StationDataClear.request_id, StationDataClear.created_at,
        StationDataClear.done_at).where(StationDataClear.driver_id == driver_id).order_by(StationDataClear.id)


_COLUMNS = (StationDataClear.id, StationDataClear.station_id, StationDataClear.driver_id, StationDataClear.id_token,
            StationDataClear.token_type, StationDataClear.status, StationDataClear.detail, StationDataClear.attempts,
            StationDataClear.request_id, StationDataClear.created_at, StationDataClear.done_at)


async def listing(*, station_ids: list[str] | None, station_id: str | None = None, driver_id: int | None = None,
                  status: str | None = None, pending: bool | None = None, limit: int = 100,
                  offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The clearing requests (newest first) of the stations ``station_ids`` (None: all), filtered,
    and how many there are."""
    query, count = StationDataClear.select(*_COLUMNS), StationDataClear.count()
    conditions = []
    if station_ids is not None:
        conditions.append(StationDataClear.station_id.is_in(station_ids or [""]))
    if station_id is not None:
        conditions.append(StationDataClear.station_id == station_id)
    if driver_id is not None:
        conditions.append(StationDataClear.driver_id == driver_id)
    if status is not None:
        conditions.append(StationDataClear.status == status)
    if pending is not None:
        conditions.append(StationDataClear.done_at.is_null() if pending else StationDataClear.done_at.is_not_null())
    for condition in conditions:
        query, count = query.where(condition), count.where(condition)
    rows = await query.order_by(StationDataClear.id, ascending=False).limit(limit).offset(offset)
    return rows, await count


class StationDataClearService:
    """Sends the queued clears to connected stations (see the module's docstring)."""

    def __init__(self, events: ev.EventDispatcher, commands: CommandService,
                 customer_information: CustomerInformationService) -> None:
        self.events = events
        self.commands = commands
        self.customer_information = customer_information
        self.config = LocalListSettings()  # the same delays after a boot or a connection
        self._wake = asyncio.Event()
        self._due = StationDueTimes(self.config, self._wake)
        self._all = False
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None

    async def start(self) -> None:
        self._unsubscribe = self.events.listen(self._on_event)
        self._all = True  # what an earlier run left pending, for the stations connected here
        self._task = asyncio.create_task(self._run(), name="csms-station-data-clear")

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def wake(self) -> None:
        """Rows were queued: send them to the stations connected now."""
        self._all = True
        self._wake.set()

    def _on_event(self, event: ev.Event) -> None:
        self._due.on_event(event)

    async def _run(self) -> None:
        await run_rounds(self._wake, self._next_at, self._pass, log, "clearing customer data on stations")

    def _next_at(self) -> float:
        return float("-inf") if self._all else self._due.next_at()

    async def _pass(self) -> None:
        batch = set(self._due.take(time.monotonic()))
        if self._all:
            self._all = False
            rows = await StationDataClear.select(StationDataClear.station_id).where(
                StationDataClear.status == PENDING).distinct()
            batch.update(r["station_id"] for r in rows if self.commands.version_of(r["station_id"]) is not None)
        if not batch:
            return

        async def one(station_id: str, _: bool) -> None:
            try:
                await self.send(station_id)
            except Exception:
                log.exception("customer data not cleared on %s", station_id)

        await for_each_station(((sid, False) for sid in batch), one, CONCURRENT_STATIONS)

    async def send(self, station_id: str) -> None:
        """Send the station's pending clears, one after the other; an offline station keeps them."""
        station = await Station.select(Station.registration_status).where(Station.station_id == station_id).first()
        if station is None or station["registration_status"] != "Accepted":
            return
        rows = await StationDataClear.select().where(
            (StationDataClear.station_id == station_id) & (StationDataClear.status == PENDING)).order_by(
            StationDataClear.id)
        for row in rows:
            if not await self._one(row):
                return

    async def _one(self, row: dict[str, Any]) -> bool:
        """Send one clear and record its outcome; False when the station went away."""
        by = f"erasure of driver {row['driver_id']}"
        values: dict[str, Any] = {"attempts": row["attempts"] + 1}
        try:
            outcome = await self.customer_information.request(
                row["station_id"], report=False, clear=True, id_token=row["id_token"],
                token_type=row["token_type"] or "Local", by=by)
            values.update(status=outcome["status"], request_id=outcome["request_id"], detail=outcome["words"])
        except (StationOffline, UnknownStation):
            return False
        except CommandTimeout:
            if values["attempts"] < MAX_ATTEMPTS:
                await self._store(row, {**values, "detail": "the station did not answer in time; tried again "
                                                            "at its next connection"}, done=False)
                return False
            values.update(status="Timeout", detail=f"the station did not answer in time ({MAX_ATTEMPTS} tries)")
        except NotSupported as exc:
            values.update(status="NotSupported", detail=str(exc))
        except OperationError as exc:
            values.update(status="NotSent", detail=str(exc))
        except OcppError as exc:
            values.update(status="Error", detail=f"{exc.code}: {exc.description}"[:500])
        await self._store(row, values, done=True)
        return True

    async def _store(self, row: dict[str, Any], values: dict[str, Any], *, done: bool) -> None:
        if done:
            values["done_at"] = utcnow()
        await StationDataClear.update({getattr(StationDataClear, k): v for k, v in values.items()}).where(
            StationDataClear.id == row["id"])
        if done:
            driver = await Driver.select(Driver.organization).where(Driver.id == row["driver_id"]).first()
            await audit.record(
                actor="system", action="clear_customer_data", object_type="driver", object_id=row["driver_id"],
                after={"station_id": row["station_id"], "id_token": row["id_token"], "status": values["status"],
                       "detail": values.get("detail", "")},
                organization=driver["organization"] if driver else None,
                summary=f"customer data cleared on {row['station_id']}: {values['status']}")
