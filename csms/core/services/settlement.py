"""Settlement of finished sessions: price them (``price_session``, final) and hand them to every
``settle_session`` implementation, once per session, retrying implementations that fail."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Callable

from csms.core.background import BackgroundTasks
from csms.core import events as ev
from csms.core.ocpp.outbound import known_calls
from csms.core.tables import ChargingSession
from csms.core.timeutil import utcnow
from csms.plugins import call_hook, hook_impls

if TYPE_CHECKING:
    from csms.core.domain import SessionCost
    from csms.core.services.commands import CommandService
    from csms.settings import Settings

log = logging.getLogger("csms.settlement")

RETRY_DELAYS = (1, 5, 30, 120, 600)


async def session_dict(session_id: int) -> dict[str, Any] | None:
    """A session as hooks receive it: the row plus the station's ident."""
    return await ChargingSession.select(
        *ChargingSession.all_columns(), ChargingSession.station.station_id.as_alias("station_id")
    ).where(ChargingSession.id == session_id).output(load_json=True).first()


class SettlementService:
    def __init__(self, settings: Settings, events: ev.EventDispatcher, commands: CommandService) -> None:
        self.settings = settings
        self.events = events
        self.commands = commands
        self._tasks = BackgroundTasks(log, "settlement")
        self._unlisten: Callable[[], None] | None = None

    async def start(self) -> None:
        self._unlisten = self.events.listen(self._on_event)
        pending = await ChargingSession.select(ChargingSession.id).where(
            (ChargingSession.state == "completed") & (ChargingSession.settled_at.is_null())
        )
        for row in pending:
            self._spawn(row["id"])

    async def stop(self) -> None:
        if self._unlisten:
            self._unlisten()
        await self._tasks.cancel()

    def _on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.SessionStopped):
            self._spawn(event.session_id)
            if self.settings.final_cost_data_transfer:
                self._tasks.spawn(self.send_final_cost_data_transfer(event))

    def _spawn(self, session_id: int) -> None:
        self._tasks.spawn(self.settle(session_id))

    async def final_cost(self, station_pk: int, transaction_id: str) -> SessionCost | None:
        """The final cost of a station's ended transaction for the station's display (OCPP 2.0.1
        ``totalCost``): ``price_session`` (final) within ``final_cost_timeout`` seconds; ``None``
        without a pricing plugin, for a session not ended, or when pricing is slow or fails, so
        the station's answer is never held up for long."""
        timeout = self.settings.final_cost_timeout
        if timeout <= 0 or not hook_impls("price_session"):
            return None
        try:
            async with asyncio.timeout(timeout):
                row = await ChargingSession.select(ChargingSession.id).where(
                    (ChargingSession.station == station_pk) & (ChargingSession.transaction_id == transaction_id)
                    & (ChargingSession.state == "completed")).first()
                return await self._final_cost(row["id"]) if row else None
        except TimeoutError:
            log.warning("the final cost of transaction %s took over %s s: answered without it", transaction_id,
                        timeout)
            return None

    @staticmethod
    async def _final_cost(session_id: int) -> SessionCost | None:
        session = await session_dict(session_id)
        return await call_hook("price_session", session=session, final=True) if session else None

    async def send_final_cost_data_transfer(self, event: ev.SessionStopped) -> None:
        """A version without the final cost in the answer to a transaction's end (OCPP 1.6's
        StopTransaction): with ``final_cost_data_transfer`` on, the station's adapter sends it in a
        ``DataTransfer`` (California Pricing FinalCost) once the station has its answer (the event
        comes after it)."""
        calls = known_calls(self.commands.version_of(event.station_id))
        if calls is None or not calls.final_cost_by_data_transfer or not hook_impls("price_session"):
            return
        try:
            cost = await self._final_cost(event.session_id)
            if cost is not None:
                call = calls.final_cost(transaction_id=event.transaction_id, cost=cost)
                await self.commands.send(event.station_id, call.action, call.payload,
                                         requested_by="csms:final_cost")
        except Exception:
            log.warning("FinalCost of session %s to %s failed", event.session_id, event.station_id, exc_info=True)

    async def settle(self, session_id: int) -> bool:
        """Settle one session; True when done. Retries with backoff while an implementation fails."""
        for attempt, delay in enumerate((0, *RETRY_DELAYS)):
            if delay:
                await asyncio.sleep(delay)
            session = await session_dict(session_id)
            if session is None or session["settled_at"] is not None:
                return True
            cost = await call_hook("price_session", session=session, final=True)
            failed = await call_hook("settle_session", session=session, cost=cost)
            if failed:
                log.warning("settlement by %s failed for session %s (attempt %d)", ", ".join(failed), session_id,
                            attempt + 1)
            else:
                await ChargingSession.update({ChargingSession.settled_at: utcnow()}).where(
                    ChargingSession.id == session_id)
                return True
        log.error("session %s could not be settled; it is retried at the next start", session_id)
        return False
