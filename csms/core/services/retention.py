"""Pruning of the raw frame log and the refused authorizations (and, when configured, old meter
values) after their retention, hourly, by one node of a cluster (the leader of the ``retention``
job). Refused authorizations are kept as long as the frames they came in, and at most the newest
:data:`REFUSALS_PER_STATION` of each station (a card refused every 10 s would otherwise pile up)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from csms.core.leases import LeaderJob, lead
from csms.core.tables import MessageLog, MeterValue, RefusedAuthorization
from csms.core.timeutil import utcnow

if TYPE_CHECKING:
    from csms.core.services.commands import Bus
    from csms.settings import Settings

log = logging.getLogger("csms.retention")

REFUSALS_PER_STATION = 1000
# Window functions: SQLite 3.25+ and PostgreSQL.
_BEYOND_NEWEST = (
    "DELETE FROM refused_authorization WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER "
    "(PARTITION BY station_id ORDER BY id DESC) AS n FROM refused_authorization) AS ranked WHERE n > {})"
)


class RetentionService:
    def __init__(self, settings: Settings, bus: Bus, *, node_id: str, interval: float = 3600.0) -> None:
        self.settings = settings
        self.bus = bus
        self.node_id = node_id
        self.interval = interval
        self._job: LeaderJob | None = None

    async def start(self) -> None:
        # one node of a cluster prunes (the leader of the "retention" job); the bus is started
        self._job = lead("retention", self._run, client=getattr(self.bus, "redis", None),
                         owner=self.node_id, lease_seconds=self.settings.leader_lease)

    async def stop(self) -> None:
        if self._job:
            await self._job.stop()

    async def prune(self) -> dict[str, int]:
        """Delete what is past its retention; return how many rows of each kind went."""
        settings = self.settings
        removed = {"message_log": 0, "meter_value": 0, "refused_authorization": 0}
        cutoff = utcnow() - timedelta(days=settings.message_log_retention_days)
        removed["message_log"] = await MessageLog.count().where(MessageLog.created_at < cutoff)
        await MessageLog.delete().where(MessageLog.created_at < cutoff)
        before = await RefusedAuthorization.count()
        await RefusedAuthorization.delete().where(RefusedAuthorization.timestamp < cutoff)
        await RefusedAuthorization.raw(_BEYOND_NEWEST, REFUSALS_PER_STATION)
        removed["refused_authorization"] = before - await RefusedAuthorization.count()
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
