"""Multi-node mode: a command bus and presence registry on Redis (``CSMS_REDIS_URL``).

Each station's WebSocket lives on one node. Every node keeps a local copy of the presence map
(station → node, protocol version), kept current through a Redis hash and a pub/sub channel,
so asking "is it online, which version" costs no round trip. A command for a station held by
another node is published to that node's request channel; the node sends it over the socket
and publishes the station's answer (or error) to the requester's reply channel.

:func:`broadcast` tells every node (this one included) something on a topic, applied by the
handler registered in :data:`BROADCAST_HANDLERS` (e.g. "this API key is revoked").
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import TYPE_CHECKING, Any, Callable, cast

import redis.asyncio as redis

from csms.core.ocpp.validation import InvalidPayload, OcppError

if TYPE_CHECKING:
    from csms.core.connections import ConnectionRegistry

log = logging.getLogger("csms.cluster")

PRESENCE = "csms:presence"
PRESENCE_EVENTS = "csms:presence-events"
BROADCAST = "csms:broadcast"
ALIVE_SECONDS = 30

# topic → what every node does with a broadcast's payload (registered at import by its owner)
BROADCAST_HANDLERS: dict[str, Callable[[Any], None]] = {}


async def broadcast(topic: str, payload: Any) -> None:
    """Publish ``payload`` on ``topic`` to every node; nothing to do without Redis (one node) or
    without a running core in this process (the CLI)."""
    from csms.core.runtime import get_core

    try:
        bus = get_core().commands.bus
    except RuntimeError:
        return
    if isinstance(bus, RedisBus):
        await bus.broadcast(topic, payload)


class RedisBus:
    """Routes commands to whichever node holds the station's socket."""

    def __init__(self, connections: ConnectionRegistry, url: str, node_id: str) -> None:
        from csms.core.services.commands import LocalBus

        self.local = LocalBus(connections)
        self.url = url
        self.node_id = node_id
        self.presence: dict[str, tuple[str, str]] = {}
        self._redis: redis.Redis | None = None
        self._pubsub: Any = None
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[Any]] = []

    @property
    def req_channel(self) -> str:
        return f"csms:req:{self.node_id}"

    @property
    def rep_channel(self) -> str:
        return f"csms:rep:{self.node_id}"

    async def start(self) -> None:
        self._redis = redis.from_url(self.url, decode_responses=True)
        await self._redis.ping()
        self._pubsub = self._redis.pubsub()
        await self._pubsub.subscribe(PRESENCE_EVENTS, BROADCAST, self.req_channel, self.rep_channel)
        # a previous life of this node (a crash) may have left stations behind
        # decode_responses=True: keys and values come back as str (redis-py types them bytes | str)
        for station, value in cast("dict[str, str]", await self._redis.hgetall(PRESENCE)).items():
            node, _, version = value.partition("|")
            if node == self.node_id:
                await self._redis.hdel(PRESENCE, station)
            else:
                self.presence[station] = (node, version)
        await self._redis.set(f"csms:alive:{self.node_id}", "1", ex=ALIVE_SECONDS)
        self._tasks = [asyncio.create_task(self._listen(), name="csms-redis-listen"),
                       asyncio.create_task(self._keepalive(), name="csms-redis-alive")]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._redis is not None:
            await self._redis.delete(f"csms:alive:{self.node_id}")
            if self._pubsub is not None:
                await self._pubsub.aclose()
            await self._redis.aclose()

    # -- presence -------------------------------------------------------------------------------

    async def register(self, station_id: str, version: str) -> None:
        assert self._redis is not None
        self.presence[station_id] = (self.node_id, version)
        await self._redis.hset(PRESENCE, station_id, f"{self.node_id}|{version}")
        await self._redis.publish(PRESENCE_EVENTS, json.dumps(["set", station_id, self.node_id, version]))

    async def unregister(self, station_id: str) -> None:
        assert self._redis is not None
        current = cast("str | None", await self._redis.hget(PRESENCE, station_id))  # decode_responses=True
        if current and current.split("|", 1)[0] == self.node_id:
            await self._redis.hdel(PRESENCE, station_id)
            await self._redis.publish(PRESENCE_EVENTS, json.dumps(["del", station_id, self.node_id, ""]))
        if self.presence.get(station_id, ("",))[0] == self.node_id:
            del self.presence[station_id]

    def version_of(self, station_id: str) -> str | None:
        local = self.local.version_of(station_id)
        if local is not None:
            return local
        entry = self.presence.get(station_id)
        return entry[1] if entry else None

    async def broadcast(self, topic: str, payload: Any) -> None:
        assert self._redis is not None
        await self._redis.publish(BROADCAST, json.dumps([topic, payload]))

    # -- commands -------------------------------------------------------------------------------

    async def call(self, station_id: str, action: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        from csms.core.services.commands import StationOffline

        if self.local.version_of(station_id) is not None:
            return await self.local.call(station_id, action, payload, timeout)
        entry = self.presence.get(station_id)
        if entry is None:
            raise StationOffline(station_id)
        assert self._redis is not None
        request_id = uuid.uuid4().hex
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[request_id] = fut
        try:
            receivers = await self._redis.publish(f"csms:req:{entry[0]}", json.dumps({
                "id": request_id, "station_id": station_id, "action": action, "payload": payload,
                "timeout": timeout, "reply_to": self.rep_channel}))
            if receivers == 0:  # the node holding it is gone
                raise StationOffline(station_id)
            reply = await asyncio.wait_for(fut, timeout + 2)
        finally:
            self._waiters.pop(request_id, None)
        return _unpack_reply(reply, station_id)

    async def _serve_request(self, msg: dict[str, Any]) -> None:
        from csms.core.services.commands import StationOffline

        reply: dict[str, Any] = {"id": msg["id"]}
        try:
            reply["payload"] = await self.local.call(msg["station_id"], msg["action"], msg["payload"],
                                                     msg["timeout"])
        except StationOffline:
            reply["error"] = {"kind": "offline"}
        except (asyncio.TimeoutError, TimeoutError):
            reply["error"] = {"kind": "timeout"}
        except InvalidPayload as exc:
            reply["error"] = {"kind": "invalid", "code": exc.code, "description": exc.description,
                              "details": exc.details}
        except OcppError as exc:
            reply["error"] = {"kind": "ocpp", "code": exc.code, "description": exc.description,
                              "details": {k: v for k, v in exc.details.items() if k != "payload"}}
        except Exception as exc:  # the requester must get an answer
            reply["error"] = {"kind": "ocpp", "code": "InternalError", "description": repr(exc), "details": {}}
        assert self._redis is not None
        await self._redis.publish(msg["reply_to"], json.dumps(reply, default=str))

    async def _listen(self) -> None:
        assert self._pubsub is not None
        async for message in self._pubsub.listen():
            if message.get("type") != "message":
                continue
            try:
                data = json.loads(message["data"])
                channel = message["channel"]
                if channel == PRESENCE_EVENTS:
                    op, station, node, version = data
                    if op == "set":
                        self.presence[station] = (node, version)
                    elif self.presence.get(station, ("",))[0] == node:
                        del self.presence[station]
                elif channel == BROADCAST:
                    topic, payload = data
                    handler = BROADCAST_HANDLERS.get(topic)
                    if handler is not None:
                        handler(payload)
                elif channel == self.req_channel:
                    asyncio.create_task(self._serve_request(data))
                elif channel == self.rep_channel:
                    fut = self._waiters.get(data["id"])
                    if fut is not None and not fut.done():
                        fut.set_result(data)
            except Exception:
                log.exception("bad message on %s", message.get("channel"))

    async def _keepalive(self) -> None:
        assert self._redis is not None
        while True:
            await asyncio.sleep(ALIVE_SECONDS / 3)
            try:
                await self._redis.set(f"csms:alive:{self.node_id}", "1", ex=ALIVE_SECONDS)
            except Exception:
                log.exception("redis keepalive failed")


def _unpack_reply(reply: dict[str, Any], station_id: str) -> dict[str, Any]:
    from csms.core.services.commands import StationOffline

    error = reply.get("error")
    if error is None:
        return reply["payload"]
    kind = error["kind"]
    if kind == "offline":
        raise StationOffline(station_id)
    if kind == "timeout":
        raise asyncio.TimeoutError()
    if kind == "invalid":
        raise InvalidPayload(error["code"], error["description"], error.get("details"))
    raise OcppError(error["code"], error["description"], error.get("details"))
