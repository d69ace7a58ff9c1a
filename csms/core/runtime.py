"""The running core: services, the batched writer, the event dispatcher and live connections.

One ``Core`` exists per process (``get_core()``); the app's lifespan starts and stops it.
Plugins reach the services through it (``get_core().commands.send(...)``).

``Core`` is the composition root: it builds every service with the collaborators it uses (no
service sees the core) and wires the two pairs that need each other after construction:
the stations and the command bus (the bus calls the stations back when a node dies or a
station's socket is reclaimed; the stations announce their sockets on the bus), and the
operations and the reservations (an operator's reservation goes through the reservation service,
which sends its calls for the version the operations find).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import TYPE_CHECKING, Any, Awaitable, Callable, cast

from csms.core import audit, metrics
from csms.core.cluster import RedisBus, publish
from csms.core.connections import ConnectionRegistry
from csms.core.events import EventDispatcher
from csms.core.leases import LeaderJob, lead
from csms.core.ocpp.login_limits import FailedLogins
from csms.core.services.authorization import AuthorizationService
from csms.core.services.certificates import CertificateService
from csms.core.services.commands import Bus, CommandService, LocalBus
from csms.core.services.customer_information import CustomerInformationService
from csms.core.services.der import DerService
from csms.core.services.energy_controls import EnergyControlService
from csms.core.services.charging_profiles import ChargingProfileService
from csms.core.services.display_messages import DisplayMessageService
from csms.core.services.station_tariffs import StationTariffService
from csms.core.services.local_lists import LocalListService
from csms.core.services.network_profiles import NetworkProfileService
from csms.core.services.event_streams import EventStreamService
from csms.core.services.monitoring import MonitoringService
from csms.core.services import plans
from csms.core.services.operations import Operations
from csms.core.services.reconciliation import TransactionReconciliation
from csms.core.services.reports import ReportService
from csms.core.services.reservations import ReservationService
from csms.core.services.retention import RetentionService
from csms.core.services.running_costs import RunningCostService
from csms.core.services.tariff_fallback import TariffFallbackService
from csms.core.services.tariff_messages import TariffMessageService
from csms.core.services.sessions import SessionService
from csms.core.services.settlement import SettlementService
from csms.core.services.smart_charging.service import SmartChargingService
from csms.core.services.station_data_clear import QUEUED_LISTENERS, StationDataClearService
from csms.core.services.stations import StationService
from csms.db import BatchWriter
from csms.settings import report_config_file

if TYPE_CHECKING:
    import redis.asyncio as redis

    from csms.settings import Settings

log = logging.getLogger("csms.core")

_current: "Core | None" = None


def get_core() -> "Core":
    if _current is None:
        raise RuntimeError("the CSMS core is not running")
    return _current


class Core:
    def __init__(self, settings: Settings) -> None:
        report_config_file()  # plugins are loaded: every table of the config file has its owner
        self.settings = settings
        self.node_id = node_id = settings.node_id or f"{socket.gethostname()}:{os.getpid()}"
        self.events = events = EventDispatcher()
        self.connections = connections = ConnectionRegistry()
        self.failed_logins = FailedLogins()
        # Set in start(); typed as the started core has it (None only before start()).
        self.writer: BatchWriter = cast("BatchWriter", None)
        self._announcements: set[asyncio.Task[None]] = set()
        writer = self._writer  # the services write through the writer of the started core

        self.stations = StationService(settings, events, writer, node_id=node_id)
        self.auth = AuthorizationService(events, writer)
        self.sessions = SessionService(events, writer, self.auth)
        self.reports = ReportService(events, writer, self.stations)
        bus: Bus
        if settings.redis_url:
            bus = RedisBus(connections, settings.redis_url, node_id, ttl=settings.node_ttl,
                           on_node_dead=self.stations.node_lost, on_reclaim=self.stations.connected)
        else:
            bus = LocalBus(connections)
        self.stations.attach(bus)
        self.commands = CommandService(settings, events, self.stations, bus)
        self.operations = Operations(self.commands, self.stations, self.reports)
        self.settlement = SettlementService(settings, events, self.commands)
        self.running_costs = RunningCostService(settings, self.commands)
        self.tariff_messages = TariffMessageService()
        self.retention = RetentionService(settings, bus, node_id=node_id)
        self.smart_charging = SmartChargingService(
            settings, events, connections, node_id=node_id, commands=self.commands, operations=self.operations,
            reports=self.reports, sessions=self.sessions, stations=self.stations)
        self.local_lists = LocalListService(events, connections, self.commands)
        self.display_messages = DisplayMessageService(self.commands)
        self.charging_profiles = ChargingProfileService(self.commands, self.operations)
        self.charging_profiles.cleared_listeners.append(self.smart_charging.profiles_cleared)
        self.network_profiles = NetworkProfileService(self.commands, self.operations)
        self.station_tariffs = StationTariffService(self.commands)
        self.tariff_fallback = TariffFallbackService(settings, events, self.commands, self.operations,
                                                     self.tariff_messages)
        self.der = DerService(self.commands)
        self.energy_controls = EnergyControlService(self.commands)
        self.monitoring = MonitoringService(self.commands, self.stations, self.reports)
        self.event_streams = EventStreamService(self.commands, self.stations)
        self.customer_information = CustomerInformationService(self.commands, self.stations)
        self.station_data_clear = StationDataClearService(events, self.commands, self.customer_information)
        self.reservations = ReservationService(events, self.commands, self.operations.version)
        self.operations.attach(self.reservations)
        self.reconciliation = TransactionReconciliation(settings, events, self.sessions, self.commands,
                                                        self.reports, self.stations)
        self.certificates = CertificateService(events, self.commands, self.reports, self.stations,
                                               ca_directory=settings.data_dir / "ca")

    def _writer(self) -> BatchWriter:
        return self.writer

    def announce(self, topic: str, payload: Any = None) -> None:
        """Broadcast ``topic`` to every node in the background (for callers that cannot wait;
        nothing to do on one node)."""
        if not isinstance(self.commands.bus, RedisBus):
            return
        task = asyncio.create_task(publish(self.commands.bus, topic, payload), name=f"csms-announce-{topic}")
        self._announcements.add(task)
        task.add_done_callback(self._announced)

    def _announced(self, task: asyncio.Task[None]) -> None:
        self._announcements.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a broadcast could not be sent", exc_info=task.exception())

    async def start(self) -> None:
        global _current
        import csms.piccolo_conf as conf  # the database is configured when the core starts

        plans.forget_cached_plans()  # remembered from another database (a test's earlier server)
        self.writer = BatchWriter(conf.DB, pipeline=self.settings.db_write_pipeline)
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
        await self.station_data_clear.start()
        await self.reservations.start()
        await self.reconciliation.start()
        await self.tariff_fallback.start()
        self.certificates.start_renewals(client=getattr(self.commands.bus, "redis", None), owner=self.node_id,
                                         lease_seconds=self.settings.leader_lease)
        metrics.watch(self.connections, self.node_id)
        _current = self

    async def stop(self) -> None:
        global _current

        metrics.unwatch()
        await self.tariff_fallback.stop()
        await self.certificates.stop()
        await self.reconciliation.stop()
        await self.local_lists.stop()
        await self.station_data_clear.stop()
        await self.reservations.stop()
        await self.smart_charging.stop()
        await self.connections.close_all()
        await self.retention.stop()
        await self.settlement.stop()
        await self.reports.stop()
        await self.stations.stop()
        await self.commands.bus.stop()
        await self.events.drain(timeout=10.0)  # a plugin's hanging event handler must not hold the shutdown
        await self.events.stop()
        if self.writer is not None:
            await self.writer.close()
        _current = None


def _audited_change(object_type: str, action: str) -> None:
    """Every audited change reaches the running core's local lists (none runs in the CLI)."""
    if _current is not None:
        _current.local_lists.note_change(object_type, action)


audit.CHANGE_LISTENERS.append(_audited_change)


def _plans_changed(object_type: str, action: str) -> None:
    """A plan or an organization changed: the other nodes forget the plans they cached (this
    one already did: :func:`csms.core.services.plans.forget_cached_plans`)."""
    if _current is not None and object_type in plans.CHANGES:
        _current.announce(plans.PLANS_CHANGED)


audit.CHANGE_LISTENERS.append(_plans_changed)


def _clears_queued() -> None:
    """An erasure queued clears of customer data on stations: the running core sends them."""
    if _current is not None:
        _current.station_data_clear.wake()


QUEUED_LISTENERS.append(_clears_queued)


async def broadcast(topic: str, payload: Any) -> None:
    """Publish ``payload`` on ``topic`` to every node; nothing to do without Redis (one node) or
    without a running core in this process (the CLI)."""
    try:
        bus = get_core().commands.bus
    except RuntimeError:
        return
    await publish(bus, topic, payload)


def run_as_leader(name: str, job: Callable[[], Awaitable[Any]], *, lease_seconds: float | None = None,
                  client: redis.Redis | None = None, owner: str | None = None) -> LeaderJob:
    """Run ``job()`` on one node of the cluster at a time; returns at once with a
    :class:`LeaderJob` (call its ``stop()`` at shutdown).

    ``name`` names the job cluster-wide (the lease ``csms:lease:<name>``). The job runs while this
    node holds the lease and is cancelled when a renewal fails; a job that returns or raises is
    started again after a pause while the lease is still held. Without Redis (one node, the
    embedded default) the job runs at once and for as long as the process. ``lease_seconds``
    defaults to the ``leader_lease`` setting; ``client`` and ``owner`` default to the running
    core's Redis connection and node id.
    """
    if client is None:
        core = get_core()
        return lead(name, job, client=getattr(core.commands.bus, "redis", None), owner=owner or core.node_id,
                    lease_seconds=lease_seconds or core.settings.leader_lease)
    return lead(name, job, client=client, owner=owner or "node", lease_seconds=lease_seconds or 15.0)
