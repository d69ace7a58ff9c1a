"""Which stations are connected to this process, and their live connection objects."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

log = logging.getLogger("csms.connections")


class LiveConnection(Protocol):
    """What the registry and its users need of a station's live connection: the OCPP adapters'
    ``StationConnection`` (the registry, used by the services, does not import the adapters)."""

    station_id: str

    @property
    def version(self) -> str: ...

    async def call(self, action: str, payload: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class ConnectionRegistry:
    """Live connections by station id. A station that reconnects replaces its old socket."""

    def __init__(self) -> None:
        self._by_id: dict[str, LiveConnection] = {}

    def get(self, station_id: str) -> LiveConnection | None:
        return self._by_id.get(station_id)

    def __contains__(self, station_id: str) -> bool:
        return station_id in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)

    def ids(self) -> list[str]:
        return list(self._by_id)

    async def add(self, conn: LiveConnection) -> None:
        old = self._by_id.get(conn.station_id)
        self._by_id[conn.station_id] = conn
        if old is not None and old is not conn:
            log.info("station %s reconnected; closing its previous socket", conn.station_id)
            await old.close(code=4000, reason="replaced by a new connection")

    def remove(self, conn: LiveConnection) -> bool:
        """Forget ``conn``; False when a newer connection already replaced it."""
        if self._by_id.get(conn.station_id) is conn:
            del self._by_id[conn.station_id]
            return True
        return False

    async def close_all(self) -> None:
        conns = list(self._by_id.values())
        await asyncio.gather(*(c.close(code=1001, reason="server shutting down") for c in conns), return_exceptions=True)
