"""The smart-charging loop: each site's capacity shared among its sessions, sent as charging profiles.

The core decides no strategy. For every site it builds the tree of limits (grid connection →
hubs → stations), gathers the active sessions as :class:`~csms.core.domain.Load` objects (phases
in use from the per-phase ``Current.Import`` samples, mapped onto the grid through the station's
phase rotation), asks the ``site_capacity`` hooks (the minimum of all answers and the grid limit
counts) and the ``allocate_capacity`` hook (first answer wins), checks the answer against every
limit of the tree, and turns it into charging profiles in each station's protocol version.

Rules that keep a site within its fuses (``plugins/loadbalancing/README.md`` has the operator's view):

* **Every connector has a known worst case.** A connector with a transaction is limited by its
  ``TxProfile``; every connector, idle or not, falls back to the station's ``TxDefaultProfile``
  (on EVSE 0) once its transaction ends. The default ``D`` is the largest value such that, at
  every node and phase, ``sum(max(allocation, D)) + D × idle connectors`` fits, and it is never
  above the station's *safe share* (each node's limit divided by the connectors below it).
  Below the station's minimum current it is 0: a car that plugs in waits for its allocation.
  So the profiles the stations hold add up within every limit at all times, and a station
  that loses its connection keeps charging within what was reserved for it.
* **Stations that cannot be reached keep what they hold.** An offline (or not yet booted, or
  failing) station's connectors are reserved at the limits last acknowledged (its station
  maximum when nothing is known) and subtracted from the limits the others share.
* **Decreases first.** Every round sends all decreases (and profiles for stations whose state
  is unknown, such as just after a boot), waits for them, then sends the increases. Increases
  smaller than ``min_change_a`` are not sent (the station keeps a lower limit, which is safe);
  decreases are always sent.
* **Time-varying capacity** (peak shaving) is written into the profiles: where the capacity
  falls later, the allocation is scaled by the ratio of the later capacity to today's, so a
  station that goes offline still follows the schedule.

A round runs on session start/stop, on station boot/connect/disconnect, on meter values (at
most once per ``meter_interval_s`` per site), at the next change of capacity, and every
``interval_s``; always off the stations' request path (events arrive after the answer).
Configuration: ``CSMS_SMART_CHARGING_*`` or ``[smart_charging]`` (:class:`~csms.settings.SmartChargingSettings`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable

from csms.core import events as ev
from csms.core.domain import CapacityPeriod, CapacitySchedule, Load, SiteTopology, TopologyNode
from csms.core.ocpp.validation import V16, OcppError
from csms.core.services.commands import CommandTimeout, StationOffline, UnknownStation
from csms.core.tables import (
    ChargingProfile,
    ChargingSession,
    ConfigurationKey,
    DeviceVariable,
    Evse,
    Hub,
    Site,
    Station,
)
from csms.core.timeutil import ocpp_ts, parse_ts, utcnow
from csms.plugins import call_hook, hook_impls
from csms.settings import SmartChargingSettings

if TYPE_CHECKING:
    from csms.core.runtime import Core

log = logging.getLogger("csms.smart_charging")

INF = math.inf
PHASES = (1, 2, 3)
EPSILON_A = 1e-6

# Version-neutral purposes and their names per protocol version.
STATION_MAX, TX_DEFAULT, TX = "station_max", "tx_default", "tx"
_PURPOSE_NAMES = {
    V16: {STATION_MAX: "ChargePointMaxProfile", TX_DEFAULT: "TxDefaultProfile", TX: "TxProfile"},
    "2.0.1": {STATION_MAX: "ChargingStationMaxProfile", TX_DEFAULT: "TxDefaultProfile", TX: "TxProfile"},
}
_PURPOSE_CODES = {STATION_MAX: 1, TX_DEFAULT: 2, TX: 3}
_CODE_PURPOSES = {v: k for k, v in _PURPOSE_CODES.items()}

Triple = tuple[float, float, float]
Periods = tuple[tuple[datetime, float], ...]  # (start, amps per phase), sorted


# ---------------------------------------------------------------------------------------------
# pure helpers
# ---------------------------------------------------------------------------------------------


def rotation_map(rotation: str | None) -> dict[int, int]:
    """Station phase (1-3) → grid phase (1-3) for a rotation such as "RST", "STR" or "TRS"."""
    letters = (rotation or "RST").upper()
    if sorted(letters) != ["R", "S", "T"]:
        log.warning("phase rotation %r is not a permutation of RST; taken as RST", rotation)
        letters = "RST"
    return {i + 1: "RST".index(letter) + 1 for i, letter in enumerate(letters)}


def grid_phases(rotation: str | None, station_phases: tuple[int, ...]) -> tuple[int, ...]:
    mapping = rotation_map(rotation)
    return tuple(sorted(mapping[p] for p in station_phases))


def phases_in_use(current_a: dict[str, float], threshold_a: float) -> tuple[int, ...]:
    """Station phases drawing at least ``threshold_a`` (all three when nothing is known)."""
    drawing = sorted(int(k[1]) for k, v in current_a.items()
                     if k in ("L1", "L2", "L3") and v is not None and v >= threshold_a)
    return tuple(drawing) or PHASES


def floor_tenth(amps: float) -> float:
    """Round down to 0.1 A (the 1.6 schema's multipleOf 0.1), never below 0."""
    if amps <= 0 or math.isnan(amps):
        return 0.0
    if math.isinf(amps):
        return amps
    return round(math.floor(amps * 10 + 1e-6) / 10, 1)


def _finite(values: Triple) -> list[float | None]:
    return [None if math.isinf(v) else round(v, 3) for v in values]


def _limits_of(l1: float | None, l2: float | None, l3: float | None) -> Triple:
    return tuple(INF if v is None else max(0.0, float(v)) for v in (l1, l2, l3))  # type: ignore[return-value]


def periods_at(periods: Periods, when: datetime) -> float:
    """The limit a schedule gives at ``when`` (its first period before it starts)."""
    value = periods[0][1]
    for start, amps in periods:
        if start <= when:
            value = amps
    return value


def enforce_limits(topology: SiteTopology, loads: list[Load], wanted: dict[str, float],
                   root_limit: Triple) -> dict[str, float]:
    """Clamp an allocation so that no node's phase limit is exceeded, whatever a plugin answered.

    Each load is kept within ``[min_a, max_a]`` or set to 0; where a node's phase is over its
    limit, the loads below it on that phase are scaled down (those falling under their minimum
    get 0) until everything fits. Values only go down, so this ends.
    """
    out: dict[str, float] = {}
    for load in loads:
        amps = float(wanted.get(load.id) or 0.0)
        if math.isnan(amps) or amps < 0:
            amps = 0.0
        amps = min(amps, load.max_a)
        out[load.id] = amps if amps >= load.min_a and amps > 0 else 0.0
    paths = {load.id: [n.id for n in topology.path(load.node or topology.root.id)] for load in loads}
    limits = {n.id: n.limit_a for n in topology.nodes}
    limits[topology.root.id] = tuple(min(a, b) for a, b in zip(topology.root.limit_a, root_limit))  # type: ignore[assignment]
    for _ in range(len(topology.nodes) * 3 + 2):
        changed = False
        for node_id, limit in limits.items():
            for p in PHASES:
                cap = limit[p - 1]
                if math.isinf(cap):
                    continue
                members = [load for load in loads if node_id in paths[load.id] and p in load.phases
                           and out[load.id] > 0]
                total = sum(out[m.id] for m in members)
                if total <= cap + EPSILON_A:
                    continue
                factor = max(0.0, cap) / total
                for m in members:
                    scaled = out[m.id] * factor
                    out[m.id] = scaled if scaled >= m.min_a else 0.0
                changed = True
        if not changed:
            break
    return {k: floor_tenth(v) for k, v in out.items()}


def capacity_factors(capacity: CapacitySchedule, now: datetime, horizon_s: int,
                     reserved: Triple) -> list[tuple[datetime, float]]:
    """Where the capacity falls within the horizon: (when, factor ≤ 1 relative to now)."""
    base = [c - r for c, r in zip(capacity.at(now), reserved)]
    end = now + timedelta(seconds=horizon_s)
    out: list[tuple[datetime, float]] = []
    for period in capacity.periods:
        if not now < period.start <= end:
            continue
        later = capacity.at(period.start)
        factor = 1.0
        for p in range(3):
            if math.isinf(base[p]) or base[p] <= 0:
                continue
            factor = min(factor, max(0.0, later[p] - reserved[p]) / base[p])
        out.append((period.start, factor))
    return out


def scaled_periods(start: datetime, amps: float, factors: list[tuple[datetime, float]], min_a: float,
                   max_periods: int) -> Periods:
    """A limit over time: ``amps`` now, scaled down where the capacity falls; merged and cut to
    ``max_periods`` (the last period then takes the lowest of the periods it replaces)."""
    periods: list[tuple[datetime, float]] = [(start, amps)]
    for when, factor in factors:
        value = floor_tenth(amps * factor)
        if value < min_a:
            value = 0.0
        if value != periods[-1][1]:
            periods.append((when, value))
    max_periods = max(1, max_periods)
    if len(periods) > max_periods:
        tail = periods[max_periods - 1:]
        periods = periods[:max_periods - 1] + [(tail[0][0], min(v for _, v in tail))]
    return tuple(periods)


# ---------------------------------------------------------------------------------------------
# what the loop keeps
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """A profile the loop wants a station to hold (limits in A per phase)."""

    station_id: str
    evse_id: int
    purpose: str  # station_max|tx_default|tx
    periods: Periods
    number_phases: int | None = None
    transaction_id: str | None = None

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.station_id, self.evse_id, self.purpose)


@dataclass
class StationCaps:
    """What a station told about its smart charging (configuration keys / device model)."""

    unit: str = "A"
    max_stack_level: int | None = None
    max_periods: int | None = None


@dataclass
class SiteModel:
    """A site as one round sees it."""

    site: dict[str, Any]
    topology: SiteTopology  # limits after reservations
    physical: dict[str, Triple]  # node id → limits before reservations
    capacity: CapacitySchedule  # min of the grid limit and the site_capacity answers
    loads: list[Load]  # sessions at stations the loop can reach
    pinned: list[Load]  # sessions at stations it cannot reach
    reserved: dict[str, Triple]  # node id → amps held by unreachable stations below it
    stations: dict[str, dict[str, Any]]  # station id → row (+ "evses", "ready", "online")
    shares: dict[str, float]  # station id → safe share per connector
    managed: bool


@dataclass
class SiteRound:
    """The outcome of one round for one site (what the API and admin show)."""

    site_id: int
    number: int
    at: datetime
    managed: bool
    capacity_a: Triple = (INF, INF, INF)  # the capacity this round shared (before reservations)
    reserved_a: Triple = (0.0, 0.0, 0.0)  # of it, held by unreachable stations
    limits: dict[str, float] = field(default_factory=dict)  # load id → amps
    defaults: dict[str, float] = field(default_factory=dict)  # station id → TxDefault amps
    allocated_by_plugin: bool = True
    sent: int = 0
    failed: int = 0
    loads: list[Load] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# the service
# ---------------------------------------------------------------------------------------------


SITE_LOOKUP_TTL_S = 10.0


class SmartChargingService:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.config = SmartChargingSettings()
        # Called with each finished SiteRound (after its profiles were sent); for tests and live views.
        self.observers: list[Callable[[SiteRound], Any]] = []
        self.rounds: dict[int, SiteRound] = {}
        self._loads: dict[int, list[Load]] = {}
        self._due: dict[int, float] = {}  # site id → monotonic time of its next round
        self._site_of: dict[str, tuple[int | None, float]] = {}  # station → (site, when looked up)
        self._events: list[ev.Event] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
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

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        if not self.config.enabled:
            return
        self._unsubscribe = self.core.events.listen(self._on_event)
        self._task = asyncio.create_task(self._run(), name="csms-smart-charging")

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        tasks = [t for t in (self._task, *self._side_tasks) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None

    def loads_of(self, site_id: int) -> list[Load]:
        """The loads the current (or last) round of a site works with (for ``site_capacity`` plugins)."""
        return list(self._loads.get(site_id, []))

    def request(self, site_id: int, *, delay: float = 0.0) -> None:
        """Ask for a round of ``site_id`` within ``delay`` seconds."""
        due = time.monotonic() + delay
        if due < self._due.get(site_id, INF):
            self._due[site_id] = due
        self._wake.set()

    # -- events ---------------------------------------------------------------------------------

    def _on_event(self, event: ev.Event) -> None:
        """A listener on the event dispatcher: it runs after the station got its answer."""
        sid = event.station_id
        if isinstance(event, ev.StationConnected):
            self._connected_at[sid] = time.monotonic()
            self._booted.discard(sid)
            self._unknown.add(sid)
            self._caps.pop(sid, None)
            self._failed_at.pop(sid, None)
            self._site_of.pop(sid, None)
        elif isinstance(event, ev.StationBooted):
            if event.registration_status == "Accepted":
                self._booted.add(sid)
                self._unknown.add(sid)
                self._caps.pop(sid, None)
                self._failed_at.pop(sid, None)
        elif isinstance(event, ev.StationDisconnected):
            self._booted.discard(sid)
        elif isinstance(event, ev.MeterValuesReceived):
            if event.session_id is None:
                return
            self._measured_at[event.session_id] = time.monotonic()
        elif isinstance(event, ev.SessionStopped):
            self._measured_at.pop(event.session_id, None)
        elif isinstance(event, ev.StationReported):
            if event.category != "ev_charging_needs":
                return
        elif isinstance(event, ev.ConnectorStatusChanged):
            if event.evse_id == 0 or event.previous not in ("", "Unknown"):
                return  # only a connector seen for the first time changes the safe shares
        elif not isinstance(event, ev.SessionStarted):
            return
        self._events.append(event)
        self._wake.set()

    async def _absorb_events(self) -> None:
        events, self._events = self._events, []
        if not events:
            return
        now = time.monotonic()
        cfg = self.config
        # A station's site changes rarely (an operator moves it): look it up at most every
        # SITE_LOOKUP_TTL_S, not for every batch of meter values.
        stale = sorted({e.station_id for e in events
                        if now - self._site_of.get(e.station_id, (None, -INF))[1] > SITE_LOOKUP_TTL_S})
        if stale:
            rows = await Station.select(Station.station_id, Station.site).where(Station.station_id.is_in(stale))
            found = {r["station_id"]: r["site"] for r in rows}
            for station_id in stale:
                self._site_of[station_id] = (found.get(station_id), now)
        for e in events:
            site_id = self._site_of.get(e.station_id, (None, 0.0))[0]
            if isinstance(e, ev.StationReported):
                await self._store_charging_needs(e)
            if site_id is None:
                continue
            if isinstance(e, ev.MeterValuesReceived):
                delay = max(cfg.debounce_s, self._last_round.get(site_id, -INF) + cfg.meter_interval_s - now)
            elif isinstance(e, ev.StationConnected):
                delay = cfg.boot_grace_s
            else:
                delay = cfg.debounce_s
            due = now + delay
            if due < self._due.get(site_id, INF):
                self._due[site_id] = due

    async def _store_charging_needs(self, event: ev.StationReported) -> None:
        """2.0.1 NotifyEVChargingNeeds: the EV's departure time and energy, unless already set."""
        details = event.details or {}
        needs = details.get("chargingNeeds") or {}
        session = self.core.sessions.on_evse(event.station_id, details.get("evseId") or 0)
        if session is None:
            return
        params = needs.get("acChargingParameters") or needs.get("dcChargingParameters") or {}
        row = await ChargingSession.select(ChargingSession.departure_at, ChargingSession.energy_target_wh).where(
            ChargingSession.id == session.id).first()
        if row is None:
            return
        values: dict[Any, Any] = {}
        departure = parse_ts(needs.get("departureTime"))
        if departure is not None and row["departure_at"] is None:
            values[ChargingSession.departure_at] = departure
        if params.get("energyAmount") is not None and row["energy_target_wh"] is None:
            values[ChargingSession.energy_target_wh] = float(params["energyAmount"]) + session.energy_wh
        if values:
            await ChargingSession.update(values).where(ChargingSession.id == session.id)

    # -- the loop -------------------------------------------------------------------------------

    async def _run(self) -> None:
        next_sweep = time.monotonic() + self.config.interval_s
        while True:
            try:
                now = time.monotonic()
                wait = min(next_sweep, min(self._due.values(), default=INF)) - now
                if wait > 0 and not self._events:
                    try:
                        await asyncio.wait_for(self._wake.wait(), wait)
                    except asyncio.TimeoutError:
                        pass
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
        if self.core.commands.version_of(sid) is None or station["registration_status"] != "Accepted":
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
            s["online"] = self.core.commands.version_of(s["station_id"]) is not None
            s["ready"] = self._ready(s) if live else True
        for e in evse_rows:
            if e["evse_id"] > 0:
                by_pk[e["station"]]["evses"].add(e["evse_id"])
        hub_ids = {h["id"] for h in hubs}
        root_id = f"site:{site_id}"
        physical: dict[str, Triple] = {root_id: _limits_of(site["grid_limit_l1_a"], site["grid_limit_l2_a"],
                                                           site["grid_limit_l3_a"])}
        parents: dict[str, str | None] = {root_id: None}
        names = {root_id: site["name"]}
        for h in hubs:
            hid = f"hub:{h['id']}"
            physical[hid] = _limits_of(h["limit_l1_a"], h["limit_l2_a"], h["limit_l3_a"])
            parents[hid], names[hid] = root_id, h["name"]
        st_by_id = {}
        nid: str | None  # a node id; None once a walk up the tree passes the root
        for s in stations:
            nid = f"station:{s['station_id']}"
            limit = INF if s["max_current_a"] is None else max(0.0, s["max_current_a"])
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
        sessions = [x for x in self.core.sessions.active.values() if x.station_id in st_by_id and x.evse_id > 0]
        extra_rows = await ChargingSession.select(
            ChargingSession.id, ChargingSession.departure_at, ChargingSession.energy_target_wh,
        ).where(ChargingSession.id.is_in([x.id for x in sessions])) if sessions else []
        extra = {r["id"]: r for r in extra_rows}
        loads: list[Load] = []
        pinned: list[Load] = []
        voltage = float(site["voltage_v"] or 230.0)
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
            load = Load(
                id=f"{x.station_id}/{x.evse_id}", station_id=x.station_id, evse_id=x.evse_id, session_id=x.id,
                phases=grid_phases(s["phase_rotation"], station_phases),
                min_a=float(s["min_current_a"] if s["min_current_a"] is not None else 6.0),
                max_a=float(s["max_current_a"] if s["max_current_a"] is not None else cfg.default_max_current_a),
                measured_a=measured, power_w=x.power_w, started_at=x.started_at, node=f"station:{x.station_id}",
                departure_at=info.get("departure_at"), energy_wh=x.energy_wh,
                energy_wh_needed=None if target is None else max(0.0, target - x.energy_wh),
                extra={"transaction_id": x.transaction_id, "station_phases": station_phases},
            )
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
        capacity = await self._capacity(site_dict, physical[root_id], now)
        managed = limited or any(not math.isinf(v) for v in capacity.at(now)) or any(
            not math.isinf(v) for nid, lim in physical.items() if nid != root_id for v in lim)
        return SiteModel(site=site_dict, topology=topology, physical=physical, capacity=capacity, loads=loads,
                         pinned=pinned, reserved={k: tuple(v) for k, v in reserved.items()},  # type: ignore[misc]
                         stations=st_by_id, shares=shares, managed=managed)

    async def _capacity(self, site: dict[str, Any], grid: Triple, now: datetime) -> CapacitySchedule:
        schedules = [CapacitySchedule((CapacityPeriod(now, grid),))]
        for plugin, answer in await call_hook("site_capacity", site=site, now=now):
            if isinstance(answer, CapacitySchedule) and answer.periods:
                schedules.append(answer)
            elif not isinstance(answer, CapacitySchedule):
                log.warning("plugin %s answered site_capacity with %r, not a CapacitySchedule", plugin, answer)
        if len(schedules) == 1:
            return schedules[0]
        # only what applies from now on: the capacity in force now, then its changes
        merged = CapacitySchedule.minimum(schedules)
        periods = [CapacityPeriod(now, merged.at(now))]
        periods += [p for p in merged.periods if p.start > now]
        return CapacitySchedule(tuple(periods))

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
            purpose = _CODE_PURPOSES.get((r["profile_id"] - base) % 10)
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

        wanted = await self.allocate(model, hook_capacity, now) if model.loads else {}
        result.allocated_by_plugin = wanted is not None
        if wanted is None:  # no allocator: every connector gets its safe share
            wanted = {load.id: model.shares[load.station_id] for load in model.loads}
        limits = enforce_limits(topology, model.loads, wanted, available)  # type: ignore[arg-type]
        result.limits = limits
        defaults = self._defaults(model, limits, available)  # type: ignore[arg-type]
        result.defaults = defaults

        factors = capacity_factors(model.capacity, now, cfg.horizon_s, root_res)
        nxt = min((when for when, _ in factors), default=None)
        if nxt is None:
            nxt = min((p.start for p in model.capacity.periods if p.start > now), default=None)
        if nxt is not None:
            self.request(site_id, delay=max(0.0, (nxt - utcnow()).total_seconds()) + 1.0)
        plans: list[Planned] = []
        for sid, station in model.stations.items():
            if not station["ready"]:
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
                                     transaction_id=load.extra["transaction_id"]))
        await self._send(model, plans, result)
        self._finish(result)
        return result

    @staticmethod
    async def allocate(model: SiteModel, capacity: CapacitySchedule, now: datetime) -> dict[str, float] | None:
        """The ``allocate_capacity`` answer for the model's loads, or None without an allocator."""
        answer = await call_hook("allocate_capacity", site=model.site, topology=model.topology,
                                 loads=list(model.loads), capacity=capacity, now=now)
        if answer is None:
            return None
        if not isinstance(answer, dict):
            log.warning("allocate_capacity answered %r, not a dict of load id to amps", answer)
            return None
        return {str(k): float(v) for k, v in answer.items()}

    def _defaults(self, model: SiteModel, limits: dict[str, float], available: Triple) -> dict[str, float]:
        """Each reachable station's TxDefault: the largest value every node can still carry for
        every connector falling back to it (see the module docstring), within its safe share."""
        topology = model.topology
        node_limits = {n.id: n.limit_a for n in topology.nodes}
        root = topology.root.id
        node_limits[root] = tuple(min(a, b) for a, b in zip(node_limits[root], available))  # type: ignore[assignment]
        cfg = self.config
        ready = {sid: s for sid, s in model.stations.items() if s["ready"]}
        tops = {sid: min(model.shares[sid], float(s["max_current_a"] if s["max_current_a"] is not None
                                                 else cfg.default_max_current_a)) for sid, s in ready.items()}
        # per station: its path, its active loads, its idle connectors
        members = []
        for sid, s in ready.items():
            path = [n.id for n in topology.path(f"station:{sid}")]
            active = [load for load in model.loads if load.station_id == sid]
            idle = len(set(s["evses"]) - {load.evse_id for load in active}) if s["evses"] else (0 if active else 1)
            members.append((sid, path, active, idle))

        def fits(level: float) -> bool:
            totals = {nid: [0.0, 0.0, 0.0] for nid in node_limits}
            for sid, path, active, idle in members:
                d = min(level, tops[sid])
                per_phase = [idle * d] * 3
                for load in active:
                    a = limits.get(load.id, 0.0)
                    for p in PHASES:
                        per_phase[p - 1] += max(a, d) if p in load.phases else d
                for nid in path:
                    for p in range(3):
                        totals[nid][p] += per_phase[p]
            return all(totals[nid][p] <= node_limits[nid][p] + EPSILON_A for nid in node_limits for p in range(3))

        high = max(tops.values(), default=0.0)
        if fits(high):
            level = high
        else:
            low = 0.0
            for _ in range(40):
                mid = (low + high) / 2
                if fits(mid):
                    low = mid
                else:
                    high = mid
            level = low
        out = {}
        for sid, s in ready.items():
            d = floor_tenth(min(level, tops[sid]))
            out[sid] = d if d >= float(s["min_current_a"] or 6.0) else 0.0
        return out

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
            elif plan.purpose == TX and self.core.sessions.on_evse(station_id, plan.evse_id) is None:
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
        version = self.core.operations.version(plan.station_id)
        caps = await self._station_caps(plan.station_id)
        profile = build_profile(version, plan, profile_id=self.profile_id(plan.evse_id, plan.purpose),
                                stack_level=self.stack_level(caps), unit=caps.unit,
                                voltage_v=model.topology.voltage_v)
        answer = await self.core.operations.set_charging_profile(plan.station_id, evse_id=plan.evse_id,
                                                                 profile=profile, by="smart-charging")
        return answer["status"]

    def profile_id(self, evse_id: int, purpose: str) -> int:
        return self.config.profile_id_base + 10 * evse_id + _PURPOSE_CODES[purpose]

    def stack_level(self, caps: StationCaps) -> int:
        level = self.config.stack_level
        if caps.max_stack_level is not None:
            level = min(level, caps.max_stack_level)
        return max(0, level)

    async def _station_caps(self, station_id: str) -> StationCaps:
        """Rate unit, stack level and periods the station allows, from stored configuration."""
        caps = self._caps.get(station_id)
        if caps is not None:
            return caps
        caps = StationCaps()
        row = await Station.select(Station.id, Station.ocpp_version).where(Station.station_id == station_id).first()
        if row is not None and row["ocpp_version"] == V16:
            keys = {k["key"]: k["value"] for k in await ConfigurationKey.select(
                ConfigurationKey.key, ConfigurationKey.value).where(ConfigurationKey.station == row["id"])}
            units = keys.get("ChargingScheduleAllowedChargingRateUnit")
            if units and "current" not in units.lower() and "power" in units.lower():
                caps.unit = "W"
            caps.max_stack_level = _int_or_none(keys.get("ChargeProfileMaxStackLevel"))
            caps.max_periods = _int_or_none(keys.get("ChargingScheduleMaxPeriods"))
        elif row is not None:
            variables = {r["variable"]: r["value"] for r in await DeviceVariable.select(
                DeviceVariable.variable, DeviceVariable.value).where(
                (DeviceVariable.station == row["id"]) & (DeviceVariable.component == "SmartChargingCtrlr")
                & (DeviceVariable.attribute_type == "Actual"))}
            units = variables.get("RateUnit")
            if units and "A" not in [u.strip() for u in units.split(",")] and "W" in units:
                caps.unit = "W"
            caps.max_stack_level = _int_or_none(variables.get("ProfileStackLevel"))
            caps.max_periods = _int_or_none(variables.get("PeriodsPerSchedule"))
        self._caps[station_id] = caps
        return caps

    # -- views and dry runs --------------------------------------------------------------------------

    async def site_view(self, site_id: int) -> dict[str, Any]:
        """Capacity vs allocation vs measured draw per phase, the tree with hub status, and the
        limits sent to each connector with the stations' answers. Raises LookupError for no site.

        The allocation is the last round's, so it comes with the capacity that round shared
        (``round_capacity_a``, and ``last_round``'s ``capacity_a``, ``reserved_a`` and
        ``available_a``); ``capacity_a`` and ``reserved_a`` are the live values, which differ
        from the round's until the next round when the capacity has changed since."""
        now = utcnow().replace(microsecond=0)
        model = await self.model(site_id, now)
        if model is None:
            raise LookupError(site_id)
        last = self.rounds.get(site_id)
        limits = last.limits if last is not None else {}
        topology = model.topology
        rows = await ChargingProfile.select(
            ChargingProfile.station.station_id.as_alias("station_ident"), ChargingProfile.evse_id,
            ChargingProfile.purpose, ChargingProfile.transaction_id, ChargingProfile.payload,
            ChargingProfile.status, ChargingProfile.sent_at,
        ).where((ChargingProfile.station.site == site_id) & (ChargingProfile.source == "csms")).order_by(
            ChargingProfile.id, ascending=False).limit(1000).output(load_json=True)
        latest: dict[tuple[str, int, str], dict[str, Any]] = {}
        for r in rows:
            latest.setdefault((r["station_ident"], r["evse_id"], r["purpose"]), r)

        def sent(station_id: str, evse_id: int, purpose: str, transaction_id: str | None = None) -> dict | None:
            r = latest.get((station_id, evse_id, purpose))
            if r is None or (transaction_id is not None and r["transaction_id"] != transaction_id):
                return None
            planned = planned_from_payload(station_id, evse_id, purpose, r["payload"], r["sent_at"],
                                           topology.voltage_v)
            return {"purpose": purpose, "limit_a": periods_at(planned.periods, now) if planned else None,
                    "periods": [{"start": ocpp_ts(t), "limit_a": a} for t, a in planned.periods] if planned else [],
                    "status": r["status"], "acknowledged": r["status"] == "Accepted",
                    "sent_at": ocpp_ts(r["sent_at"])}

        names = _PURPOSE_NAMES[V16]
        node_alloc = {n.id: [0.0, 0.0, 0.0] for n in topology.nodes}
        node_measured = {n.id: [0.0, 0.0, 0.0] for n in topology.nodes}
        connectors = []
        for load in model.loads + model.pinned:
            station = model.stations[load.station_id]
            session = self.core.sessions.on_evse(load.station_id, load.evse_id)
            mapping = rotation_map(station["phase_rotation"])
            measured = [0.0, 0.0, 0.0]
            for k, v in (session.current_a if session else {}).items():
                if k in ("L1", "L2", "L3") and v is not None:
                    measured[mapping[int(k[1])] - 1] += v
            tx = load.extra["transaction_id"]
            profile = sent(load.station_id, load.evse_id, names[TX], tx)
            allocated = limits.get(load.id) if station["ready"] else (profile or {}).get("limit_a")
            for n in topology.path(load.node):
                for p in range(3):
                    node_measured[n.id][p] += measured[p]
                    if allocated is not None and p + 1 in load.phases:
                        node_alloc[n.id][p] += allocated
            connectors.append({
                "station_id": load.station_id, "evse_id": load.evse_id, "session_id": load.session_id,
                "transaction_id": tx, "phases": list(load.phases), "reachable": bool(station["ready"]),
                "measured_a": round(max(measured), 2), "measured_per_phase_a": [round(m, 2) for m in measured],
                "allocated_a": allocated, "departure_at": load.departure_at.isoformat() if load.departure_at else None,
                "energy_wh": load.energy_wh, "energy_wh_needed": load.energy_wh_needed, "sent": profile,
            })
        children: dict[str | None, list[TopologyNode]] = {}
        for n in topology.nodes:
            children.setdefault(n.parent, []).append(n)
        hubs = []

        def tree(n: TopologyNode) -> dict[str, Any]:
            out: dict[str, Any] = {
                "id": n.id, "kind": n.kind, "name": n.name, "limit_a": _finite(model.physical[n.id]),
                "reserved_a": list(n.reserved_a), "available_a": _finite(n.limit_a),
                "allocated_a": [round(v, 2) for v in node_alloc[n.id]],
                "measured_a": [round(v, 2) for v in node_measured[n.id]],
                "children": [tree(c) for c in children.get(n.id, [])],
            }
            if n.kind == "station":
                st = model.stations[n.station_id]  # type: ignore[index]
                default = sent(n.station_id, 0, names[TX_DEFAULT])  # type: ignore[arg-type]
                out.update({
                    "station_id": n.station_id, "online": st["online"], "reachable": st["ready"],
                    "ocpp_version": st["ocpp_version"], "phase_rotation": n.phase_rotation,
                    "evses": sorted(st["evses"]), "min_current_a": n.min_current_a,
                    "safe_share_a": model.shares[n.station_id],  # type: ignore[index]
                    "default_profile": default,
                    "station_max_profile": sent(n.station_id, 0, _PURPOSE_NAMES[V16][STATION_MAX])  # type: ignore[arg-type]
                    or sent(n.station_id, 0, _PURPOSE_NAMES["2.0.1"][STATION_MAX]),  # type: ignore[arg-type]
                })
            elif n.kind == "hub":
                members = [c for c in out["children"] if c["kind"] == "station"]
                online = sum(1 for c in members if c["online"])
                hub_id = int(n.id.split(":", 1)[1])
                info: dict[str, Any] = {"id": hub_id, "name": n.name, "stations": [c["station_id"] for c in members],
                        "online": online, "offline": len(members) - online,
                        "status": "empty" if not members else "online" if online == len(members)
                        else "offline" if online == 0 else "partial"}
                out.update({k: v for k, v in info.items() if k not in ("id", "name")})
                hubs.append(info)
            return out

        root = tree(topology.root)
        hub_rows = {h["id"]: h for h in await Hub.select(Hub.id, Hub.device_id, Hub.max_stations).where(
            Hub.site == site_id)}
        for h in hubs:
            row = hub_rows.get(h["id"], {})
            h["device_id"], h["max_stations"] = row.get("device_id", ""), row.get("max_stations")
            h["over_max_stations"] = h["max_stations"] is not None and len(h["stations"]) > h["max_stations"]
        cap_now = model.capacity.at(now)
        return {
            "site_id": site_id, "name": model.site["name"], "managed": model.managed, "at": ocpp_ts(now),
            "voltage_v": topology.voltage_v, "phases": ["L1", "L2", "L3"],
            "grid_limit_a": _finite(model.physical[topology.root.id]),
            "capacity_a": _finite(cap_now), "reserved_a": list(model.reserved[topology.root.id]),
            "round_capacity_a": None if last is None else _finite(last.capacity_a),
            "allocated_a": [round(v, 2) for v in node_alloc[topology.root.id]],
            "measured_a": [round(v, 2) for v in node_measured[topology.root.id]],
            "capacity_schedule": [{"start": ocpp_ts(p.start), "limit_a": _finite(p.limit_a)}
                                  for p in model.capacity.periods],
            "last_round": None if last is None else {
                "number": last.number, "at": ocpp_ts(last.at), "sent": last.sent, "failed": last.failed,
                "capacity_a": _finite(last.capacity_a), "reserved_a": list(last.reserved_a),
                "available_a": _finite(tuple(max(0.0, c - r) for c, r in zip(last.capacity_a, last.reserved_a))),  # type: ignore[arg-type]
                "allocated_by_plugin": last.allocated_by_plugin,
                "default_limits_a": last.defaults},
            "tree": root, "hubs": hubs, "connectors": connectors,
        }

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
        if capacity_a is not None:
            if len(capacity_a) != 3 or any(v is None or v < 0 for v in capacity_a):
                raise ValueError("capacity_a must be three amps >= 0")
            capacity = CapacitySchedule((CapacityPeriod(now, tuple(float(v) for v in capacity_a)),))  # type: ignore[arg-type]
        else:
            capacity = model.capacity
        topology = model.topology
        loads = []
        seen: set[str] = set()
        for i, car in enumerate(cars):
            car_id = str(car.get("id") or f"car{i + 1}")
            if car_id in seen:
                raise ValueError(f"two cars are called {car_id!r}")
            seen.add(car_id)
            sid = car.get("station_id")
            station = model.stations.get(sid) if sid else None
            if sid and station is None:
                raise ValueError(f"station {sid!r} is not at site {site_id}")
            phases = car.get("phases", 3)
            if isinstance(phases, int):
                if not 1 <= phases <= 3:
                    raise ValueError(f"{car_id}: phases is 1, 2 or 3, or a list of grid phases")
                own = tuple(range(1, phases + 1))
                grid = grid_phases(station["phase_rotation"], own) if station else own
            else:
                grid = tuple(sorted(set(phases)))
                if not grid or any(p not in PHASES for p in grid):
                    raise ValueError(f"{car_id}: grid phases are among 1, 2, 3")
            max_a = float(car.get("max_current_a") or self.config.default_max_current_a)
            if station is not None and station["max_current_a"] is not None:
                max_a = min(max_a, station["max_current_a"])
            min_a = car.get("min_current_a")
            if min_a is None:
                min_a = station["min_current_a"] if station is not None else 6.0
            loads.append(Load(id=car_id, station_id=sid or "", evse_id=i + 1, session_id=0, phases=grid,
                              min_a=float(min_a), max_a=max_a, measured_a=car.get("measured_a"),
                              started_at=now - timedelta(seconds=len(cars) - i), priority=int(car.get("priority") or 0),
                              node=f"station:{sid}" if sid else topology.root.id))
        trial = SiteModel(**{**model.__dict__, "loads": loads})
        wanted = await self.allocate(trial, capacity, now) if loads else {}
        by_plugin = wanted is not None
        if wanted is None:
            root_share = min(capacity.at(now)) / max(1, len(loads))
            wanted = {load.id: model.shares[load.station_id] if load.station_id else root_share for load in loads}
        limits = enforce_limits(topology, loads, wanted, capacity.at(now))
        totals = [0.0, 0.0, 0.0]
        measured = [0.0, 0.0, 0.0]
        node_totals = {n.id: [0.0, 0.0, 0.0] for n in topology.nodes}
        for load in loads:
            for p in load.phases:
                totals[p - 1] += limits[load.id]
                measured[p - 1] += load.measured_a or 0.0
                for n in topology.path(load.node):
                    node_totals[n.id][p - 1] += limits[load.id]
        return {
            "site_id": site_id, "at": ocpp_ts(now), "managed": model.managed, "allocated_by_plugin": by_plugin,
            "capacity_a": _finite(capacity.at(now)),
            "allocation": [{"id": load.id, "station_id": load.station_id or None, "phases": list(load.phases),
                            "limit_a": limits[load.id], "paused": limits[load.id] == 0.0} for load in loads],
            "totals_a": [round(v, 2) for v in totals], "measured_a": [round(v, 2) for v in measured],
            "nodes": [{"id": n.id, "kind": n.kind, "name": n.name, "limit_a": _finite(n.limit_a),
                       "allocated_a": [round(v, 2) for v in node_totals[n.id]]} for n in topology.nodes],
        }

    async def set_session_targets(self, session_id: int, *, departure_at: datetime | None,
                                  energy_target_wh: float | None) -> dict[str, Any]:
        """Store when the driver leaves and how much energy they want; the site is recomputed."""
        row = await ChargingSession.select(ChargingSession.id, ChargingSession.station.site.as_alias("site")).where(
            ChargingSession.id == session_id).first()
        if row is None:
            raise LookupError(session_id)
        await ChargingSession.update({ChargingSession.departure_at: departure_at,
                                      ChargingSession.energy_target_wh: energy_target_wh}).where(
            ChargingSession.id == session_id)
        if row["site"] is not None:
            self.request(row["site"], delay=self.config.debounce_s)
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
            version = self.core.operations.version(station_id)
        except StationOffline:
            return
        now = utcnow()
        top = self._sent.get((station_id, 0, STATION_MAX))
        for session in self.core.sessions.for_station(station_id):
            tx = self._sent.get((station_id, session.evse_id, TX))
            if tx is None or tx.transaction_id != session.transaction_id:
                continue
            expected = periods_at(tx.periods, now)
            if top is not None:
                expected = min(expected, periods_at(top.periods, now))
            payload: dict[str, Any] = {"duration": 300, "chargingRateUnit": "A"}
            payload["connectorId" if version == V16 else "evseId"] = session.evse_id
            try:
                answer = await self.core.commands.send(station_id, "GetCompositeSchedule", payload,
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
            committed = self.core.stations.record(station_id, "smart_charging", "not_honouring_profiles",
                                                  evse_id=session.evse_id, summary=summary, details=details, wait=True)
            assert committed is not None  # wait=True always gives a commit future
            await committed
            self.core.reports.emit(station_id, "smart_charging", "not_honouring_profiles", details)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# payloads
# ---------------------------------------------------------------------------------------------


def build_profile(version: str, plan: Planned, *, profile_id: int, stack_level: int, unit: str = "A",
                  voltage_v: float = 230.0) -> dict[str, Any]:
    """The ``csChargingProfiles`` (1.6) or ``chargingProfile`` (2.0.1) for a planned limit."""
    start = plan.periods[0][0]
    phases = plan.number_phases
    periods = []
    previous = INF
    for when, amps in plan.periods:
        limit = amps if unit == "A" else float(math.floor(amps * voltage_v * (phases or 3)))
        offset = (when - start).total_seconds()
        # whole seconds: a fall takes effect no later, a rise no earlier than planned
        offset = math.ceil(offset) if amps > previous else math.floor(offset)
        previous = amps
        period: dict[str, Any] = {"startPeriod": int(offset), "limit": limit}
        if phases is not None:
            period["numberPhases"] = phases
        periods.append(period)
    schedule: dict[str, Any] = {"startSchedule": ocpp_ts(start), "chargingRateUnit": unit,
                                "chargingSchedulePeriod": periods}
    purpose = _PURPOSE_NAMES[V16 if version == V16 else "2.0.1"][plan.purpose]
    if version == V16:
        profile: dict[str, Any] = {"chargingProfileId": profile_id, "stackLevel": stack_level,
                                   "chargingProfilePurpose": purpose, "chargingProfileKind": "Absolute",
                                   "chargingSchedule": schedule}
        if plan.purpose == TX and plan.transaction_id is not None:
            profile["transactionId"] = int(plan.transaction_id)
        return profile
    profile = {"id": profile_id, "stackLevel": stack_level, "chargingProfilePurpose": purpose,
               "chargingProfileKind": "Absolute", "chargingSchedule": [{"id": profile_id, **schedule}]}
    if plan.purpose == TX and plan.transaction_id is not None:
        profile["transactionId"] = plan.transaction_id
    return profile


def planned_from_payload(station_id: str, evse_id: int, purpose: str, profile: dict[str, Any],
                         sent_at: datetime, voltage_v: float = 230.0) -> Planned | None:
    """A stored profile (either version) back as limits in amps."""
    try:
        schedule = profile["chargingSchedule"]
        schedule = schedule[0] if isinstance(schedule, list) else schedule
        start = parse_ts(schedule.get("startSchedule")) or sent_at
        unit = schedule.get("chargingRateUnit", "A")
        periods = []
        phases = None
        for p in schedule["chargingSchedulePeriod"]:
            phases = p.get("numberPhases", phases)
            amps = float(p["limit"]) if unit == "A" else float(p["limit"]) / (voltage_v * (p.get("numberPhases") or 3))
            periods.append((start + timedelta(seconds=int(p["startPeriod"])), amps))
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    if not periods:
        return None
    tx = profile.get("transactionId")
    return Planned(station_id, evse_id, purpose, tuple(periods), number_phases=phases,
                   transaction_id=None if tx is None else str(tx))


def composite_limit_a(version: str, answer: dict[str, Any], voltage_v: float) -> float | None:
    """The limit at the start of a GetCompositeSchedule answer, in A per phase."""
    if answer.get("status") != "Accepted":
        return None
    schedule = answer.get("chargingSchedule") if version == V16 else answer.get("schedule")
    if not schedule or not schedule.get("chargingSchedulePeriod"):
        return None
    first = min(schedule["chargingSchedulePeriod"], key=lambda p: p["startPeriod"])
    limit = float(first["limit"])
    if schedule.get("chargingRateUnit") == "W":
        limit /= voltage_v * (first.get("numberPhases") or 3)
    return limit
