"""Settlement of finished sessions: price them (``price_session``, final) and hand them to every
``settle_session`` implementation, once per session, retrying implementations that fail."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Callable

from csms.core import events as ev
from csms.core.tables import ChargingSession
from csms.core.timeutil import utcnow
from csms.plugins import call_hook

if TYPE_CHECKING:
    from csms.core.runtime import Core

log = logging.getLogger("csms.settlement")

RETRY_DELAYS = (1, 5, 30, 120, 600)


async def session_dict(session_id: int) -> dict[str, Any] | None:
    """A session as hooks receive it: the row plus the station's ident."""
    return await ChargingSession.select(
        *ChargingSession.all_columns(), ChargingSession.station.station_id.as_alias("station_id")
    ).where(ChargingSession.id == session_id).output(load_json=True).first()


class SettlementService:
    def __init__(self, core: Core) -> None:
        self.core = core
        self._tasks: set[asyncio.Task[bool]] = set()
        self._unlisten: Callable[[], None] | None = None

    async def start(self) -> None:
        self._unlisten = self.core.events.listen(self._on_event)
        pending = await ChargingSession.select(ChargingSession.id).where(
            (ChargingSession.state == "completed") & (ChargingSession.settled_at.is_null())
        )
        for row in pending:
            self._spawn(row["id"])

    async def stop(self) -> None:
        if self._unlisten:
            self._unlisten()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.SessionStopped):
            self._spawn(event.session_id)

    def _spawn(self, session_id: int) -> None:
        task = asyncio.create_task(self.settle(session_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
