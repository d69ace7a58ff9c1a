"""The running core: services, the batched writer, the event dispatcher and live connections.

One ``Core`` exists per process (``get_core()``); the app's lifespan starts and stops it.
Plugins reach the services through it (``get_core().commands.send(...)``).
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING, cast

from csms.core.events import EventDispatcher

if TYPE_CHECKING:
    from csms.core.services.commands import Bus
    from csms.db import BatchWriter
    from csms.settings import Settings

log = logging.getLogger("csms.core")

_current: "Core | None" = None


def get_core() -> "Core":
    if _current is None:
        raise RuntimeError("the CSMS core is not running")
    return _current


class Core:
    def __init__(self, settings: Settings) -> None:
        from csms.core.connections import ConnectionRegistry
        from csms.core.ocpp.login_limits import FailedLogins
        from csms.core.services.authorization import AuthorizationService
        from csms.core.services.commands import CommandService, LocalBus
        from csms.core.services.display_messages import DisplayMessageService
        from csms.core.services.local_lists import LocalListService
        from csms.core.services.operations import Operations
        from csms.core.services.reconciliation import TransactionReconciliation
        from csms.core.services.reports import ReportService
        from csms.core.services.reservations import ReservationService
        from csms.core.services.retention import RetentionService
        from csms.core.services.sessions import SessionService
        from csms.core.services.settlement import SettlementService
        from csms.core.services.smart_charging.service import SmartChargingService
        from csms.core.services.stations import StationService
        from csms.settings import report_config_file

        report_config_file()  # plugins are loaded: every table of the config file has its owner
        self.settings = settings
        self.node_id = settings.node_id or f"{socket.gethostname()}:{os.getpid()}"
        self.events = EventDispatcher()
        self.connections = ConnectionRegistry()
        self.failed_logins = FailedLogins()
        # Set in start(); typed as the started core has it (None only before start()).
        self.writer: BatchWriter = cast("BatchWriter", None)
        self.stations = StationService(self)
        self.auth = AuthorizationService(self)
        self.sessions = SessionService(self)
        self.reports = ReportService(self)
        bus: Bus
        if settings.redis_url:
            from csms.core.cluster import RedisBus

            bus = RedisBus(self.connections, settings.redis_url, self.node_id, ttl=settings.node_ttl,
                           on_node_dead=self.stations.node_lost, on_reclaim=self.stations.connected)
        else:
            bus = LocalBus(self.connections)
        self.commands = CommandService(self, bus)
        self.operations = Operations(self)
        self.settlement = SettlementService(self)
        self.retention = RetentionService(self)
        self.smart_charging = SmartChargingService(self)
        self.local_lists = LocalListService(self)
        self.display_messages = DisplayMessageService(self)
        self.reservations = ReservationService(self)
        self.reconciliation = TransactionReconciliation(self)

    async def start(self) -> None:
        global _current
        import csms.piccolo_conf as conf
        from csms.core import metrics
        from csms.db import BatchWriter

        self.writer = BatchWriter(conf.DB, max_rows=self.settings.flush_max_rows)
        await self.writer.start()
        self.events.start()
        await self.commands.bus.start()
        await self.stations.start()
        await self.sessions.start()
        await self.reports.start()
        await self.settlement.start()
        await self.retention.start()
        await self.smart_charging.start()
        await self.local_lists.start()
        await self.reservations.start()
        await self.reconciliation.start()
        metrics.watch(self)
        _current = self

    async def stop(self) -> None:
        global _current
        from csms.core import metrics

        metrics.unwatch()
        await self.reconciliation.stop()
        await self.local_lists.stop()
        await self.reservations.stop()
        await self.smart_charging.stop()
        await self.connections.close_all()
        await self.retention.stop()
        await self.settlement.stop()
        await self.reports.stop()
        await self.stations.stop()
        await self.commands.bus.stop()
        await self.events.drain()
        await self.events.stop()
        if self.writer is not None:
            await self.writer.close()
        _current = None
