"""The command service: the only way anything (REST, admin, plugins) reaches a station.

A command is sent in the station's protocol version through a bus, awaited with a timeout and
recorded with its answer in the ``command`` table. ``LocalBus`` reaches the sockets held by this
process; a multi-node bus (Redis) implements the same two methods.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from csms.core import events as ev
from csms.core.ocpp.validation import InvalidPayload, OcppError
from csms.core import audit, metrics, tracing
from csms.core.services import passwords
from csms.core.tables import Command, Station
from csms.core.timeutil import utcnow

if TYPE_CHECKING:
    from csms.core.connections import ConnectionRegistry
    from csms.core.services.stations import StationService
    from csms.settings import Settings


class StationOffline(Exception):
    """The station holds no connection to any node."""


class CommandTimeout(Exception):
    """The station did not answer within the timeout."""


class UnknownStation(Exception):
    """No station with this id exists."""


log = logging.getLogger("csms.commands")


class Bus(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def register(self, station_id: str, version: str) -> None: ...

    async def unregister(self, station_id: str) -> None: ...

    def version_of(self, station_id: str) -> str | None: ...

    async def call(self, station_id: str, action: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]: ...


class LocalBus:
    """Delivers commands to connections held by this process."""

    def __init__(self, connections: ConnectionRegistry) -> None:
        self.connections = connections

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def register(self, station_id: str, version: str) -> None:
        pass  # the registry of live connections is the presence map

    async def unregister(self, station_id: str) -> None:
        pass

    def version_of(self, station_id: str) -> str | None:
        conn = self.connections.get(station_id)
        return conn.version if conn else None

    async def call(self, station_id: str, action: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        conn = self.connections.get(station_id)
        if conn is None:
            raise StationOffline(station_id)
        try:
            return await conn.call(action, payload, timeout=timeout)
        except ConnectionError:  # the socket went away while we waited
            raise StationOffline(station_id) from None


class CommandService:
    def __init__(self, settings: Settings, events: ev.EventDispatcher, stations: StationService, bus: Bus) -> None:
        self.settings = settings
        self.events = events
        self.stations = stations
        self.bus = bus

    def version_of(self, station_id: str) -> str | None:
        """The protocol version of the station's live connection, or None when offline."""
        return self.bus.version_of(station_id)

    def live_version(self, station_id: str) -> str:
        """The protocol version of the station's live connection; ``StationOffline`` when offline."""
        version = self.bus.version_of(station_id)
        if version is None:
            raise StationOffline(station_id)
        return version

    async def send(self, station_id: str, action: str, payload: dict[str, Any], *, timeout: float | None = None,
                   requested_by: str = "") -> dict[str, Any]:
        """Send ``action`` with a raw ``payload`` for the station's version; return its answer.

        Raises ``UnknownStation``, ``StationOffline``, ``CommandTimeout``, or ``OcppError`` (the
        station's CALLERROR, or our own payload failing the schema before anything is sent).
        """
        if not await Station.exists().where(Station.station_id == station_id):
            raise UnknownStation(station_id)
        new_password = passwords.password_set_by(action, payload)  # before anything is stored or sent
        if new_password is not None:  # a handshake with it counts from now (the answer may come late, or never)
            await self.stations.set_pending_password(station_id, new_password)
        logged = passwords.redact(action, payload)
        row = Command(station_id=station_id, action=action, payload=logged, requested_by=requested_by)
        await row.save()
        await audit.record_command(station_id, action, logged, requested_by)
        status, response, code, description = "answered", None, "", ""
        started = time.perf_counter()
        with tracing.command_span(station_id, action) as span:
            try:
                response = await self.bus.call(station_id, action, payload, timeout or self.settings.call_timeout)
                if new_password is not None and passwords.accepted(action, response):
                    # the hash the handshake checks, stored before anyone hears of the answer
                    await self.stations.set_password(station_id, new_password)
                    self.stations.record(station_id, "security", "password_changed",
                                         summary=f"the station accepted a new Basic-auth password ({action})",
                                         details={"requested_by": requested_by})
                elif new_password is not None:  # refused: the old password stays the only one
                    await self.stations.set_pending_password(station_id, None)
                return response
            except StationOffline:
                status, description = "offline", "station is not connected"
                raise
            except (asyncio.TimeoutError, TimeoutError):
                status, description = "timeout", "station did not answer in time"
                raise CommandTimeout(station_id) from None
            except InvalidPayload as exc:  # never sent: our payload breaks the schema
                status, code, description = "invalid", exc.code, exc.description
                raise
            except OcppError as exc:
                status, code, description = "error", exc.code, exc.description
                raise
            finally:
                metrics.command_answered(action, status, time.perf_counter() - started)
                if span is not None:
                    span.set_attribute("ocpp.outcome", status)
                await Command.update({
                    Command.status: status, Command.response: response, Command.error_code: code,
                    Command.error_description: description, Command.answered_at: utcnow(),
                }).where(Command.id == row.id)
                self.events.emit(ev.CommandAnswered(station_id, action=action, status=status, response=response))
