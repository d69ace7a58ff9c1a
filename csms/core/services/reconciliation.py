"""Transactions a rebooted station no longer knows: found after its BootNotification and closed.

A station that reboots in the middle of a session may lose the transaction: it never sends the
end of it, and the session stays open in the CSMS for ever. After an accepted BootNotification
(delivered as ``station.booted``, so after the station got its answer) the sessions still open for
the station are checked:

- OCPP 2.0.1: ``GetTransactionStatus`` for each, through the command service (so from the node
  that holds the socket, in multi-node mode too). ``ongoingIndicator`` false with
  ``messagesInQueue`` false: the station does not know it and has nothing queued for it, so it
  is closed. ``messagesInQueue`` true: the station's queued events will tell, nothing is done.
- OCPP 1.6 (no such question): a session its connector then reports ``Available`` for is closed;
  with ``CSMS_TRANSACTION_RESUME_GRACE_S`` also one the station does not resume (MeterValues of
  it, or its connector charging) within that many seconds.

Closing is :meth:`SessionService.close` with stop reason ``Reboot`` and flag
``closed_after_reboot``: the last stored meter reading is the end meter, ``session.stopped`` is
emitted once (billing settles it), and a stop the station sends later replaces this account.

A station that comes back without booting (a lost connection, not a reboot) resends what it
queued while offline. If it has not booted ``CSMS_TRANSACTION_CHECK_AFTER_RECONNECT_S`` after
connecting, an OCPP 2.0.1/2.1 station is asked ``GetTransactionStatus`` for each session still
open for it, as after a boot: one it no longer runs and has no queued messages of (its end was
lost, e.g. from a full offline queue) is closed with stop reason ``Other`` and flag
``closed_after_reconnect``.

Besides, a connector that turns ``Available`` (from an occupied status) while a session is open
on its EVSE is reported (station event log and ``station.reported`` with category
``transaction``, kind ``outlived_connector``): a transaction that outlives its connector's
occupancy is a station that forgot to end it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Callable, cast

from csms.core.background import BackgroundTasks
from csms.core import events as ev
from csms.core.ocpp.outbound import StationCalls, known_calls
from csms.core.ocpp.validation import OcppError
from csms.core.services.commands import CommandTimeout, StationOffline, UnknownStation
from csms.core.services.sessions import CLOSED_AFTER_REBOOT, CLOSED_AFTER_RECONNECT

if TYPE_CHECKING:
    from csms.core.services.commands import CommandService
    from csms.core.services.reports import ReportService
    from csms.core.services.sessions import ActiveSession, SessionService
    from csms.core.services.stations import StationService
    from csms.settings import Settings

log = logging.getLogger("csms.reconciliation")

# OCPP's stop reason for "the transaction was stopped because of a reboot", in both versions.
REBOOT_REASON = "Reboot"
# Connector statuses of a connector in use (either version); leaving one for Available ends the use.
OCCUPIED = frozenset({"Occupied", "Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing"})
# 1.6 statuses that show the station carries on with the transaction on that connector.
RESUMED = frozenset({"Charging", "SuspendedEV", "SuspendedEVSE"})


class TransactionReconciliation:
    def __init__(self, settings: Settings, events: ev.EventDispatcher, sessions: SessionService,
                 commands: CommandService, reports: ReportService, stations: StationService) -> None:
        self.settings = settings
        self.events = events
        self.sessions = sessions
        self.commands = commands
        self.reports = reports
        self.stations = stations
        # 1.6: per station, the ids of sessions open at its boot and not resumed since
        self._pending: dict[str, set[int]] = {}
        # per station connected and not booted since: the wait before its open sessions are checked
        self._unbooted: dict[str, asyncio.Task[Any]] = {}
        self._tasks = BackgroundTasks(log, "transaction reconciliation")
        self._unsubscribe: Callable[[], None] | None = None

    async def start(self) -> None:
        if self.settings.reconcile_transactions:
            self._unsubscribe = self.events.listen(self._on_event)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        await self._tasks.cancel()

    async def drain(self) -> None:
        """Wait until the checks under way are done (tests; after ``events.drain()``)."""
        await self._tasks.drain()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        return self._tasks.spawn(coro)

    def _on_event(self, event: ev.Event) -> None:
        """A listener on the event dispatcher: it runs after the station got its answer."""
        sid = event.station_id
        if isinstance(event, ev.StationBooted):
            self._pending.pop(sid, None)
            self._forget_connection(sid)
            if event.registration_status == "Accepted":
                self._booted(sid)
        elif isinstance(event, ev.StationConnected):
            delay = self.settings.transaction_check_after_reconnect_s
            self._forget_connection(sid)
            if delay > 0:
                self._unbooted[sid] = self._spawn(self._reconnected(sid, delay))
        elif isinstance(event, ev.StationDisconnected):
            self._pending.pop(sid, None)  # it boots again when it comes back
            self._forget_connection(sid)
        elif isinstance(event, ev.ConnectorStatusChanged):
            self._status(event)
        elif isinstance(event, ev.MeterValuesReceived):
            if event.session_id is not None:
                self._resumed(sid, event.session_id)
        elif isinstance(event, ev.SessionStopped):
            self._resumed(sid, event.session_id)

    def _booted(self, station_id: str) -> None:
        open_sessions = self.sessions.for_station(station_id)
        if not open_sessions:
            return
        calls = known_calls(self.commands.version_of(station_id))
        if calls is None:
            return
        if calls.supports_transaction_status:
            self._spawn(self._ask_status(station_id, calls, [s.id for s in open_sessions], after_reboot=True))
        else:
            pending = self._pending[station_id] = {s.id for s in open_sessions}
            grace = self.settings.transaction_resume_grace_s
            if grace > 0:
                self._spawn(self._grace(station_id, pending, grace))

    def _resumed(self, station_id: str, session_id: int) -> None:
        pending = self._pending.get(station_id)
        if pending is not None:
            pending.discard(session_id)

    def _status(self, event: ev.ConnectorStatusChanged) -> None:
        session = self.sessions.on_evse(event.station_id, event.evse_id) if event.evse_id else None
        if session is None:
            return
        pending = self._pending.get(event.station_id, set())
        if session.id in pending:
            if event.status == "Available":
                pending.discard(session.id)
                self._spawn(self._close(session, "its connector reported Available after the station's reboot"))
            elif event.status in RESUMED:
                pending.discard(session.id)
        elif event.status == "Available" and event.previous in OCCUPIED:
            self._spawn(self._outlived(session, event.previous))

    def _forget_connection(self, station_id: str) -> None:
        """The station booted, left or connected again: no check of its previous connection."""
        waiting = self._unbooted.pop(station_id, None)
        if waiting is not None:
            waiting.cancel()

    async def _reconnected(self, station_id: str, delay: float) -> None:
        """``delay`` after a connection the station has not booted on (else this was cancelled):
        check its open sessions."""
        await asyncio.sleep(delay)
        del self._unbooted[station_id]
        calls = known_calls(self.commands.version_of(station_id))
        open_sessions = self.sessions.for_station(station_id)
        if calls is not None and calls.supports_transaction_status and open_sessions:
            await self._ask_status(station_id, calls, [s.id for s in open_sessions], after_reboot=False)

    async def _ask_status(self, station_id: str, calls: StationCalls, session_ids: list[int], *,
                          after_reboot: bool) -> None:
        for session_id in session_ids:
            session = self.sessions.by_id(session_id)
            if session is None:
                continue  # ended meanwhile
            call = calls.get_transaction_status(transaction_id=session.transaction_id)
            try:
                answer = call.outcome(await self.commands.send(station_id, call.action, call.payload,
                                                               requested_by="reconciliation"))
            except (StationOffline, UnknownStation):
                return  # asked again at its next boot
            except (CommandTimeout, OcppError) as exc:
                log.warning("GetTransactionStatus of %s on %s not answered: %r", session.transaction_id,
                            station_id, exc)
                continue
            if answer["messages_in_queue"]:
                await self._record(session, "awaiting_queued_messages",
                                   f"transaction {session.transaction_id}: the station has queued messages of it",
                                   {"session_id": session.id, "transaction_id": session.transaction_id})
            elif answer["ongoing"] is False and after_reboot:
                await self._close(session, "unknown to the station after its reboot")
            elif answer["ongoing"] is False:
                await self._close(session, "not running on the station when it reconnected, and nothing of it queued",
                                  reason="Other", flag=CLOSED_AFTER_RECONNECT)

    async def _grace(self, station_id: str, pending: set[int], grace: float) -> None:
        await asyncio.sleep(grace)
        if self._pending.get(station_id) is not pending:
            return  # disconnected or booted again since: that boot has its own wait
        del self._pending[station_id]
        for session_id in sorted(pending):
            session = self.sessions.by_id(session_id)
            if session is not None:
                await self._close(session, f"not resumed by the station within {grace:g} s of its reboot")

    async def _close(self, session: ActiveSession, why: str, *, reason: str = REBOOT_REASON,
                     flag: str = CLOSED_AFTER_REBOOT) -> None:
        if self.sessions.by_id(session.id) is not session:
            return
        await self.sessions.close(session, reason=reason, flag=flag)
        await self._record(session, "reconciled", f"transaction {session.transaction_id} closed: {why}",
                           {"session_id": session.id, "transaction_id": session.transaction_id,
                            "meter_stop_wh": session.meter_last_wh})

    async def _outlived(self, session: ActiveSession, previous: str) -> None:
        details = {"session_id": session.id, "transaction_id": session.transaction_id, "evse_id": session.evse_id,
                   "previous": previous}
        await self._record(session, "outlived_connector",
                           f"connector Available while transaction {session.transaction_id} is open", details)
        self.reports.emit(session.station_id, "transaction", "outlived_connector", details)

    async def _record(self, session: ActiveSession, kind: str, summary: str, details: dict[str, Any]) -> None:
        """Into the station event log, committed (the work is off any station's request path)."""
        await cast("asyncio.Future[None]", self.stations.record(
            session.station_id, "transaction", kind, evse_id=session.evse_id, summary=summary, details=details,
            wait=True))
