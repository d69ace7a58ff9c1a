"""Pruning of the raw frame log (and, when configured, old meter values) after their retention."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from csms.core.tables import MessageLog, MeterValue
from csms.core.timeutil import utcnow

if TYPE_CHECKING:
    from csms.core.runtime import Core

log = logging.getLogger("csms.retention")


class RetentionService:
    def __init__(self, core: Core, *, interval: float = 3600.0) -> None:
        self.core = core
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="csms-retention")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

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
