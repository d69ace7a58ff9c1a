"""Pruning of the raw frame log (and, when configured, old meter values) after their retention,
hourly, by one node of a cluster (the leader of the ``retention`` job)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from csms.core.leases import LeaderJob, lead
from csms.core.tables import MessageLog, MeterValue
from csms.core.timeutil import utcnow

if TYPE_CHECKING:
    from csms.core.runtime import Core

log = logging.getLogger("csms.retention")


class RetentionService:
    def __init__(self, core: Core, *, interval: float = 3600.0) -> None:
        self.core = core
        self.interval = interval
        self._job: LeaderJob | None = None

    async def start(self) -> None:
        # one node of a cluster prunes (the leader of the "retention" job); the bus is started
        core = self.core
        self._job = lead("retention", self._run, client=getattr(core.commands.bus, "redis", None),
                         owner=core.node_id, lease_seconds=core.settings.leader_lease)

    async def stop(self) -> None:
        if self._job:
            await self._job.stop()

    async def prune(self) -> dict[str, int]:
        """Delete what is past its retention; return how many rows of each kind went."""
        settings = self.core.settings
        removed = {"message_log": 0, "meter_value": 0}
        cutoff = utcnow() - timedelta(days=settings.message_log_retention_days)
        removed["message_log"] = await MessageLog.count().where(MessageLog.created_at < cutoff)
        await MessageLog.delete().where(MessageLog.created_at < cutoff)
        if settings.meter_value_retention_days > 0:
            cutoff = utcnow() - timedelta(days=settings.meter_value_retention_days)
            removed["meter_value"] = await MeterValue.count().where(MeterValue.timestamp < cutoff)
            await MeterValue.delete().where(MeterValue.timestamp < cutoff)
        return removed

    async def _run(self) -> None:
        while True:
            try:
                removed = await self.prune()
                if any(removed.values()):
                    log.info("retention removed %s", removed)
            except Exception:
                log.exception("retention pruning failed")
            await asyncio.sleep(self.interval)
