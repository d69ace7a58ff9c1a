"""Live updates for the admin: domain events and power samples pushed to browsers over SSE.

``LiveHub`` listens to the core's event dispatcher and samples the total charging power.
Each browser tab holds one stream (``/admin/stream``); events are coalesced into a few topics
(``stations``, ``sessions``, ``events``, ``commands``, ``power``), each sent at most once a
second, so a busy site costs a browser a handful of small messages a second; pages re-fetch
the fragments a topic concerns. The events are those of this node: in multi-node mode a page sees the
stations connected to the node serving it live, and the rest on its next refresh.

The stream's first message, ``hello``, tells when this node last passed on a change
(``{"changed": epoch seconds}``); a page that was rendered before that (its ``<body
data-rendered>``) refreshes once, so a change between the page's render and its stream's first
open is not missed. Later (re)opens always refresh.

The ``seen`` topic carries no event: every ``seen_every`` seconds it tells the time of the last
frame of each station heard from since (``{"stations": {station id: ISO time}}``), so a page shows
"last seen" as it is, heartbeats and answers included, without reloading anything.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from datetime import datetime
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable

from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage
from piccolo.query.functions.aggregate import Count, Sum

from csms.api.tenancy import GLOBAL, Scope, restrict, visible_station_ids
from csms.core import events as ev
from csms.core.runtime import get_core
from csms.core.tables import ChargingSession
from csms.core.timeutil import utcnow

if TYPE_CHECKING:
    from csms.core.events import Event

log = logging.getLogger("csms.admin.live")

_TOPICS: dict[type, tuple[str, ...]] = {
    ev.StationConnected: ("stations", "events"),
    ev.StationDisconnected: ("stations", "events"),
    ev.StationBooted: ("stations", "events"),
    ev.ConnectorStatusChanged: ("stations", "events"),
    ev.FaultReported: ("stations", "events"),
    ev.StationReported: ("stations", "events"),
    ev.AuthorizationRefused: ("refusals",),
    ev.SessionStarted: ("sessions", "stations"),
    ev.SessionStopped: ("sessions", "stations"),
    ev.SessionUpdated: ("sessions",),
    ev.CommandAnswered: ("commands",),
}


class LiveHub:
    """Fans events out to the open streams and keeps the last hour of total power."""

    def __init__(self, *, sample_every: float = 5.0, min_interval: float = 1.0,
                 max_stream_seconds: float = 60.0, seen_every: float = 2.0) -> None:
        self.sample_every = sample_every
        self.seen_every = seen_every
        self.min_interval = min_interval
        # Streams end now and then (the browser reconnects at once) so that a server shutting
        # down, which waits for open responses, is never held up for long.
        self.max_stream_seconds = max_stream_seconds
        self.power: deque[tuple[float, float]] = deque(maxlen=int(3600 / sample_every))
        self._queues: set[asyncio.Queue[tuple[str, dict]]] = set()
        self._task: asyncio.Task[None] | None = None
        self._seen_task: asyncio.Task[None] | None = None
        self._unlisten: Callable[[], None] | None = None
        self.last_change = 0.0  # time.time() of the last event passed on to the streams

    def start(self, events: ev.EventDispatcher) -> None:
        self._unlisten = events.listen(self.on_event)
        self._task = asyncio.create_task(self._sample_power(), name="csms-admin-power")
        self._seen_task = asyncio.create_task(self._tell_seen(), name="csms-admin-seen")

    async def stop(self) -> None:
        if self._unlisten:
            self._unlisten()
        for task in (self._task, self._seen_task):
            if task:
                task.cancel()
        for q in list(self._queues):
            q.put_nowait(("close", {}))

    def on_event(self, event: Event) -> None:
        topics = _TOPICS.get(type(event))
        if not topics:
            return
        self.last_change = time.time()
        if not self._queues:
            return
        data = {"event": event.name, "station_id": event.station_id}
        for q in list(self._queues):
            for topic in topics:
                if q.qsize() < 1000:
                    q.put_nowait((topic, data))

    async def totals(self, scope: Scope = GLOBAL) -> tuple[int, float]:
        """Active sessions and their total power (W) of the stations ``scope`` sees, from the
        database so every node counts."""
        row = await restrict(ChargingSession.select(Count(ChargingSession.id, alias="n"),
                                                    Sum(ChargingSession.power_w, alias="w")),
                             ChargingSession.station.organization, scope).where(
            ChargingSession.state == "active").first()
        return (row["n"] if row else 0), float((row or {}).get("w") or 0.0)

    async def _sample_power(self) -> None:
        while True:
            try:
                _, watts = await self.totals()
                now = time.time()
                self.power.append((now, watts))
                for q in list(self._queues):
                    q.put_nowait(("power", {"t": now, "w": watts}))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("power sample failed")
            await asyncio.sleep(self.sample_every)

    async def _tell_seen(self) -> None:
        since = utcnow()
        while True:
            await asyncio.sleep(self.seen_every)
            try:
                now = utcnow()
                seen: dict[str, datetime] = get_core().stations.seen_since(since)
                since = now
                if seen and self._queues:
                    data = {"stations": {sid: at.isoformat() for sid, at in seen.items()}}
                    for q in list(self._queues):
                        if q.qsize() < 1000:
                            q.put_nowait(("seen", data))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("telling last-seen times failed")

    async def messages(self, scope: Scope = GLOBAL) -> AsyncIterator[ServerSentEventMessage]:
        """One browser's stream: each topic at most once per ``min_interval``, and never a
        change left untold (the last event of a burst is sent when the interval has passed).
        A caller of an organization hears of its own stations only, and of their power (the
        station list is read when the stream opens; streams are reopened every
        ``max_stream_seconds``)."""
        queue: asyncio.Queue[tuple[str, dict]] = asyncio.Queue()
        self._queues.add(queue)
        deadline = time.monotonic() + self.max_stream_seconds
        pending: dict[str, dict] = {}
        last_sent: dict[str, float] = {}
        stations = await visible_station_ids(scope)
        visible = None if stations is None else set(stations)
        try:
            yield ServerSentEventMessage(event="hello", data=json.dumps({"changed": self.last_change}), retry=1000)
            while time.monotonic() < deadline:
                if pending:
                    due = min(last_sent.get(t, 0.0) + self.min_interval for t in pending)
                    wait = max(0.0, due - time.monotonic())
                else:
                    wait = 15.0
                try:
                    async with asyncio.timeout(wait):
                        topic, data = await queue.get()
                except TimeoutError:
                    if not pending:
                        yield ServerSentEventMessage(comment="keep-alive")
                        continue
                else:
                    if topic == "close":
                        return
                    batch = [(topic, data)]
                    while not queue.empty():
                        batch.append(queue.get_nowait())
                    for topic, data in batch:
                        if topic == "close":
                            return
                        if topic == "seen":
                            times: dict[str, Any] = data["stations"]
                            if visible is not None:
                                times = {sid: at for sid, at in times.items() if sid in visible}
                            if times:  # the times of all stations heard from since it was last sent
                                pending.setdefault("seen", {"stations": {}})["stations"].update(times)
                            continue
                        if visible is not None:
                            if topic == "power":
                                _, watts = await self.totals(scope)
                                data = {"t": data["t"], "w": watts}
                            elif data.get("station_id") not in visible:
                                continue
                        pending[topic] = data  # the latest of a topic stands for all of them
                now = time.monotonic()
                for name in [t for t in pending if now - last_sent.get(t, -self.min_interval) >= self.min_interval]:
                    last_sent[name] = now
                    yield ServerSentEventMessage(event=name, data=json.dumps(pending.pop(name)))
        finally:
            self._queues.discard(queue)

    def response(self, scope: Scope = GLOBAL) -> ServerSentEvent:
        return ServerSentEvent(self.messages(scope), headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
