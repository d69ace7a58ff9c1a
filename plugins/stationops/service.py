"""The plugin's background work: one event worker, the campaign driver and the alert evaluator.

The ``event_batch`` hook only hands events over (it never blocks the core's dispatcher); the worker
applies them in order. Station reports are followed on every node (a station's messages arrive
at the node holding its socket); sending updates and evaluating alerts happen on one node, the
leader of the ``stationops`` job (``run_as_leader``: elected through Redis, taken over by another
node within a lease period when it dies; without Redis this node). A node with
``CSMS_STATIONOPS_RUNNER`` off never leads.
"""

from __future__ import annotations

import asyncio
import logging

from csms.plugin_api import LeaderJob, run_as_leader
from csms.plugin_api import events as ev
from plugins.stationops import diagnostics
from plugins.stationops.alerts import AlertEvaluator, ensure_default_rules
from plugins.stationops.campaigns import CampaignDriver
from plugins.stationops.config import stationops_settings

log = logging.getLogger("csms.stationops")

_FOLLOWED = (ev.StationReported, ev.StationBooted, ev.StationConnected, ev.SessionStopped)


class StationOps:
    def __init__(self) -> None:
        settings = stationops_settings()
        self.runner = settings.runner
        # the driver's loop runs in the leader's job; every node follows station reports
        self.campaigns = CampaignDriver(interval=settings.campaign_interval, drive=False)
        self.alerts = AlertEvaluator(interval=settings.alert_interval)
        self.queue: asyncio.Queue[ev.Event] = asyncio.Queue(maxsize=100_000)
        self._worker: asyncio.Task[None] | None = None
        self.leader: LeaderJob | None = None

    async def start(self) -> None:
        await ensure_default_rules()
        self.campaigns.start()
        if self.runner:
            self.leader = run_as_leader("stationops", self._lead)
        self._worker = asyncio.create_task(self._work(), name="stationops-events")

    async def stop(self) -> None:
        if self._worker:
            self._worker.cancel()
        if self.leader is not None:
            await self.leader.stop()
        await self.campaigns.stop()

    async def _lead(self) -> None:
        """The leader's work: drive the campaigns and evaluate the alert rules until cancelled."""
        await asyncio.gather(self.campaigns._loop(), self.alerts._loop())

    def on_event(self, event: ev.Event) -> None:
        if self.leader is not None and self.leader.is_leader:
            self.alerts.on_event(event)
        if isinstance(event, _FOLLOWED):
            try:
                self.queue.put_nowait(event)
            except asyncio.QueueFull:
                log.warning("stationops event queue full; dropping %s", event.name)

    async def _work(self) -> None:
        while True:
            event = await self.queue.get()
            try:
                await self.campaigns.on_event(event)
                await diagnostics.on_event(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("stationops failed on %s", event.name)


_service: StationOps | None = None


def service() -> StationOps | None:
    return _service


async def start() -> None:
    global _service
    _service = StationOps()
    await _service.start()


async def stop() -> None:
    global _service
    if _service is not None:
        await _service.stop()
        _service = None
