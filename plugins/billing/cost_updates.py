"""The running cost pushed to the station's display.

On when ``CSMS_BILLING_COST_UPDATES=1``. Driven by the core's ``SessionUpdated`` events (one per
meter value message), at most once per ``CSMS_BILLING_COST_UPDATE_INTERVAL`` seconds per
session; what the station was last sent for the session is not sent again (the total; with the
1.6 DataTransfer also the meter reading and whether the car charges: the core's
``running_costs.shown``). The core's ``running_costs`` service picks the message: OCPP 2.0.1
``CostUpdated``; OCPP 1.6 a California Pricing ``RunningCost`` DataTransfer when the core's
``CSMS_RUNNING_COST_DATA_TRANSFER`` is on (nothing otherwise). Sending happens in a task of its
own, so a slow station never holds up event delivery; one session's sends go one at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from csms.plugin_api import events as ev, get_core
from plugins.billing.assignments import session_row
from plugins.billing.config import billing_settings
from plugins.billing.costing import quote_session

log = logging.getLogger("csms.billing")


class CostUpdates:
    def __init__(self) -> None:
        self._last_sent: dict[int, float] = {}
        self._last_shown: dict[int, tuple[Any, ...]] = {}  # what the station was last sent, per session
        self._later: set[int] = set()  # sessions with a cost update waiting for the interval to pass
        # one send at a time per session: the check against what the station shows, the send and
        # its record are one step (two overlapping sends of one figure would both pass the check)
        self._sending: dict[int, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.SessionStopped):
            self._last_sent.pop(event.session_id, None)
            self._last_shown.pop(event.session_id, None)
            self._sending.pop(event.session_id, None)
            return
        settings = billing_settings()
        if not settings.cost_updates or not isinstance(event, ev.SessionUpdated):
            return
        now = time.monotonic()
        last = self._last_sent.get(event.session_id)
        if last is not None and now - last < settings.cost_update_interval:
            # too soon: sent once the interval has passed (the last change must reach the station
            # even when no update follows it), one waiting update per session
            if event.session_id not in self._later:
                self._later.add(event.session_id)
                self._spawn(self._send_later(event.station_id, event.session_id,
                                             last + settings.cost_update_interval - now))
            return
        self._last_sent[event.session_id] = now
        self._spawn(self.send(event.station_id, event.session_id))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_later(self, station_id: str, session_id: int, delay: float) -> None:
        try:
            await asyncio.sleep(max(delay, 0.0))
        finally:
            self._later.discard(session_id)
        if session_id not in self._last_sent:  # the session ended meanwhile
            return
        self._last_sent[session_id] = time.monotonic()
        await self.send(station_id, session_id)

    async def send(self, station_id: str, session_id: int) -> None:
        core = get_core()
        if not core.running_costs.sends_to(station_id):
            return
        async with self._sending.setdefault(session_id, asyncio.Lock()):
            await self._send(core, station_id, session_id)

    async def _send(self, core: Any, station_id: str, session_id: int) -> None:
        session = await session_row(session_id)
        if session is None or session["state"] != "active":
            return
        try:
            quote = await quote_session(session, final=False)
            if quote is None:
                return
            charging = session["charging_state"] in ("", "Charging")
            shown = core.running_costs.shown(station_id, cost=quote.cost, meter_wh=session["meter_last_wh"],
                                             charging=charging)
            if self._last_shown.get(session_id) == shown:
                return  # the station shows this already
            await core.running_costs.send(
                station_id, transaction_id=session["transaction_id"], cost=quote.cost,
                meter_wh=session["meter_last_wh"], charging=charging, by="plugin:billing")
            if session_id in self._last_sent:  # not ended meanwhile
                self._last_shown[session_id] = shown
        except Exception:
            log.warning("the running cost of session %s to %s failed", session_id, station_id, exc_info=True)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # what was sent belongs to this app's sessions: an app started next in the process (tests
        # start many, each on its own database) numbers its sessions from 1 again
        self._last_sent.clear()
        self._last_shown.clear()
        self._later.clear()
        self._sending.clear()


cost_updates = CostUpdates()
