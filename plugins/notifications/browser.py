"""Live notifications in the admin: an SSE stream (``/admin/notifications/stream``) and the
recent ones for the dashboard panel.

Each message is an ``event: notification`` whose data is a small HTML list item (swapped in by
htmx's SSE extension) carrying the title and event in ``data-`` attributes, from which the
panel's script raises a desktop notification when the user allowed them. Like the admin's own
live stream, a node shows the notifications of the stations connected to it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, AsyncIterator

from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage
from markupsafe import Markup, escape

if TYPE_CHECKING:
    from plugins.notifications.messages import Notification

_LEVEL = {"alert.opened": "bad", "session.outlived_connector": "bad", "station.offline": "bad", "alert.closed": "ok",
          "station.online": "ok",
          "session.stopped": "busy", "firmware.progress": "busy", "diagnostics.received": "muted"}


def item_html(n: Notification) -> Markup:
    level = _LEVEL.get(n.event, "muted")
    stamp = n.at.strftime("%H:%M:%S")
    return Markup(
        f'<li data-event="{escape(n.event)}" data-title="{escape(n.title)}">'
        f'<span class="badge {level}">{escape(n.event)}</span> {escape(n.title)} <small class="muted">{stamp}</small></li>'
    )


def shown_to(n: Notification, visible: frozenset[str] | None) -> bool:
    """Whether a viewer who sees the stations ``visible`` (None: all) is shown ``n``: an
    organization's users see notifications of their own stations only."""
    return visible is None or (bool(n.station_id) and n.station_id in visible)


class BrowserHub:
    def __init__(self, patterns: str, *, keep: int = 20, max_stream_seconds: float = 120.0) -> None:
        self.patterns = [p.strip() for p in patterns.split(",") if p.strip()]
        self.recent: deque[Notification] = deque(maxlen=keep)
        self.max_stream_seconds = max_stream_seconds
        self._queues: set[asyncio.Queue[Notification | None]] = set()

    def wanted(self, event: str) -> bool:
        return any(fnmatchcase(event, p) for p in self.patterns)

    def publish(self, n: Notification) -> None:
        if not self.wanted(n.event):
            return
        self.recent.appendleft(n)
        for q in list(self._queues):
            if q.qsize() < 200:
                q.put_nowait(n)

    def close(self) -> None:
        for q in list(self._queues):
            q.put_nowait(None)

    async def messages(self, visible: frozenset[str] | None = None) -> AsyncIterator[ServerSentEventMessage]:
        queue: asyncio.Queue[Notification | None] = asyncio.Queue()
        self._queues.add(queue)
        deadline = time.monotonic() + self.max_stream_seconds
        try:
            yield ServerSentEventMessage(event="hello", data="{}", retry=2000)
            while time.monotonic() < deadline:
                try:
                    async with asyncio.timeout(15):
                        n = await queue.get()
                except TimeoutError:
                    yield ServerSentEventMessage(comment="keep-alive")
                    continue
                if n is None:
                    return
                if not shown_to(n, visible):
                    continue
                yield ServerSentEventMessage(event="notification", data=str(item_html(n)), id=n.id)
        finally:
            self._queues.discard(queue)

    def response(self, visible: frozenset[str] | None = None) -> ServerSentEvent:
        return ServerSentEvent(self.messages(visible), headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
