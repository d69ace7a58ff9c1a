"""Multi-node mode: a command bus and presence registry on Redis (``CSMS_REDIS_URL``).

Each station's WebSocket lives on one node. Every node keeps a local copy of the presence map
(station → node, protocol version), kept current through a Redis hash and a pub/sub channel,
so asking "is it online, which version" costs no round trip. A command for a station held by
another node is published to that node's request channel; the node sends it over the socket
and publishes the station's answer (or error) to the requester's reply channel.

:func:`publish` (:func:`csms.core.runtime.broadcast`: through the running core's bus) tells every
node (this one included) something on a topic, applied by the handler registered in
:data:`BROADCAST_HANDLERS` (e.g. "this API key is revoked").

**Liveness**: every node renews ``csms:alive:<node>`` (expiring after ``node_ttl``) and is a member
of ``csms:nodes``; every node checks the others four times per TTL. A member whose key expired is
dead: the first node to take the short lock ``csms:reap:<node>`` (``SET NX``) marks its stations
offline in the database (the path of a disconnect: a station event and ``station.disconnected``)
and removes its presence entries, all idempotent, so at most one node does it and a second pass
finds nothing to do. A node taken for dead while it was alive (its keepalive did not reach Redis
for a TTL) finds itself no longer a member at its next keepalive and registers its stations again.

**The newest connection wins**: every registration draws the station's next *epoch*
(``INCR csms:epoch:<station>``), stored with its presence entry. A node that hears of a newer
epoch of a station it holds on another node closes its own socket; before it sends a command
over a local socket a node checks that its epoch is still the current one, and otherwise closes
that stale socket and forwards the command to the node named in the presence hash (one hop), or
answers that the station is offline.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import TYPE_CHECKING, Any, Callable, cast

import redis.asyncio as redis

from csms.core import metrics
from csms.core.ocpp.validation import InvalidPayload, OcppError

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from csms.core.connections import ConnectionRegistry

log = logging.getLogger("csms.cluster")

PRESENCE = "csms:presence"
PRESENCE_EVENTS = "csms:presence-events"
BROADCAST = "csms:broadcast"
NODES = "csms:nodes"
ALIVE_PREFIX = "csms:alive:"
EPOCH_PREFIX = "csms:epoch:"
REAP_PREFIX = "csms:reap:"
CLOSE_REPLACED = 4000
EPOCH_TTL = 30 * 24 * 3600  # a station's epoch counter is forgotten a month after its last connection

# KEYS[1] the presence hash; ARGV[1] the station, ARGV[2] the value this node wrote
_DEL_IF_MINE = ("if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then "
                "return redis.call('HDEL', KEYS[1], ARGV[1]) end return 0")
# KEYS[1] the presence hash; ARGV[1] "<node>|": the stations removed
_DEL_NODE = """
local removed = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.sub(all[i + 1], 1, string.len(ARGV[1])) == ARGV[1] then
    redis.call('HDEL', KEYS[1], all[i])
    table.insert(removed, all[i])
  end
end
return removed
"""

# topic → what every node does with a broadcast's payload (registered at import by its owner)
BROADCAST_HANDLERS: dict[str, Callable[[Any], None]] = {}


async def publish(bus: object, topic: str, payload: Any) -> None:
    """Publish ``payload`` on ``topic`` to every node through ``bus``; nothing to do without Redis
    (one node). :func:`csms.core.runtime.broadcast` publishes through the running core's bus."""
    if isinstance(bus, RedisBus):
        await bus.broadcast(topic, payload)


class RedisBus:
    """Routes commands to whichever node holds the station's socket."""

    def __init__(self, connections: ConnectionRegistry, url: str, node_id: str, *, ttl: float = 30.0,
                 on_node_dead: Callable[[str], Awaitable[Any]] | None = None,
                 on_reclaim: Callable[[str, str], Awaitable[Any]] | None = None) -> None:
        from csms.core.services.commands import LocalBus

        self.local = LocalBus(connections)
        self.connections = connections
        self.url = url
        self.node_id = node_id
        self.ttl = ttl
        self.on_node_dead = on_node_dead  # mark a dead node's stations offline
        self.on_reclaim = on_reclaim  # (station, version): mark a station of this node connected again
        self.presence: dict[str, tuple[str, str]] = {}
        self.epochs: dict[str, int] = {}  # station → epoch of the socket this node holds
        self._entries: dict[str, str] = {}  # station → the presence value this node wrote
        self._redis: redis.Redis | None = None
        self._pubsub: Any = None
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def redis(self) -> redis.Redis | None:
        """The connection to Redis once started (leases use it)."""
        return self._redis

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
            node, version, _ = _parse_presence(value)
            if node == self.node_id:
                await self._redis.hdel(PRESENCE, station)
            else:
                self.presence[station] = (node, version)
        await self._announce()
        self._tasks = [asyncio.create_task(self._listen(), name="csms-redis-listen"),
                       asyncio.create_task(self._keepalive(), name="csms-redis-alive"),
                       asyncio.create_task(self._watch(), name="csms-redis-watch")]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._redis is not None:
            await self._redis.delete(ALIVE_PREFIX + self.node_id)
            await self._redis.srem(NODES, self.node_id)
            if self._pubsub is not None:
                await self._pubsub.aclose()
            await self._redis.aclose()

    # -- presence -------------------------------------------------------------------------------

    async def register(self, station_id: str, version: str) -> None:
        assert self._redis is not None
        epoch = int(await self._redis.incr(EPOCH_PREFIX + station_id))
        await self._redis.expire(EPOCH_PREFIX + station_id, EPOCH_TTL)
        self.epochs[station_id] = epoch
        self.presence[station_id] = (self.node_id, version)
        self._entries[station_id] = entry = f"{self.node_id}|{version}|{epoch}"
        await self._redis.hset(PRESENCE, station_id, entry)
        await self._redis.publish(PRESENCE_EVENTS, json.dumps(["set", station_id, self.node_id, version, epoch]))

    async def unregister(self, station_id: str) -> None:
        assert self._redis is not None
        self.epochs.pop(station_id, None)
        mine = self._entries.pop(station_id, None)
        # only the entry this node wrote: the station may hold a newer connection elsewhere
        if mine is not None and await self._redis.eval(_DEL_IF_MINE, 1, PRESENCE, station_id, mine):
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

    async def call(self, station_id: str, action: str, payload: dict[str, Any], timeout: float, *,
                   hops: int = 0) -> dict[str, Any]:
        from csms.core.services.commands import StationOffline

        if self.local.version_of(station_id) is not None:
            if await self._holds_newest(station_id):
                return await self.local.call(station_id, action, payload, timeout)
            owner = await self._owner(station_id)
        else:
            entry = self.presence.get(station_id)
            owner = entry[0] if entry else None
        if owner is None or owner == self.node_id or hops >= 2:
            raise StationOffline(station_id)
        assert self._redis is not None
        request_id = uuid.uuid4().hex
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[request_id] = fut
        try:
            receivers = await self._redis.publish(f"csms:req:{owner}", json.dumps({
                "id": request_id, "station_id": station_id, "action": action, "payload": payload,
                "timeout": timeout, "reply_to": self.rep_channel, "hops": hops + 1}))
            if receivers == 0:  # the node holding it is gone
                raise StationOffline(station_id)
            async with asyncio.timeout(timeout + 2):
                reply = await fut
        finally:
            self._waiters.pop(request_id, None)
        return _unpack_reply(reply, station_id)

    async def _holds_newest(self, station_id: str) -> bool:
        """Whether this node's socket of the station is its newest connection in the cluster;
        when it is not, the stale socket is closed."""
        assert self._redis is not None
        current = await self._redis.get(EPOCH_PREFIX + station_id)
        mine = self.epochs.get(station_id)
        if current is None or mine is None or int(current) == mine:
            return True
        log.info("%s connected again elsewhere (epoch %s, ours %s); closing its stale socket here",
                 station_id, current, mine)
        await self._close_stale(station_id, mine)
        return False

    async def _owner(self, station_id: str) -> str | None:
        """The node the presence hash names for the station (asked of Redis, not the local copy)."""
        assert self._redis is not None
        value = cast("str | None", await self._redis.hget(PRESENCE, station_id))
        if not value:
            return None
        node, version, _ = _parse_presence(value)
        if node != self.node_id:
            self.presence[station_id] = (node, version)
        return node

    async def _close_stale(self, station_id: str, epoch: int) -> None:
        conn = self.connections.get(station_id)
        if conn is not None and self.epochs.get(station_id) == epoch:
            metrics.STALE_SOCKETS.inc()
            await conn.close(code=CLOSE_REPLACED, reason="replaced by a newer connection")

    async def _serve_request(self, msg: dict[str, Any]) -> None:
        from csms.core.services.commands import StationOffline

        reply: dict[str, Any] = {"id": msg["id"]}
        try:
            reply["payload"] = await self.call(msg["station_id"], msg["action"], msg["payload"], msg["timeout"],
                                               hops=msg.get("hops", 1))
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
                    self._presence_event(*data)
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

    def _presence_event(self, op: str, station: str, node: str, version: str, epoch: int = 0) -> None:
        if op == "set":
            self.presence[station] = (node, version)
            mine = self.epochs.get(station)
            if node != self.node_id and mine is not None and epoch > mine:  # the newest connection wins
                log.info("%s connected to node %s; closing its previous socket here", station, node)
                task = asyncio.create_task(self._close_stale(station, mine))
                self._closing.add(task)  # held until done (the loop keeps weak references only)
                task.add_done_callback(self._closing.discard)
        elif self.presence.get(station, ("",))[0] == node:
            del self.presence[station]

    # -- liveness -------------------------------------------------------------------------------

    async def _announce(self) -> bool:
        """Renew this node's liveness; True when it was not a member: at start, or after another
        node took it for dead (its keepalive did not reach Redis for a TTL) and cleaned up."""
        assert self._redis is not None
        await self._redis.set(ALIVE_PREFIX + self.node_id, "1", px=int(self.ttl * 1000))
        return bool(await self._redis.sadd(NODES, self.node_id))

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                if await self._announce() and self._entries:
                    await self._reclaim()
            except Exception:
                log.exception("redis keepalive failed")

    async def _reclaim(self) -> None:
        """This node was taken for dead while it still held sockets: register them again (in the
        database too), so that they are online and reachable from every node once more."""
        log.warning("this node was taken for dead; registering its %d stations again", len(self._entries))
        for station, entry in list(self._entries.items()):
            if self.connections.get(station) is None:
                continue
            _, version, _ = _parse_presence(entry)
            if self.on_reclaim is not None:
                await self.on_reclaim(station, version)
            else:
                await self.register(station, version)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 4)
            try:
                for node in await self.dead_nodes():
                    await self.reap(node)
            except Exception:
                log.exception("checking the other nodes' liveness failed")

    async def dead_nodes(self) -> list[str]:
        """Nodes known to the cluster (members, or holders of presence entries) whose liveness key expired."""
        assert self._redis is not None
        members = cast("set[str]", await self._redis.smembers(NODES))
        nodes = sorted((members | {node for node, _ in self.presence.values()}) - {self.node_id})
        if not nodes:
            return []
        alive = await self._redis.mget([ALIVE_PREFIX + n for n in nodes])
        return [n for n, a in zip(nodes, alive) if a is None]

    async def reap(self, node: str) -> bool:
        """Clean up after the dead ``node`` unless another node is doing it (or it came back):
        its stations offline in the database, its presence entries removed. Idempotent."""
        assert self._redis is not None
        if not await self._redis.set(REAP_PREFIX + node, self.node_id, nx=True, px=int(self.ttl * 1000)):
            return False
        if await self._redis.exists(ALIVE_PREFIX + node):
            return False
        log.warning("node %s is dead (no liveness for %.0f s); marking its stations offline", node, self.ttl)
        if self.on_node_dead is not None:
            await self.on_node_dead(node)
        removed = cast("list[str]", await self._redis.eval(_DEL_NODE, 1, PRESENCE, f"{node}|"))
        for station in removed:
            if self.presence.get(station, ("",))[0] == node:
                del self.presence[station]
            await self._redis.publish(PRESENCE_EVENTS, json.dumps(["del", station, node, ""]))
        await self._redis.srem(NODES, node)
        metrics.NODES_REAPED.inc()
        return True


def _parse_presence(value: str) -> tuple[str, str, int]:
    """(node, OCPP version, epoch) of a presence entry ``node|version|epoch``."""
    node, _, rest = value.partition("|")
    version, _, epoch = rest.partition("|")
    return node, version, int(epoch or 0)


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
