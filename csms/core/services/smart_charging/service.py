"""The smart-charging loop: when each site gets a round, what the stations hold, and sending it.

How a round shares a site's capacity and the rules that keep a site within its fuses are in the
package docstring (:mod:`csms.core.services.smart_charging`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

from csms.core import cluster
from csms.core import events as ev
from csms.core.background import wait_event
from csms.core.domain import CapacityPeriod, CapacitySchedule, Load, SiteTopology, TopologyNode
from csms.core.ocpp.outbound import calls_for
from csms.core.ocpp.validation import OcppError
from csms.core.leases import LeaderJob, lead
from csms.core.services.commands import CommandTimeout, StationOffline, UnknownStation
from csms.core.services.sessions import ActiveSession
from csms.core.services.smart_charging.allocation import (
    allocate, default_limits, enforce_limits, node_totals, site_capacity,
)
from csms.core.services.smart_charging.departures import DEPARTURE_RULE, DepartureLearner, combine, keys_of, site_tz
from csms.core.services.smart_charging.dryrun import dry_run
from csms.core.services.smart_charging.phases import (
    INF,
    PHASES,
    Triple,
    floor_tenth,
    grid_phases,
    limits_of,
    phases_in_use,
)
from csms.core.services.smart_charging.profiles import (
    STATION_MAX,
    TX,
    TX_DEFAULT,
    Planned,
    build_profile,
    composite_limit_a,
    planned_from_payload,
    profile_id_for,
    purpose_of,
    schedule_update,
)
from csms.core.services.smart_charging.rounds import SiteModel, SiteRound
from csms.core.services.smart_charging.schedules import capacity_factors, periods_at, scaled_periods
from csms.core.services.smart_charging import external_limits
from csms.core.services.smart_charging.station_caps import StationCaps, read_station_caps
from csms.core.services.smart_charging.targets import (
    departure_source,
    discharge_a,
    save_session_targets,
    store_charging_needs,
)
from csms.core.services.smart_charging.view import describe_site
from csms.core.tables import ChargingProfile, ChargingSession, Evse, Hub, Site, Station
from csms.core.timeutil import utcnow
from csms.plugins import call_hook, hook_impls
from csms.settings import SmartChargingSettings

if TYPE_CHECKING:
    from csms.core.connections import ConnectionRegistry
    from csms.core.services.commands import CommandService
    from csms.core.services.operations import Operations
    from csms.core.services.reports import ReportService
    from csms.core.services.sessions import SessionService
    from csms.core.services.stations import StationService
    from csms.settings import Settings

log = logging.getLogger("csms.smart_charging")

SITE_LOOKUP_TTL_S = 10.0
# Several nodes: one of them (the lease ``smart-charging``) runs the rounds of every site. Every
# node tells all the others what it sees of its own stations (on this topic, batched), so that
# the leader, and any node that becomes leader, knows them all.
SIGNALS_TOPIC = "smart_charging.signals"
FORWARD_INTERVAL_S = 0.25


@dataclass(frozen=True)
class Signal:
    """What the loop needs of an event: its kind, station, session (meter values and stops) and,
    on the node where it happened, the event itself. ``site`` signals ask for a site's round."""

    kind: str  # connected | booted | refused | disconnected | meter | stopped | needs | renegotiate | status
    # | started | site
    station_id: str = ""
    session_id: int | None = None
    site_id: int | None = None
    delay: float = 0.0
    event: ev.Event | None = None


class SmartChargingService:
    """The loop: rounds per site on events and on a timer, their profiles sent and read back."""

    def __init__(self, settings: Settings, events: ev.EventDispatcher, connections: ConnectionRegistry, *,
                 node_id: str, commands: CommandService, operations: Operations, reports: ReportService,
                 sessions: SessionService, stations: StationService) -> None:
        self.settings = settings
        self.events = events
        self.connections = connections
        self.node_id = node_id
        self.commands = commands
        self.operations = operations
        self.reports = reports
        self.sessions = sessions
        self.stations = stations
        self.config = SmartChargingSettings()
        # Called with each finished SiteRound (after its profiles were sent); for tests and live views.
        self.observers: list[Callable[[SiteRound], Any]] = []
        self.rounds: dict[int, SiteRound] = {}
        self._loads: dict[int, list[Load]] = {}
        self._due: dict[int, float] = {}  # site id → monotonic time of its next round
        self._site_of: dict[str, tuple[int | None, float]] = {}  # station → (site, when looked up)
        self._events: list[Signal] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._leader: LeaderJob | None = None  # several nodes: the rounds run while this node leads
        self._outbox: list[list[Any]] = []  # signals of this node's stations, for the other nodes
        self._forwarder: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._side_tasks: set[asyncio.Task[Any]] = set()
        self._last_round: dict[int, float] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._counter = 0
        # per station
        self._sent: dict[tuple[str, int, str], Planned] = {}  # what stations acknowledged
        self._history_loaded: set[str] = set()
        self._unknown: set[str] = set()  # stations whose installed profiles are not known
        self._booted: set[str] = set()  # booted (Accepted) on their current connection
        self._connected_at: dict[str, float] = {}
        self._failed_at: dict[str, float] = {}
        self._caps: dict[str, StationCaps] = {}
        self._verified_at: dict[str, float] = {}
        self._no_composite: set[str] = set()
        self._measured_at: dict[int, float] = {}  # session id → monotonic time of the last sample
        self._changed_at: dict[tuple[str, int], float] = {}  # (station, evse) → last TxProfile change
        self._renegotiated: dict[str, float] = {}  # station → last renegotiation after a rejected EV schedule
        self.departures = DepartureLearner()  # learned departures (setting learned_departures)

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def clustered(self) -> bool:
        """Whether other nodes share the stations (a Redis bus)."""
        return getattr(self.commands.bus, "redis", None) is not None

    @property
    def _runs_rounds(self) -> bool:
        """One node, or the leader of several."""
        return self._leader is None or self._leader.is_leader

    async def start(self) -> None:
        if not self.config.enabled:
            return
        self._unsubscribe = self.events.listen(self._on_event)
        client = getattr(self.commands.bus, "redis", None)
        if client is None:
            self._task = asyncio.create_task(self._run(), name="csms-smart-charging")
            return
        cluster.BROADCAST_HANDLERS[SIGNALS_TOPIC] = self._on_signals
        self._forwarder = asyncio.create_task(self._forward(), name="csms-smart-charging-forward")
        self._leader = lead("smart-charging", self._lead, client=client, owner=self.node_id,
                            lease_seconds=self.settings.leader_lease)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if cluster.BROADCAST_HANDLERS.get(SIGNALS_TOPIC) == self._on_signals:
            del cluster.BROADCAST_HANDLERS[SIGNALS_TOPIC]
        if self._leader is not None:
            await self._leader.stop()
            self._leader = None
        tasks = [t for t in (self._task, self._forwarder, *self._side_tasks) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.departures.close()
        self._task = self._forwarder = None

    async def _lead(self) -> None:
        """The rounds, while this node holds the lease. What another leader sent is read back
        from the stored profiles, not from what this node remembers of an earlier term."""
        self._sent.clear()
        self._history_loaded.clear()
        self._events.clear()
        await self._run(sweep_first=True)

    def loads_of(self, site_id: int) -> list[Load]:
        """The loads the current (or last) round of a site works with (for ``site_capacity`` plugins)."""
        return list(self._loads.get(site_id, []))

    def request(self, site_id: int, *, delay: float = 0.0) -> None:
        """Ask for a round of ``site_id`` within ``delay`` seconds (on whichever node leads)."""
        due = time.monotonic() + delay
        if due < self._due.get(site_id, INF):
            self._due[site_id] = due
        self._wake.set()
        if self._forwarder is not None:
            self._outbox.append(["site", "", None, site_id, delay])

    # -- events ---------------------------------------------------------------------------------

    def _on_event(self, event: ev.Event) -> None:
        """A listener on the event dispatcher: it runs after the station got its answer."""
        signal = self._signal_of(event)
        if signal is None:
            return
        if signal.kind == "needs" and isinstance(event, ev.StationReported) and not self._runs_rounds:
            self._spawn(store_charging_needs(self.sessions, event))  # the node the station told stores it
        self._note(signal)
        if self._forwarder is not None:
            self._outbox.append([signal.kind, signal.station_id, signal.session_id, None, 0.0])

    @staticmethod
    def _signal_of(event: ev.Event) -> Signal | None:
        """The signal of an event the loop cares about, or None."""
        sid = event.station_id
        if isinstance(event, ev.StationConnected):
            return Signal("connected", sid, event=event)
        if isinstance(event, ev.StationBooted):
            return Signal("booted" if event.registration_status == "Accepted" else "refused", sid, event=event)
        if isinstance(event, ev.StationDisconnected):
            return Signal("disconnected", sid, event=event)
        if isinstance(event, ev.MeterValuesReceived):
            return None if event.session_id is None else Signal("meter", sid, event.session_id, event=event)
        if isinstance(event, ev.SessionStopped):
            return Signal("stopped", sid, event.session_id, event=event)
        if isinstance(event, ev.StationReported):
            if event.category == "charging_limit":  # an external limit came or went (K11-K14)
                return Signal("limit", sid, event=event)
            if event.category == "ev_charging_schedule" and (event.details.get("answer") or {}).get(
                    "status") == "Rejected":
                # the EV's schedule exceeded the limits: the CSMS starts a new renegotiation
                # (K15.FR.13, K16.FR.08, K17.FR.13), i.e. sends the TxProfile again
                return Signal("renegotiate", sid, event=event)
            return Signal("needs", sid, event=event) if event.category == "ev_charging_needs" else None
        if isinstance(event, ev.ConnectorStatusChanged):
            # only a connector seen for the first time changes the safe shares
            return Signal("status", sid, event=event) if event.evse_id != 0 and event.previous in ("", "Unknown") \
                else None
        if isinstance(event, ev.SessionStarted):
            return Signal("started", sid, event=event)
        return None

    def _note(self, signal: Signal) -> None:
        """What a signal changes in what the loop knows of a station; the site's round follows."""
        sid = signal.station_id
        if signal.kind == "connected":
            self._connected_at[sid] = time.monotonic()
            self._booted.discard(sid)
            self._unknown.add(sid)
            self._caps.pop(sid, None)
            self._failed_at.pop(sid, None)
            self._site_of.pop(sid, None)
        elif signal.kind == "booted":
            self._booted.add(sid)
            self._unknown.add(sid)
            self._caps.pop(sid, None)
            self._failed_at.pop(sid, None)
        elif signal.kind == "disconnected":
            self._booted.discard(sid)
        elif signal.kind == "cleared":  # profiles cleared by hand: the next round sends them all again
            self._unknown.add(sid)
        elif signal.kind == "meter" and signal.session_id is not None:
            self._measured_at[signal.session_id] = time.monotonic()
        elif signal.kind == "stopped" and signal.session_id is not None:
            self._measured_at.pop(signal.session_id, None)
            self.departures.done(signal.session_id)
        if self._runs_rounds:  # only the node running rounds reads them
            self._events.append(signal)
            self._wake.set()

    def profiles_cleared(self, station_id: str) -> None:
        """An operator cleared charging profiles of the station (ClearChargingProfile accepted):
        what it holds is no longer known, so the site's next round, soon, sends it every profile
        again (on whichever node runs the rounds)."""
        self._note(Signal("cleared", station_id))
        if self._forwarder is not None:
            self._outbox.append(["cleared", station_id, None, None, 0.0])

    def _on_signals(self, payload: Any) -> None:
        """Signals another node broadcast (every node keeps what they say, leader or not)."""
        if not isinstance(payload, dict) or payload.get("node") == self.node_id:
            return
        for kind, station_id, session_id, site_id, delay in payload.get("signals") or []:
            if kind == "site":
                due = time.monotonic() + float(delay)
                if due < self._due.get(int(site_id), INF):
                    self._due[int(site_id)] = due
                self._wake.set()
            else:
                self._note(Signal(str(kind), str(station_id), session_id))

    async def _forward(self) -> None:
        """Broadcast this node's signals in batches (a station's meter values once per batch)."""
        while True:
            await asyncio.sleep(FORWARD_INTERVAL_S)
            if not self._outbox:
                continue
            batch, self._outbox = self._outbox, []
            seen: set[tuple[Any, ...]] = set()
            unique = []
            for item in reversed(batch):  # the newest of repeated meter signals is enough
                key = tuple(item[:3]) if item[0] == "meter" else (id(item),)
                if key not in seen:
                    seen.add(key)
                    unique.append(item)
            try:
                await cluster.publish(self.commands.bus, SIGNALS_TOPIC, {"node": self.node_id, "signals": unique[::-1]})
            except Exception:
                log.warning("smart-charging signals not broadcast; the other nodes catch up at the next sweep",
                            exc_info=True)

    async def _absorb_events(self) -> None:
        signals, self._events = self._events, []
        if not signals:
            return
        now = time.monotonic()
        cfg = self.config
        # A station's site changes rarely (an operator moves it): look it up at most every
        # SITE_LOOKUP_TTL_S, not for every batch of meter values.
        stale = sorted({e.station_id for e in signals
                        if now - self._site_of.get(e.station_id, (None, -INF))[1] > SITE_LOOKUP_TTL_S})
        if stale:
            rows = await Station.select(Station.station_id, Station.site).where(Station.station_id.is_in(stale))
            found = {r["station_id"]: r["site"] for r in rows}
            for station_id in stale:
                self._site_of[station_id] = (found.get(station_id), now)
        for e in signals:
            site_id = self._site_of.get(e.station_id, (None, 0.0))[0]
            if e.kind == "renegotiate":
                # at most one renegotiation per retry period: an EV that keeps asking for more than
                # it may have is not sent the same profile in a loop
                if now - self._renegotiated.get(e.station_id, -INF) < cfg.retry_s:
                    continue
                self._renegotiated[e.station_id] = now
            if e.kind in ("needs", "renegotiate"):
                if e.kind == "needs" and isinstance(e.event, ev.StationReported):  # stored before the round
                    await store_charging_needs(self.sessions, e.event)
                # An accepted NotifyEVChargingNeeds promises the EV a schedule (K15, K17): the
                # next round sends the station's TxProfiles even when their limits are unchanged.
                for key in [k for k in self._sent if k[0] == e.station_id and k[2] == TX]:
                    del self._sent[key]
            if site_id is None:
                continue
            if e.kind == "meter":
                delay = max(cfg.debounce_s, self._last_round.get(site_id, -INF) + cfg.meter_interval_s - now)
            elif e.kind == "connected":
                delay = cfg.boot_grace_s
            else:
                delay = cfg.debounce_s
            due = now + delay
            if due < self._due.get(site_id, INF):
                self._due[site_id] = due

    # -- the loop -------------------------------------------------------------------------------

    async def _run(self, *, sweep_first: bool = False) -> None:
        next_sweep = time.monotonic() + (0.0 if sweep_first else self.config.interval_s)
        while True:
            try:
                now = time.monotonic()
                wait = min(next_sweep, min(self._due.values(), default=INF)) - now
                if wait > 0 and not self._events:
                    await wait_event(self._wake, wait)
                self._wake.clear()
                await self._absorb_events()
                now = time.monotonic()
                if now >= next_sweep:
                    next_sweep = now + self.config.interval_s
                    for r in await Station.select(Station.site).where(Station.site.is_not_null()).distinct():
                        self._due.setdefault(r["site"], now)
                for site_id in sorted(s for s, t in self._due.items() if t <= now):
                    self._due.pop(site_id, None)
                    await self.run_round(site_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("smart-charging loop failed; going on")
                await asyncio.sleep(1.0)

    async def run_round(self, site_id: int) -> SiteRound | None:
        """Compute and send one site's profiles now (the loop calls this; so may tests)."""
        lock = self._locks.setdefault(site_id, asyncio.Lock())
        try:
            async with lock:  # one round of a site at a time: decreases before increases holds
                return await self._round(site_id)
        except Exception:
            log.exception("smart-charging round of site %s failed", site_id)
            self.request(site_id, delay=self.config.retry_s)
            return None

    # -- building the model -----------------------------------------------------------------------

    def _ready(self, station: dict[str, Any]) -> bool:
        """Whether the loop can send to the station now."""
        sid = station["station_id"]
        if self.commands.version_of(sid) is None or station["registration_status"] != "Accepted":
            return False
        failed = self._failed_at.get(sid)
        if failed is not None and time.monotonic() - failed < self.config.retry_s:
            return False
        if sid in self._booted:
            return True
        connected = self._connected_at.get(sid)
        return connected is None or time.monotonic() - connected >= self.config.boot_grace_s

    async def model(self, site_id: int, now: datetime, *, live: bool = True) -> SiteModel | None:
        """The site's tree, loads, reservations and capacity (``live=False``: every station
        counts as reachable, nothing is reserved; for dry runs)."""
        site = await Site.select().where(Site.id == site_id).first()
        if site is None:
            return None
        cfg = self.config
        hubs = await Hub.select().where(Hub.site == site_id).order_by(Hub.id)
        stations = await Station.select(
            Station.id, Station.station_id, Station.hub, Station.phase_rotation, Station.max_current_a,
            Station.min_current_a, Station.registration_status, Station.ocpp_version,
        ).where(Station.site == site_id).order_by(Station.station_id)
        evse_rows = await Evse.select(Evse.station, Evse.evse_id).where(
            Evse.station.is_in([s["id"] for s in stations])) if stations else []
        by_pk = {s["id"]: s for s in stations}
        for s in stations:
            s["evses"] = set()
            s["online"] = self.commands.version_of(s["station_id"]) is not None
            s["ready"] = self._ready(s) if live else True
        for e in evse_rows:
            if e["evse_id"] > 0:
                by_pk[e["station"]]["evses"].add(e["evse_id"])
        hub_ids = {h["id"] for h in hubs}
        # a hub's local controller (K03) is not a charging point of the tree: it stands for the hub
        controller_of = {h["local_controller"]: h["id"] for h in hubs if h["local_controller"]}
        controllers: dict[str, dict[str, Any]] = {}
        for s in [s for s in stations if s["hub"] is not None and controller_of.get(s["station_id"]) == s["hub"]]:
            s["ready"] = self._ready(s) if live else False  # a dry run plans without the controller
            controllers[f"hub:{s['hub']}"] = s
            stations.remove(s)
        root_id = f"site:{site_id}"
        physical: dict[str, Triple] = {root_id: limits_of(site["grid_limit_l1_a"], site["grid_limit_l2_a"],
                                                           site["grid_limit_l3_a"])}
        parents: dict[str, str | None] = {root_id: None}
        names = {root_id: site["name"]}
        for h in hubs:
            hid = f"hub:{h['id']}"
            physical[hid] = limits_of(h["limit_l1_a"], h["limit_l2_a"], h["limit_l3_a"])
            parents[hid], names[hid] = root_id, h["name"]
        st_by_id = {}
        nid: str | None  # a node id; None once a walk up the tree passes the root
        voltage = float(site["voltage_v"] or 230.0)
        external = await external_limits.limits_now(
            [s["id"] for s in stations] + [c["id"] for c in controllers.values()], now, voltage)
        for hid, c in controllers.items():  # a limit set on the controller from outside (K14) holds its hub
            held_to = external.get((c["id"], 0), INF)
            physical[hid] = tuple(min(v, held_to) for v in physical[hid])  # type: ignore[assignment]
        for s in stations:
            nid = f"station:{s['station_id']}"
            limit = INF if s["max_current_a"] is None else max(0.0, s["max_current_a"])
            limit = min(limit, external.get((s["id"], 0), INF))  # a limit set on the station from outside
            physical[nid] = (limit, limit, limit)
            parents[nid] = f"hub:{s['hub']}" if s["hub"] in hub_ids else root_id
            names[nid] = s["station_id"]
            st_by_id[s["station_id"]] = s

        # connectors below each node → each station's safe share per connector
        below: dict[str, int] = {nid: 0 for nid in physical}
        for s in stations:
            count = max(1, len(s["evses"]))
            nid = f"station:{s['station_id']}"
            while nid is not None:
                below[nid] += count
                nid = parents[nid]
        shares: dict[str, float] = {}
        for s in stations:
            share = s["max_current_a"] if s["max_current_a"] is not None else cfg.default_max_current_a
            nid = f"station:{s['station_id']}"
            while nid is not None:
                for limit in physical[nid]:
                    if not math.isinf(limit):
                        share = min(share, limit / below[nid])
                nid = parents[nid]
            shares[s["station_id"]] = floor_tenth(share)

        # sessions → loads
        sessions = [x for x in self.sessions.active.values() if x.station_id in st_by_id and x.evse_id > 0]
        if self.clustered:
            sessions += await self._sessions_elsewhere(st_by_id, {x.id for x in sessions})
        extra_rows = await ChargingSession.select(
            ChargingSession.id, ChargingSession.departure_at, ChargingSession.energy_target_wh,
            ChargingSession.driver, ChargingSession.flags, ChargingSession.v2x, ChargingSession.priority_charging,
        ).where(ChargingSession.id.is_in([x.id for x in sessions])).output(load_json=True) if sessions else []
        extra = {r["id"]: r for r in extra_rows}
        learned: dict[int, Any] = {}
        if live and cfg.learned_departures:
            try:  # the site's history is read once an hour (in the background after the first)
                learned = await self.departures.predict(
                    site_id, site_tz(site.get("timezone")),
                    [(x.id, keys_of(x.id_token, (extra.get(x.id) or {}).get("driver")), x.started_at)
                     for x in sessions], now)
            except Exception:
                log.warning("learning departures of site %s failed; stated departures only", site_id,
                            exc_info=True)
        loads: list[Load] = []
        pinned: list[Load] = []
        ask_limits = bool(hook_impls("session_limit"))
        limited = False
        for x in sessions:
            s = st_by_id[x.station_id]
            station_phases = phases_in_use(x.current_a, cfg.phase_threshold_a)
            drawing = [v for k, v in x.current_a.items() if k in ("L1", "L2", "L3") and v is not None]
            measured = max(drawing) if drawing else (
                x.power_w / (voltage * len(station_phases)) if x.power_w is not None else None)
            if measured is not None and live:
                changed = self._changed_at.get((x.station_id, x.evse_id), -INF)
                if self._measured_at.get(x.id, INF) < changed + cfg.measure_settle_s:
                    measured = None  # taken before the car could follow the last change
            info = extra.get(x.id) or {}
            target = info.get("energy_target_wh")
            stated = info.get("departure_at")
            guess = learned.get(x.id)
            departure, is_learned = combine(stated, guess.departure_at if guess else None, DEPARTURE_RULE)
            source = "learned" if is_learned else departure_source(stated, info.get("flags"))
            load = Load(
                id=f"{x.station_id}/{x.evse_id}", station_id=x.station_id, evse_id=x.evse_id, session_id=x.id,
                phases=grid_phases(s["phase_rotation"], station_phases),
                min_a=float(s["min_current_a"] if s["min_current_a"] is not None else 6.0),
                max_a=float(s["max_current_a"] if s["max_current_a"] is not None else cfg.default_max_current_a),
                measured_a=measured, power_w=x.power_w, started_at=x.started_at, node=f"station:{x.station_id}",
                departure_at=departure, energy_wh=x.energy_wh,
                priority=1 if info.get("priority_charging") else 0,  # 2.1 UsePriorityCharging: served first
                energy_wh_needed=None if target is None else max(0.0, target - x.energy_wh),
                discharge_max_a=discharge_a(info.get("v2x"), s["ocpp_version"], voltage, len(station_phases)),
                discharge_spare_wh=float((info.get("v2x") or {}).get("spare_wh") or 0.0),
                extra={"transaction_id": x.transaction_id, "station_phases": station_phases,
                       "departure_source": source, "stated_departure_at": stated,
                       "learned_departure": guess},
            )
            outside = external.get((s["id"], x.evse_id))
            if outside is not None:  # a limit set on the EVSE from outside: the station holds to it
                load.max_a = max(0.0, min(load.max_a, outside))
                limited = True
            if ask_limits:  # plugins' limits on this session (the minimum counts)
                for plugin, cap in await call_hook("session_limit", load=load, now=now):
                    if not isinstance(cap, (int, float)) or isinstance(cap, bool) or math.isnan(cap):
                        log.warning("plugin %s answered session_limit with %r, not amps", plugin, cap)
                        continue
                    # below min_a the allocator pauses the load and enforce_limits gives it 0
                    load.max_a = max(0.0, min(load.max_a, float(cap)))
                    limited = True
            (loads if s["ready"] else pinned).append(load)

        # what unreachable stations hold stays reserved on their path
        reserved: dict[str, list[float]] = {nid: [0.0, 0.0, 0.0] for nid in physical}
        if live:
            for s in stations:
                if s["ready"] or not s["ocpp_version"]:
                    continue  # reachable, or never connected (holds nothing of ours, draws nothing)
                held = await self._held_by(s, [p for p in pinned if p.station_id == s["station_id"]])
                nid = f"station:{s['station_id']}"
                while nid is not None:
                    for p in range(3):
                        reserved[nid][p] += held[p]
                    nid = parents[nid]
        nodes = []
        for nid, limit in physical.items():
            res = tuple(reserved[nid])
            kind = nid.split(":", 1)[0]
            st = st_by_id.get(nid.split(":", 1)[1]) if kind == "station" else None
            nodes.append(TopologyNode(
                id=nid, kind=kind, parent=parents[nid], name=names[nid], reserved_a=res,  # type: ignore[arg-type]
                limit_a=tuple(max(0.0, lim - r) for lim, r in zip(limit, res)),  # type: ignore[arg-type]
                station_id=st["station_id"] if st else None,
                phase_rotation=(st["phase_rotation"] or "RST") if st else "RST",
                min_current_a=float(st["min_current_a"] or 6.0) if st else 6.0,
                online=bool(st["online"]) if st else True,
            ))
        topology = SiteTopology(site_id=site_id, voltage_v=voltage, nodes=tuple(nodes))
        site_dict = {**site, "simulation": not live}
        self._loads[site_id] = loads if live else self._loads.get(site_id, [])
        capacity = await site_capacity(site_dict, physical[root_id], now)
        managed = limited or any(not math.isinf(v) for v in capacity.at(now)) or any(
            not math.isinf(v) for nid, lim in physical.items() if nid != root_id for v in lim)
        return SiteModel(site=site_dict, topology=topology, physical=physical, capacity=capacity, loads=loads,
                         pinned=pinned, reserved={k: tuple(v) for k, v in reserved.items()},  # type: ignore[misc]
                         stations=st_by_id, shares=shares, managed=managed, controllers=controllers)


    async def _sessions_elsewhere(self, stations: dict[str, dict[str, Any]], known: set[int]) -> list[ActiveSession]:
        """The running sessions of the site's stations held by other nodes, as stored: no phase
        currents, the stored power and energy (the owning node keeps them current in batches)."""
        elsewhere = [sid for sid in stations if self.connections.get(sid) is None]
        if not elsewhere:
            return []
        rows = await ChargingSession.select(
            ChargingSession.id, ChargingSession.station, ChargingSession.station.station_id,
            ChargingSession.transaction_id, ChargingSession.evse_id, ChargingSession.connector_id,
            ChargingSession.id_token, ChargingSession.started_at, ChargingSession.meter_start_wh,
            ChargingSession.meter_last_wh, ChargingSession.energy_wh, ChargingSession.power_w,
            ChargingSession.charging_state,
        ).where((ChargingSession.state == "active") & (ChargingSession.evse_id > 0)
                & ChargingSession.station.station_id.is_in(elsewhere))
        return [ActiveSession(
            id=r["id"], station_pk=r["station"], station_id=r["station.station_id"], transaction_id=r["transaction_id"],
            evse_id=r["evse_id"], connector_id=r["connector_id"], id_token=r["id_token"], started_at=r["started_at"],
            meter_start_wh=r["meter_start_wh"], meter_last_wh=r["meter_last_wh"], energy_wh=r["energy_wh"] or 0.0,
            power_w=r["power_w"], charging_state=r["charging_state"] or "",
        ) for r in rows if r["id"] not in known]

    async def _held_by(self, station: dict[str, Any], sessions: list[Load]) -> Triple:
        """Amps per grid phase an unreachable station may draw with the profiles it holds."""
        sid = station["station_id"]
        await self._load_history(sid)
        now = utcnow()
        top = float(station["max_current_a"] if station["max_current_a"] is not None
                    else self.config.default_max_current_a)
        station_max = self._sent.get((sid, 0, STATION_MAX))
        if station_max is not None:
            top = min(top, periods_at(station_max.periods, now))
        default = self._sent.get((sid, 0, TX_DEFAULT))
        held = [0.0, 0.0, 0.0]
        active = {load.evse_id: load for load in sessions}
        for evse_id in sorted(set(station["evses"]) | set(active) or {1}):
            own_default = self._sent.get((sid, evse_id, TX_DEFAULT)) or default
            amps = periods_at(own_default.periods, now) if own_default is not None else top
            phases: tuple[int, ...] = PHASES
            load = active.get(evse_id)
            if load is not None:
                tx = self._sent.get((sid, evse_id, TX))
                if tx is not None and tx.transaction_id == load.extra.get("transaction_id"):
                    amps = max(amps, periods_at(tx.periods, now))
                else:
                    amps = top if own_default is None else amps
                phases = load.phases
            for p in phases:
                held[p - 1] += min(amps, top)
        return tuple(held)  # type: ignore[return-value]

    async def _load_history(self, station_id: str) -> None:
        """The profiles a station acknowledged before this process started (once per station)."""
        if station_id in self._history_loaded:
            return
        self._history_loaded.add(station_id)
        base = self.config.profile_id_base
        rows = await ChargingProfile.select(
            ChargingProfile.evse_id, ChargingProfile.profile_id, ChargingProfile.transaction_id,
            ChargingProfile.payload, ChargingProfile.sent_at,
        ).where(
            (ChargingProfile.station.station_id == station_id) & (ChargingProfile.source == "csms")
            & (ChargingProfile.status == "Accepted") & (ChargingProfile.profile_id >= base)
        ).order_by(ChargingProfile.id, ascending=False).limit(100).output(load_json=True)
        for r in reversed(rows):
            purpose = purpose_of(r["profile_id"], base)
            if purpose is None or (station_id, r["evse_id"], purpose) in self._sent:
                continue
            planned = planned_from_payload(station_id, r["evse_id"], purpose, r["payload"], r["sent_at"])
            if planned is not None:
                self._sent[planned.key] = planned

    # -- one round --------------------------------------------------------------------------------

    async def _round(self, site_id: int) -> SiteRound | None:
        now = utcnow().replace(microsecond=0)
        self._last_round[site_id] = time.monotonic()
        model = await self.model(site_id, now)
        if model is None:
            self.rounds.pop(site_id, None)
            return None
        self._counter += 1
        result = SiteRound(site_id=site_id, number=self._counter, at=now, managed=model.managed,
                           loads=list(model.loads))
        if not model.managed:
            self._finish(result)
            return result
        cfg = self.config
        topology = model.topology
        root = topology.root
        cap_now = model.capacity.at(now)
        root_res = model.reserved[root.id]
        available = tuple(max(0.0, c - r) for c, r in zip(cap_now, root_res))
        result.capacity_a, result.reserved_a = cap_now, root_res
        hook_capacity = CapacitySchedule(tuple(
            CapacityPeriod(p.start, tuple(max(0.0, c - r) for c, r in zip(p.limit_a, root_res)))  # type: ignore[arg-type]
            for p in model.capacity.periods))

        wanted = await allocate(model, hook_capacity, now) if model.loads else {}
        result.allocated_by_plugin = wanted is not None
        if wanted is None:  # no allocator: every connector gets its safe share
            wanted = {load.id: model.shares[load.station_id] for load in model.loads}
        limits = enforce_limits(topology, model.loads, wanted, available,  # type: ignore[arg-type]
                                discharge_frees_capacity=cfg.discharge_frees_capacity)
        result.limits = limits
        defaults = default_limits(model, limits, available,  # type: ignore[arg-type]
                                  default_max_current_a=cfg.default_max_current_a)
        result.defaults = defaults

        factors = capacity_factors(model.capacity, now, cfg.horizon_s, root_res)
        nxt = min((when for when, _ in factors), default=None)
        if nxt is None:
            nxt = min((p.start for p in model.capacity.periods if p.start > now), default=None)
        if nxt is not None:
            self.request(site_id, delay=max(0.0, (nxt - utcnow()).total_seconds()) + 1.0)
        plans: list[Planned] = []
        # K03: a hub whose local controller is reachable gets one limit, on the controller; its
        # stations get nothing from the loop (the controller balances them)
        local = {hid: c for hid, c in model.controllers.items() if c["ready"]}
        if local:
            totals = node_totals(model, limits, defaults)
            for hid, controller in local.items():
                held = [t + r for t, r in zip(totals[hid], model.reserved[hid])]
                amps = floor_tenth(min(min(held), *model.physical[hid]))
                result.controllers[hid] = amps
                caps = await self._station_caps(controller["station_id"])
                plans.append(Planned(controller["station_id"], 0, STATION_MAX, scaled_periods(
                    now, amps, factors, 0.0, caps.max_periods or cfg.default_max_periods)))
        for sid, station in model.stations.items():
            if not station["ready"] or f"hub:{station['hub']}" in local:
                continue
            caps = await self._station_caps(sid)
            max_periods = caps.max_periods or cfg.default_max_periods
            min_a = float(station["min_current_a"] or 6.0)
            if cfg.station_max_profile and station["max_current_a"] is not None:
                plans.append(Planned(sid, 0, STATION_MAX, ((now, floor_tenth(station["max_current_a"])),)))
            plans.append(Planned(sid, 0, TX_DEFAULT,
                                 scaled_periods(now, defaults[sid], factors, min_a, max_periods)))
            for load in model.loads:
                if load.station_id != sid:
                    continue
                plans.append(Planned(sid, load.evse_id, TX,
                                     scaled_periods(now, limits[load.id], factors, load.min_a, max_periods),
                                     number_phases=len(load.extra["station_phases"]),
                                     transaction_id=load.extra["transaction_id"],
                                     bidirectional=load.discharge_max_a > 0))
        await self._send(model, plans, result)
        self._finish(result)
        return result

    def _finish(self, result: SiteRound) -> None:
        self.rounds[result.site_id] = result
        for observer in list(self.observers):
            try:
                observer(result)
            except Exception:
                log.exception("smart-charging observer failed")

    # -- sending ----------------------------------------------------------------------------------

    def _in_effect(self, plan: Planned) -> Planned | None:
        """What the station holds that limits the same thing now, if known."""
        sid = plan.station_id
        if sid in self._unknown:
            return None
        if plan.purpose != TX:
            return self._sent.get(plan.key)
        tx = self._sent.get(plan.key)
        if tx is not None and tx.transaction_id == plan.transaction_id:
            return tx
        return self._sent.get((sid, plan.evse_id, TX_DEFAULT)) or self._sent.get((sid, 0, TX_DEFAULT))

    def _change(self, plan: Planned, now: datetime) -> str | None:
        """"down" (send first), "up" (send after the decreases) or None (nothing worth sending)."""
        held = self._in_effect(plan)
        if held is None:
            return "down"
        same_kind = held.purpose == plan.purpose and held.evse_id == plan.evse_id
        if same_kind and held.number_phases != plan.number_phases:
            return "down"
        moments = sorted({now} | {t for t, _ in plan.periods + held.periods if t > now})
        up = False
        for t in moments:
            new, old = periods_at(plan.periods, t), periods_at(held.periods, t)
            if new < old - 0.05:
                return "down"
            if new > old + 0.05 and (new - old >= self.config.min_change_a or old == 0.0 or not same_kind):
                up = True
        # A transaction always gets its own profile: the default it runs on may change on its own.
        return "up" if up or not same_kind else None

    async def _send(self, model: SiteModel, plans: list[Planned], result: SiteRound) -> None:
        now = utcnow()
        changes = [(p, self._change(p, now)) for p in plans]
        down = [p for p, change in changes if change == "down"]
        up = [p for p, change in changes if change == "up"]
        stations = {p.station_id for p in plans}
        failed: set[str] = set()
        for batch in (down, up):
            if not batch:
                continue
            if failed:  # a decrease did not get through: raising others now could overload
                self.request(model.topology.site_id, delay=self.config.retry_s)
                break
            by_station: dict[str, list[Planned]] = {}
            for p in batch:
                by_station.setdefault(p.station_id, []).append(p)
            outcomes = await asyncio.gather(*(self._send_station(model, sid, items)
                                              for sid, items in by_station.items()))
            for sid, (sent, ok) in zip(by_station, outcomes):
                result.sent += sent
                if not ok:
                    failed.add(sid)
                    result.failed += 1
        for sid in stations - failed:
            self._unknown.discard(sid)
        if failed:
            self.request(model.topology.site_id, delay=self.config.retry_s + 0.1)

    async def _send_station(self, model: SiteModel, station_id: str, plans: list[Planned]) -> tuple[int, bool]:
        """Send one station's profiles in turn; (how many were accepted, whether all were)."""
        sent, ok = 0, True
        changed: list[Planned] = []
        for plan in sorted(plans, key=lambda p: (p.purpose != STATION_MAX, p.evse_id)):
            try:
                status = await self._send_profile(model, plan)
            except (StationOffline, UnknownStation):
                return sent, False
            except (CommandTimeout, OcppError, ConnectionError) as exc:
                log.warning("%s: %s profile for EVSE %s not delivered: %s", station_id, plan.purpose,
                            plan.evse_id, exc)
                status = "Error"
            if status == "Accepted":
                sent += 1
                self._sent[plan.key] = plan
                changed.append(plan)
                if plan.purpose == TX:
                    self._changed_at[(station_id, plan.evse_id)] = time.monotonic()
            elif plan.purpose == TX and self.sessions.on_evse(station_id, plan.evse_id) is None:
                continue  # the transaction ended meanwhile; nothing to hold
            else:
                ok = False
        if not ok:
            self._failed_at[station_id] = time.monotonic()
            self._unknown.add(station_id)
        if changed and self.config.verify:
            self._spawn(self._verify(model, station_id))
        return sent, ok

    async def _send_profile(self, model: SiteModel, plan: Planned) -> str:
        version = self.operations.version(plan.station_id)
        caps = await self._station_caps(plan.station_id)
        profile = build_profile(version, plan, profile_id=self.profile_id(plan.evse_id, plan.purpose),
                                stack_level=self.stack_level(caps), unit=caps.unit,
                                voltage_v=model.topology.voltage_v)
        answer = await self.operations.set_charging_profile(plan.station_id, evse_id=plan.evse_id,
                                                            profile=profile, by="smart-charging")
        return answer["status"]

    async def schedule_update(self, station_id: str, profile_id: int) -> dict[str, Any] | None:
        """The answer to a 2.1 PullDynamicScheduleUpdate for one of the loop's profiles: its value
        in the site's last round (the allocation of the transaction on that EVSE, or the station's
        default), else what the station last accepted (from any node); None for a profile that is
        not the loop's."""
        base = self.config.profile_id_base
        purpose = purpose_of(profile_id, base) if profile_id >= base else None
        if purpose is None:
            return None
        evse_id = (profile_id - base) // 10
        row = await Station.select(Station.site, Station.site.voltage_v.as_alias("voltage_v")).where(
            Station.station_id == station_id).first()
        if row is None:
            return None
        last = self.rounds.get(row["site"]) if row["site"] is not None else None
        amps: float | None = None
        phases: int | None = None
        bidirectional = False
        if last is not None and last.managed:
            if purpose == TX:
                load = next((x for x in last.loads if x.station_id == station_id and x.evse_id == evse_id), None)
                if load is not None and load.id in last.limits:
                    amps, bidirectional = last.limits[load.id], load.discharge_max_a > 0
                    phases = len(load.extra.get("station_phases") or (1, 2, 3))
            elif purpose == TX_DEFAULT and station_id in last.defaults:
                amps = last.defaults[station_id]
        if amps is None:
            held = self._sent.get((station_id, evse_id, purpose)) or await self._stored(station_id, profile_id, purpose)
            if held is None:
                return None
            amps, phases, bidirectional = periods_at(held.periods, utcnow()), held.number_phases, held.bidirectional
        caps = await self._station_caps(station_id)
        return schedule_update(amps, unit=caps.unit, voltage_v=float(row["voltage_v"] or 230.0), phases=phases,
                               bidirectional=bidirectional)

    async def _stored(self, station_id: str, profile_id: int, purpose: str) -> Planned | None:
        """The loop's profile ``profile_id`` the station last accepted, as stored (sent by
        whichever node ran the round)."""
        row = await ChargingProfile.select(
            ChargingProfile.evse_id, ChargingProfile.payload, ChargingProfile.sent_at,
        ).where((ChargingProfile.station.station_id == station_id) & (ChargingProfile.source == "csms")
                & (ChargingProfile.status == "Accepted") & (ChargingProfile.profile_id == profile_id)
                ).order_by(ChargingProfile.id, ascending=False).output(load_json=True).first()
        if row is None:
            return None
        return planned_from_payload(station_id, row["evse_id"], purpose, row["payload"], row["sent_at"])

    def profile_id(self, evse_id: int, purpose: str) -> int:
        return profile_id_for(self.config.profile_id_base, evse_id, purpose)

    def stack_level(self, caps: StationCaps) -> int:
        level = self.config.stack_level
        if caps.max_stack_level is not None:
            level = min(level, caps.max_stack_level)
        return max(0, level)

    async def _station_caps(self, station_id: str) -> StationCaps:
        """What the station allows in its profiles (read once per connection)."""
        caps = self._caps.get(station_id)
        if caps is None:
            caps = self._caps[station_id] = await read_station_caps(station_id)
        return caps

    # -- views and dry runs --------------------------------------------------------------------------

    async def site_view(self, site_id: int) -> dict[str, Any]:
        """Capacity vs allocation vs measured draw per phase, the tree with hub status, and the
        limits sent to each connector with the stations' answers (:func:`describe_site`). Raises
        LookupError for no site."""
        now = utcnow().replace(microsecond=0)
        model = await self.model(site_id, now)
        if model is None:
            raise LookupError(site_id)
        return await describe_site(model, self.rounds.get(site_id), now, self.sessions)

    async def simulate(self, site_id: int, cars: list[dict[str, Any]], *,
                       capacity_a: list[float] | None = None) -> dict[str, Any]:
        """A dry run: how the site's capacity would be shared among ``cars``; nothing is sent.

        Each car: ``id``, ``station_id`` (optional: hang it under that station, else under the grid
        connection), ``phases`` (a count of station phases, or a list of grid phases), ``max_current_a``,
        ``min_current_a``, ``measured_a``, ``priority``. Raises LookupError (no site) or ValueError.
        """
        now = utcnow().replace(microsecond=0)
        model = await self.model(site_id, now, live=False)
        if model is None:
            raise LookupError(site_id)
        return await dry_run(model, cars, capacity_a=capacity_a, now=now,
                             default_max_current_a=self.config.default_max_current_a)

    async def set_session_targets(self, session_id: int, *, departure_at: datetime | None,
                                  energy_target_wh: float | None) -> dict[str, Any]:
        """Store when the driver leaves and how much energy they want; the site is recomputed."""
        site_id = await save_session_targets(session_id, departure_at=departure_at,
                                             energy_target_wh=energy_target_wh)
        if site_id is not None:
            self.request(site_id, delay=self.config.debounce_s)
        return {"session_id": session_id, "departure_at": departure_at.isoformat() if departure_at else None,
                "energy_target_wh": energy_target_wh}

    # -- read-back ----------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _verify(self, model: SiteModel, station_id: str) -> None:
        """GetCompositeSchedule per charging EVSE; a limit above what was sent is reported."""
        cfg = self.config
        last = self._verified_at.get(station_id)
        if station_id in self._no_composite or (last is not None and time.monotonic() - last < cfg.verify_interval_s):
            return
        self._verified_at[station_id] = time.monotonic()
        try:
            version = self.operations.version(station_id)
        except StationOffline:
            return
        now = utcnow()
        top = self._sent.get((station_id, 0, STATION_MAX))
        for session in self.sessions.for_station(station_id):
            tx = self._sent.get((station_id, session.evse_id, TX))
            if tx is None or tx.transaction_id != session.transaction_id:
                continue
            expected = max(0.0, periods_at(tx.periods, now))  # a discharge (V2X) is sent with limit 0
            if top is not None:
                expected = min(expected, periods_at(top.periods, now))
            call = calls_for(version).get_composite_schedule(evse_id=session.evse_id, duration=300, unit="A")
            try:
                answer = await self.commands.send(station_id, call.action, call.payload,
                                                  requested_by="smart-charging")
            except OcppError as exc:
                if exc.code in ("NotImplemented", "NotSupported"):
                    self._no_composite.add(station_id)
                return
            except (StationOffline, CommandTimeout, UnknownStation, ConnectionError):
                return
            reported = composite_limit_a(version, answer, model.topology.voltage_v)
            if reported is None or reported <= expected + cfg.verify_tolerance_a:
                continue
            details = {"evse_id": session.evse_id, "sent_a": expected, "composite_a": reported,
                       "transaction_id": session.transaction_id}
            summary = f"EVSE {session.evse_id}: composite schedule allows {reported} A, {expected} A was sent"
            log.warning("%s does not honour its charging profile: %s", station_id, summary)
            committed = self.stations.record(station_id, "smart_charging", "not_honouring_profiles",
                                             evse_id=session.evse_id, summary=summary, details=details, wait=True)
            assert committed is not None  # wait=True always gives a commit future
            await committed
            self.reports.emit(station_id, "smart_charging", "not_honouring_profiles", details)
