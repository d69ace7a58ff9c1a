"""Typed domain events, delivered to the ``event`` hook and to live admin streams.

Events are queued by the core and delivered by one background task after the station got its
answer; a slow or failing plugin never blocks a station.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, ClassVar

from csms.core.background import wait_event

log = logging.getLogger("csms.events")


# Events emitted while a station's CALL is handled are held here and released after the answer
# is sent, so plugins never see (or act on) something before the station has its answer.
deferred_events: contextvars.ContextVar[list | None] = contextvars.ContextVar("csms_deferred_events", default=None)


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Event:
    name: ClassVar[str] = "event"
    station_id: str
    at: datetime = field(default_factory=_now, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["event"] = self.name
        d["at"] = self.at.isoformat()
        return d


@dataclass(frozen=True)
class StationConnected(Event):
    name: ClassVar[str] = "station.connected"
    ocpp_version: str = ""


@dataclass(frozen=True)
class StationDisconnected(Event):
    name: ClassVar[str] = "station.disconnected"
    reason: str = ""


@dataclass(frozen=True)
class StationBooted(Event):
    name: ClassVar[str] = "station.booted"
    vendor: str = ""
    model: str = ""
    firmware_version: str = ""
    reason: str = ""
    registration_status: str = ""
    triggered: bool = False  # the CSMS asked for this boot (TriggerMessage): no restart of the station


@dataclass(frozen=True)
class ConnectorStatusChanged(Event):
    name: ClassVar[str] = "connector.status"
    evse_id: int = 0
    connector_id: int = 0
    status: str = ""
    previous: str = ""
    error_code: str = ""


@dataclass(frozen=True)
class FaultReported(Event):
    name: ClassVar[str] = "station.fault"
    evse_id: int | None = None
    connector_id: int | None = None
    error_code: str = ""
    info: str = ""


@dataclass(frozen=True)
class AuthorizationRefused(Event):
    """A station was refused an id token (stored in ``refused_authorization`` before this is emitted)."""

    name: ClassVar[str] = "authorization.refused"
    id_token: str = ""
    token_type: str = ""
    status: str = ""
    purpose: str = ""
    evse_id: int | None = None


@dataclass(frozen=True)
class SessionStarted(Event):
    name: ClassVar[str] = "session.started"
    session_id: int = 0
    transaction_id: str = ""
    evse_id: int = 0
    id_token: str = ""
    reservation_id: int | None = None


@dataclass(frozen=True)
class SessionUpdated(Event):
    name: ClassVar[str] = "session.updated"
    session_id: int = 0
    energy_wh: float = 0.0
    power_w: float | None = None
    charging_state: str = ""


@dataclass(frozen=True)
class SessionStopped(Event):
    name: ClassVar[str] = "session.stopped"
    session_id: int = 0
    transaction_id: str = ""
    energy_wh: float = 0.0
    stop_reason: str = ""


@dataclass(frozen=True)
class MeterValuesReceived(Event):
    name: ClassVar[str] = "meter.values"
    evse_id: int = 0
    session_id: int | None = None
    samples: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class CommandAnswered(Event):
    name: ClassVar[str] = "command.answered"
    action: str = ""
    status: str = ""  # answered|error|timeout|offline
    response: dict[str, Any] | None = None


@dataclass(frozen=True)
class StationReported(Event):
    """Anything else a station told (firmware/log status, security events, NotifyEvent ...)."""

    name: ClassVar[str] = "station.reported"
    category: str = ""
    kind: str = ""
    details: dict[str, Any] = field(default_factory=dict)


EVENT_TYPES: tuple[type[Event], ...] = (
    StationConnected,
    StationDisconnected,
    StationBooted,
    ConnectorStatusChanged,
    FaultReported,
    AuthorizationRefused,
    SessionStarted,
    SessionUpdated,
    SessionStopped,
    MeterValuesReceived,
    CommandAnswered,
    StationReported,
)


class EventDispatcher:
    """Queues events and delivers them to in-process listeners, then to the ``event_batch`` hook
    (every event queued meanwhile in one call, at most ``MAX_BATCH``) and the ``event`` hook (one
    call per event)."""

    MAX_BATCH = 1000
    MAX_QUEUED = 100_000

    def __init__(self) -> None:
        # A plain deque and two events rather than an asyncio.Queue: the core queues two events
        # per MeterValues, and a Queue's put/get/task_done per event (waking the getter, counting
        # unfinished tasks) cost more than the delivery of a batch of them.
        self._queue: deque[Event] = deque()
        self._unfinished = 0
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._listeners: list[Callable[[Event], None]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="csms-events")

    async def stop(self) -> None:
        await self._idle.wait()
        if self._task:
            self._task.cancel()

    def emit(self, event: Event) -> None:
        held = deferred_events.get()
        if held is not None:
            held.append(event)
            return
        self._put((event,))

    def emit_all(self, events: list[Event]) -> None:
        """Queue ``events`` in order (those held while a CALL was handled), with one wake-up."""
        held = deferred_events.get()
        if held is not None:
            held.extend(events)
            return
        self._put(events)

    def _put(self, events: Sequence[Event]) -> None:
        room = self.MAX_QUEUED - self._unfinished
        if len(events) > room:
            for event in events[max(room, 0):]:
                log.warning("event queue full; dropping %s", event.name)
            events = events[:max(room, 0)]
            if not events:
                return
        self._queue.extend(events)
        self._unfinished += len(events)
        self._idle.clear()
        self._wakeup.set()

    def listen(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Register a synchronous listener (e.g. a live admin stream); returns an unsubscribe."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until every queued event has been delivered (used by tests and shutdown); with
        ``timeout``, at most that long (a plugin's handler that hangs must not hold a shutdown
        for ever): what is left is logged."""
        if timeout is None:
            await self._idle.wait()
            return
        if not await wait_event(self._idle, timeout):
            log.warning("%d events not delivered to plugins within %.0f s of the shutdown", self._unfinished, timeout)

    async def _run(self) -> None:
        from csms.plugins import call_hook

        queue = self._queue
        while True:
            # Everything queued meanwhile goes out as one batch: one ``event_batch`` hook call
            # for it instead of a hook call per event (the core emits two per MeterValues).
            if not queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if len(queue) <= self.MAX_BATCH:
                batch = list(queue)
                queue.clear()
            else:
                batch = [queue.popleft() for _ in range(self.MAX_BATCH)]
            try:
                listeners = list(self._listeners)
                for event in batch:
                    for listener in listeners:
                        try:
                            listener(event)
                        except Exception:
                            log.exception("event listener failed")
                await call_hook("event_batch", events=batch)
                for event in batch:
                    await call_hook("event", event=event)
            finally:
                self._unfinished -= len(batch)
                if not self._unfinished:
                    self._idle.set()
