"""Smart-charging allocation: share a site's electrical capacity among charging sessions.

This module is pure: no I/O, no clock, no imports from the core. The core calls
:func:`allocate` every time something changes (a session starts or stops, a meter value
arrives, the site's capacity changes) or on a timer, persists the returned
:class:`AllocatorState` (``to_dict`` / ``from_dict``) and turns each load's limit into a
charging profile for its station.

Model
=====
A site is a tree of :class:`Node` objects: the grid connection at the root, sub-circuits or
hubs below it, stations below those. Every node has a current limit for each grid phase
(L1, L2, L3, in amps; ``math.inf`` means "no limit of its own"). A :class:`Load` is one
active charging session. It hangs under one node and draws from the grid phases listed in
``phases``, after the station's phase rotation: ``(1, 2, 3)`` is a three-phase car,
``(2,)`` a single-phase car connected to L2. A load drawing *I* amps adds *I* to each of its
phases at every node on its path up to the root. The limit given to a load is a current per
phase, which is what OCPP charging profiles carry.

Rules, in the order they are applied
====================================
1. **Loads that cannot or need not charge** get 0 and are reported as ``idle``, not as
   paused: a load whose ``max_a`` is below its ``min_a`` (or zero), and a load whose known
   remaining energy (``energy_wh_needed``) is zero or less.

2. **Caps.** A load never gets more than its ``max_a`` (EVSE, cable or car limit), and
   never less than its ``min_a`` while it is charging. Two things can lower the cap further,
   never below ``min_a``:

   * *Energy still needed* - when ``energy_wh_needed`` and ``AllocatorConfig.period_s`` are
     known, a load gets no more than the current that delivers its remaining energy within
     one period: ``energy_wh_needed * 3600 / (watts_per_amp * period_s)``.
     ``watts_per_amp`` is the load's power per amp of limit; by default
     ``voltage_v * len(phases)``.
   * *Unused capacity is reallocated* - when the load was given a limit last time and its
     ``measured_a`` is below ``ramp_threshold`` times that limit (the car takes less than
     it is offered: battery nearly full, slow on-board charger, cold battery), its cap
     becomes ``measured_a + buffer_a``. The capacity freed goes to the other loads through
     the fair sharing below. As soon as the car draws ``ramp_threshold`` of its cap or more,
     the cap is lifted and the car is back at its fair share.

3. **Start level (deadlines).** When ``deadline_aware`` is on (the default) and a load's
   ``energy_wh_needed`` (> 0) and ``departure_at`` are both known, it is *timed* and its
   *start* is the time until its departure (0 when due, at most a week) plus
   ``progress_s`` (15 min) times the share of its energy it has received
   (``energy_wh / (energy_wh + energy_wh_needed)``), in hours. A load that is not timed
   (its driver or EV said nothing) counts as leaving ``untimed_start_s`` (2 h) from now,
   always: timed cars that leave sooner come first, timed cars that leave later wait until
   they are that close to their departure, and a driver who gives a departure is never
   behind untimed cars once it is near. A timed load that, charging at its ``max_a`` from
   now, would still finish more than ``behind_schedule_s`` (15 min) after its departure
   starts at 0, as if it were due now: it cannot get its energy anyway, and serving it at
   once gets it the most before it leaves (drivers often stay longer than they said, so the
   cars that are due are often not leaving yet). Starts are used in rules 5 and 6; only
   their differences matter (the smallest is taken as 0).

   *In a crunch* - when on some node phase the timed loads together need more than
   ``crunch_pressure`` (2) times its limit to get their energy before they leave (each at
   most its cap) - no departure can be met anyway, and departures are set aside for
   fairness: the weights and starts of rule 6 become those that minimise the sum over the
   loads of ``R ** crunch_size_exponent * u ** 2 / n ** crunch_stay_exponent``, where ``u``
   is the share of its requested energy ``R`` (``energy_wh + energy_wh_needed``) a load will
   still miss after ``crunch_horizon_s`` (5 min) at the limit it is given and ``n`` the
   number of such horizons before it leaves (at least 1; ``untimed_start_s`` for a load
   without a departure). With a size exponent of 0 that is the
   sum of squared unmet shares (what Jain's index over delivered/requested rewards, but a
   car with a large demand then waits behind every small one); with 1 every load ends the
   horizon missing the same share; the default 0.5 lies between. The stay exponent (0.5)
   lets a car that stays longer fall further behind now, as it has more rounds to catch up
   in: with 0 a car leaving in ten minutes and one staying all day are cut alike, and what
   the first misses is lost when it leaves. For a load with ``e`` Wh
   per amp over the horizon and ``m`` = ``energy_wh_needed``, the optimum under node limits
   is the progressive filling of rule 6 with ``weight = R ** (2 - exponent) * n ** stay / e ** 2``
   and ``start = -m * e / (R ** (2 - exponent) * n ** stay)`` (scaled together), times the
   priority weight. A load whose energy is not known
   takes the median weight and start of the loads whose energy is.

4. **Rotation state.** The allocator remembers for each load whether it was charging (*on*)
   or paused (*off*) and since when. A load that was switched on less than ``min_on_s`` ago
   is *held on*; a load that was paused less than ``min_off_s`` ago is *held off* and gets 0
   in this round, even if there would be room, so that cars are not switched on and off
   faster than they tolerate. A load seen for the first time is neither.

   *When the capacity rises* (it also remembers every node's limits of the previous call: a
   peak-shaving window ends, a signal is lifted, an unreachable station's reservation is
   released), a load held off is considered again at once if some node phase on its path
   has a higher limit than in the previous call and the load is not flapping: it charged for
   at least ``min_on_s`` before its pause (or never charged in this session), and the pause
   before that charge lasted at least ``min_off_s`` (it was not itself an early resume). It
   comes after every other load of its priority in the admission order (rule 5), so it only
   takes room that no other car claims. A car that a falling cap switched off soon after it
   was switched on still waits ``min_off_s``, and so does one resumed early the time
   before: when the capacity keeps going up and down, no two pauses of a car in a row are
   shorter than ``min_off_s``.

5. **Admission.** Every load that is not held off is considered in this order:

   a. higher ``priority`` first;
   b. loads held on (switched on less than ``min_on_s`` ago) - a running car is not
      interrupted by an equal-priority car;
   c. then the rotation queue: every waiting car (paused, or new), the one waiting longest
      first, comes before every car that is charging, and the car that has been charging
      longest is the first to give its place;
   c'. then the loads held off that a rise of the capacity lets back in (rule 4);
   d. ties: earlier ``departure_at`` first (unknown last), then earlier ``arrived_at``, then id.

   A load is admitted when every node on its path can still supply its ``min_a`` on each of
   its phases on top of the ``min_a`` of the loads admitted before it; it then reserves its
   ``min_a``. A load that does not fit gets 0 (*paused*); loads after it that fit (for
   instance on another branch) are still admitted. Within a priority class every waiting
   car gets its turn (starvation-free): a paused car that has waited ``max_wait_s`` (30 min)
   and still does not fit (the cars held on fill its phases; a three-phase car among
   single-phase ones) keeps the cars after it in the queue off its phases until it fits;
   ``min_on_s`` and ``min_off_s`` bound how often a car is switched. A higher priority class is served first, and a new higher-priority car may
   interrupt a lower-priority car held on.

   *Cars that can wait.* When some load is timed, the sharing of rule 6 is first computed
   without minimum currents, for every load not held off. A timed load that would get less
   than its ``min_a`` there (others leave before it and take the capacity) is *low*, and is
   admitted only while, on every node phase of its path, the ``min_a`` of the low loads
   admitted so far plus its own stays within what the more urgent loads leave (the limit
   minus what the loads that are not low and have an earlier start would get). So capacity
   goes to the cars that leave first instead of holding every car that could wait at
   ``min_a``; a low car never waits for a less or equally urgent one, and the low cars take
   turns through the rotation queue. In a crunch (rule 3) a low car that has been paused for
   ``max_wait_s`` is admitted whenever its ``min_a`` fits: there urgency follows the shares
   received, which only move while cars charge, so a car with a large demand would otherwise
   wait behind a stream of smaller ones. Loads that are not timed are admitted as above.

6. **Sharing (earliest departure first, max-min fair among equals).** What remains after
   the ``min_a`` reservations is shared among the admitted loads by progressive filling: a
   common level ``x`` (hours) rises from 0; each admitted load gets
   ``max(min_a, weight * (x - start))``, capped at its cap (rule 2), with
   ``weight = 2 ** priority * deadline_a_per_h`` (360 A per hour; the exponent bounded to
   10; in a crunch, rule 3's weights). When a load reaches its cap it stops rising; when a
   node's phase reaches its limit, every load drawing from that node's phase stops rising;
   the others go on until every load has stopped. So a car leaving an hour earlier than another is 360 A ahead of it: in
   practice the car that leaves first is served up to its cap before the next one (earliest
   deadline first, which delivers the most energy when cars leave with their demand unmet),
   cars leaving within minutes of each other share, and loads with equal starts (all loads
   without deadlines, or equal departures and progress) share max-min fairly, each priority
   step doubling a load's share. Equal loads with equal demands on a symmetric tree get equal
   shares. No capacity is left unused while an admitted load below its cap could take it.

7. **Hysteresis.** When a load was charging before and its new limit differs from the
   previous one by less than ``hysteresis_a``, it keeps the previous limit, provided that
   stays within its ``min_a``/``max_a`` and every node still has room for it (a higher
   previous limit is only kept while it fits). What a load kept below its new share leaves
   unused is shared, by the same progressive filling, among the loads whose limit changes
   anyway. This avoids sending a new charging profile for every small change.

8. **Limits are never exceeded.** For every node and phase, the sum of the limits of the
   loads below it stays at or under the node's limit (up to 1e-9 A of floating-point
   error). Loads that are paused or idle get exactly 0.

Returned per-node, per-phase totals (``Allocation.node_totals_a``) are the sums of the
limits given, for display next to the node's limits.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Allocation",
    "AllocatorConfig",
    "AllocatorState",
    "Load",
    "LoadState",
    "Node",
    "allocate",
]

# Tolerance on node limits for floating-point error (amps).
EPSILON_A = 1e-9
# Departures further away than this count as this far (a week): keeps the levels small.
_HORIZON_S = 7 * 86400.0
_STATE_VERSION = 1


@dataclass(frozen=True)
class Node:
    """A node of a site's electrical tree: grid connection, sub-circuit/hub or station.

    Attributes:
        id: unique within the tree.
        parent: id of the node it hangs under; None for a root (grid connection).
        limit_a: maximum current per grid phase L1, L2, L3 in amps (``math.inf``: none).
    """

    id: str
    parent: str | None
    limit_a: tuple[float, float, float]


@dataclass(frozen=True)
class Load:
    """One active charging session on a connector.

    Attributes:
        id: unique among the loads (a session or connector id).
        node: id of the node it hangs under (usually its station's node).
        phases: grid phases (1..3) it draws from, after the station's phase rotation.
        min_a: minimum current the car needs to charge (6 A per IEC 61851); below it the
            car is paused at 0.
        max_a: maximum current per phase (EVSE, cable or car).
        measured_a: measured draw per phase now (highest of its phases); None if unknown.
        priority: higher is admitted first and gets a larger share (rule 6).
        arrived_at: when the session started (seconds, same clock as ``now``).
        energy_wh_needed: remaining energy the car wants, if known.
        departure_at: expected departure (seconds, same clock as ``now``), if known.
        watts_per_amp: power drawn per amp of limit; default ``voltage_v * len(phases)``
            (set it for line-to-line loads or other voltages).
        energy_wh: energy delivered so far in this session (used with
            ``energy_wh_needed`` to know how far along the car is, rule 6).
    """

    id: str
    node: str
    phases: tuple[int, ...]
    min_a: float = 6.0
    max_a: float = 32.0
    measured_a: float | None = None
    priority: int = 0
    arrived_at: float = 0.0
    energy_wh_needed: float | None = None
    departure_at: float | None = None
    watts_per_amp: float | None = None
    energy_wh: float = 0.0


@dataclass(frozen=True)
class AllocatorConfig:
    """Tuning of :func:`allocate`; every field is explained in the module docstring."""

    buffer_a: float = 2.0
    ramp_threshold: float = 0.9
    min_on_s: float = 300.0
    min_off_s: float = 300.0
    hysteresis_a: float = 1.0
    period_s: float | None = None
    voltage_v: float = 230.0
    deadline_aware: bool = True
    deadline_a_per_h: float = 360.0
    progress_s: float = 900.0
    untimed_start_s: float = 7200.0
    crunch_pressure: float | None = 2.0
    max_wait_s: float = 1800.0
    crunch_horizon_s: float = 300.0
    crunch_size_exponent: float = 0.5
    crunch_stay_exponent: float = 0.5
    behind_schedule_s: float | None = 900.0


@dataclass
class LoadState:
    """What the allocator remembers about one load.

    For rule 4 (a load that did not flap resumes early when the capacity rises):
    ``charged_s``, for a paused load, how long it charged before its pause (None: it has not
    charged yet); ``rested_s``, how long the pause before that charge lasted (None: none).
    """

    limit_a: float
    on: bool
    since: float
    charged_s: float | None = None
    rested_s: float | None = None


@dataclass
class AllocatorState:
    """What the allocator remembers between calls: per load id, and each node's limits."""

    loads: dict[str, LoadState] = field(default_factory=dict)
    node_limits_a: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable plain dict (a limit of ``math.inf`` is written as None)."""
        return {
            "version": _STATE_VERSION,
            "loads": {
                load_id: {"limit_a": s.limit_a, "on": s.on, "since": s.since, "charged_s": s.charged_s,
                          "rested_s": s.rested_s}
                for load_id, s in self.loads.items()
            },
            "node_limits_a": {
                node_id: [None if math.isinf(x) else x for x in limit]
                for node_id, limit in self.node_limits_a.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> AllocatorState:
        """Rebuild a state from :meth:`to_dict` output; ``None`` or ``{}`` give an empty state."""
        if not data:
            return cls()
        version = data.get("version", _STATE_VERSION)
        if version != _STATE_VERSION:
            raise ValueError(f"unsupported allocator state version {version!r}")
        return cls(
            loads={
                load_id: LoadState(
                    limit_a=float(s["limit_a"]), on=bool(s["on"]), since=float(s["since"]),
                    charged_s=None if s.get("charged_s") is None else float(s["charged_s"]),
                    rested_s=None if s.get("rested_s") is None else float(s["rested_s"]),
                )
                for load_id, s in data.get("loads", {}).items()
            },
            node_limits_a={
                node_id: tuple(math.inf if x is None else float(x) for x in limit)  # type: ignore[misc]
                for node_id, limit in data.get("node_limits_a", {}).items()
            },
        )


@dataclass(frozen=True)
class Allocation:
    """Result of :func:`allocate`."""

    limits_a: dict[str, float]
    state: AllocatorState
    paused: set[str]
    idle: set[str]
    node_totals_a: dict[str, tuple[float, float, float]]


def allocate(
    nodes: Sequence[Node],
    loads: Sequence[Load],
    *,
    now: float,
    state: AllocatorState | None = None,
    config: AllocatorConfig = AllocatorConfig(),
) -> Allocation:
    """Share the nodes' capacity among the loads; see the module docstring for the rules.

    Args:
        nodes: the site's electrical tree (any order; several roots allowed).
        loads: the active sessions.
        now: current time in seconds, on the same clock as ``arrived_at`` and
            ``departure_at``.
        state: what the previous call returned as ``Allocation.state``; ``None`` at start.
        config: tuning.

    Returns:
        The limit per load (0.0 = paused or idle), the new state to keep, and display totals.

    Raises:
        ValueError: on an inconsistent tree or load (unknown node, cycle, bad phase, ...).
    """
    prev = state.loads if state is not None else {}
    node_index, paths = _node_paths(nodes)
    limits = [lim for n in nodes for lim in n.limit_a]

    count = len(loads)
    keys: list[list[int]] = []
    floors = [0.0] * count
    caps = [0.0] * count
    weights = [0.0] * count
    starts = [0.0] * count
    wanting = [False] * count
    seen: set[str] = set()
    for i, load in enumerate(loads):
        _check_load(load, node_index, seen)
        keys.append([3 * n + p - 1 for n in paths[node_index[load.node]] for p in load.phases])
        cap = _cap(load, prev.get(load.id), config)
        if cap is None:
            continue
        wanting[i] = True
        floors[i] = load.min_a
        caps[i] = cap
    crunch = config.crunch_pressure is not None and _pressure(
        loads, wanting, keys, caps, limits, now, config) > config.crunch_pressure
    _fill_parameters(loads, wanting, now, config, weights, starts)
    if crunch:
        _fill_shares(loads, wanting, now, config, weights, starts)

    before = state.node_limits_a if state is not None else {}
    risen = [
        n.id in before and limit > before[n.id][p] + EPSILON_A
        for n in nodes for p, limit in enumerate(n.limit_a)
    ]
    admitted = _admit(loads, keys, floors, caps, weights, starts, wanting, limits, prev, now, config, crunch,
                      risen)
    alloc = _water_fill(admitted, keys, floors, caps, weights, starts, limits)
    _apply_hysteresis(loads, admitted, keys, alloc, limits, caps, weights, starts, prev, config)

    limits_a: dict[str, float] = {}
    paused: set[str] = set()
    idle: set[str] = set()
    new_state = AllocatorState(node_limits_a={n.id: tuple(n.limit_a) for n in nodes})  # type: ignore[misc]
    totals = [0.0] * len(limits)
    for i, load in enumerate(loads):
        value = alloc.get(i, 0.0)
        limits_a[load.id] = value
        for k in keys[i]:
            totals[k] += value
        if not wanting[i]:
            idle.add(load.id)
            continue
        on = value > 0.0
        if not on:
            paused.add(load.id)
        old = prev.get(load.id)
        since = old.since if old is not None and old.on == on else now
        charged_s = rested_s = None
        if old is not None:
            if on:
                rested_s = old.rested_s if old.on else now - old.since
            else:
                charged_s = now - old.since if old.on else old.charged_s
                rested_s = old.rested_s
        new_state.loads[load.id] = LoadState(limit_a=value, on=on, since=since, charged_s=charged_s,
                                             rested_s=rested_s)

    node_totals = {
        n.id: (totals[3 * j], totals[3 * j + 1], totals[3 * j + 2]) for j, n in enumerate(nodes)
    }
    return Allocation(
        limits_a=limits_a, state=new_state, paused=paused, idle=idle, node_totals_a=node_totals
    )


def _node_paths(nodes: Sequence[Node]) -> tuple[dict[str, int], list[list[int]]]:
    """Map node ids to indices and give each node its path (indices) up to its root."""
    index: dict[str, int] = {}
    for j, node in enumerate(nodes):
        if node.id in index:
            raise ValueError(f"duplicate node id {node.id!r}")
        if len(node.limit_a) != 3 or any(math.isnan(x) or x < 0 for x in node.limit_a):
            raise ValueError(f"node {node.id!r}: limit_a must be three amps >= 0")
        index[node.id] = j
    paths: list[list[int]] = []
    for node in nodes:
        path = [index[node.id]]
        parent = node.parent
        while parent is not None:
            if parent not in index:
                raise ValueError(f"node {node.id!r}: unknown parent {parent!r}")
            j = index[parent]
            if j in path:
                raise ValueError(f"node {node.id!r}: cycle in the tree")
            path.append(j)
            parent = nodes[j].parent
        paths.append(path)
    return index, paths


def _check_load(load: Load, node_index: dict[str, int], seen: set[str]) -> None:
    if load.id in seen:
        raise ValueError(f"duplicate load id {load.id!r}")
    seen.add(load.id)
    if load.node not in node_index:
        raise ValueError(f"load {load.id!r}: unknown node {load.node!r}")
    if not load.phases or len(set(load.phases)) != len(load.phases):
        raise ValueError(f"load {load.id!r}: phases must be distinct and not empty")
    if any(p not in (1, 2, 3) for p in load.phases):
        raise ValueError(f"load {load.id!r}: phases must be among 1, 2, 3")
    if not load.min_a >= 0 or math.isnan(load.max_a):
        raise ValueError(f"load {load.id!r}: min_a must be >= 0 and max_a a number")


def _watts_per_amp(load: Load, config: AllocatorConfig) -> float:
    if load.watts_per_amp is not None:
        return load.watts_per_amp
    return config.voltage_v * len(load.phases)


def _cap(load: Load, previous: LoadState | None, config: AllocatorConfig) -> float | None:
    """Rule 1 and 2: the most the load may get, or None when it cannot or need not charge."""
    if load.max_a <= 0 or load.max_a < load.min_a:
        return None
    if load.energy_wh_needed is not None and load.energy_wh_needed <= 0:
        return None
    cap = load.max_a
    if load.energy_wh_needed is not None and config.period_s:
        need_a = load.energy_wh_needed * 3600.0 / (_watts_per_amp(load, config) * config.period_s)
        cap = min(cap, max(load.min_a, need_a))
    if (
        previous is not None
        and previous.limit_a > 0
        and load.measured_a is not None
        and load.measured_a < config.ramp_threshold * previous.limit_a
    ):
        cap = min(cap, max(load.min_a, load.measured_a + config.buffer_a))
    return cap


def _priority_weight(priority: int) -> float:
    """Rule 6: each priority step doubles the weight (bounded to keep floats exact enough)."""
    return 2.0 ** max(-10, min(10, priority))


def _fill_parameters(
    loads: Sequence[Load],
    wanting: list[bool],
    now: float,
    config: AllocatorConfig,
    weights: list[float],
    starts: list[float],
) -> None:
    """Rule 3 and 6: each wanting load's weight (A per hour of level) and start (hours)."""
    for i, load in enumerate(loads):
        if not wanting[i]:
            continue
        weights[i] = _priority_weight(load.priority) * config.deadline_a_per_h
        starts[i] = config.untimed_start_s / 3600.0  # replaced below when the load is timed
        if _deadline_known(load, config):
            delivered = max(0.0, load.energy_wh)
            requested = delivered + load.energy_wh_needed  # type: ignore[operator]
            left_s = min(_HORIZON_S, max(0.0, load.departure_at - now))  # type: ignore[operator]
            starts[i] = (left_s + config.progress_s * delivered / requested) / 3600.0
            if config.behind_schedule_s is not None:
                full_s = load.energy_wh_needed * 3600.0 / (load.max_a * _watts_per_amp(load, config))  # type: ignore[operator]
                if full_s - left_s > config.behind_schedule_s:
                    starts[i] = 0.0  # cannot finish before it leaves even at max_a: as if due now
    # Only differences of starts matter; the smallest at 0 keeps the arithmetic exact when
    # every load starts together.
    lowest = min((starts[i] for i in range(len(loads)) if wanting[i]), default=0.0)
    for i in range(len(loads)):
        starts[i] -= lowest


def _fill_shares(
    loads: Sequence[Load],
    wanting: list[bool],
    now: float,
    config: AllocatorConfig,
    weights: list[float],
    starts: list[float],
) -> None:
    """Rule 3, in a crunch: weights and starts that minimise the sum of R ** exponent times
    the squared unmet share after ``crunch_horizon_s``, divided by the horizons left before
    the load leaves to the power ``crunch_stay_exponent`` (see the module docstring)."""
    power = 2.0 - config.crunch_size_exponent
    raw: dict[int, tuple[float, float]] = {}
    for i, load in enumerate(loads):
        if wanting[i] and load.energy_wh_needed is not None and load.energy_wh_needed > 0:
            per_amp = _watts_per_amp(load, config) * config.crunch_horizon_s / 3600.0
            size = (max(0.0, load.energy_wh) + load.energy_wh_needed) ** power
            if config.crunch_stay_exponent:
                # horizons left before it leaves: a car that stays longer can catch up later
                if load.departure_at is not None and math.isfinite(load.departure_at):
                    left_s = min(_HORIZON_S, load.departure_at - now)
                else:
                    left_s = config.untimed_start_s
                horizons = max(config.crunch_horizon_s, left_s) / config.crunch_horizon_s
                size *= horizons**config.crunch_stay_exponent
            raw[i] = (size / per_amp**2, -load.energy_wh_needed * per_amp / size)
    if not raw:
        return
    scale = max(w for w, _ in raw.values())  # weights at most 1 keep the levels small
    median = (
        sorted(w for w, _ in raw.values())[len(raw) // 2],
        sorted(st for _, st in raw.values())[len(raw) // 2],
    )
    for i, load in enumerate(loads):
        if wanting[i]:
            weight, start = raw.get(i, median)
            weights[i] = _priority_weight(load.priority) * weight / scale
            starts[i] = start * scale
    lowest = min(starts[i] for i in range(len(loads)) if wanting[i])
    for i in range(len(loads)):
        if wanting[i]:
            starts[i] -= lowest


def _pressure(loads: Sequence[Load], wanting: list[bool], keys: list[list[int]], caps: list[float],
              limits: list[float], now: float, config: AllocatorConfig) -> float:
    """Rule 3: the largest ratio, over node phases, of what the timed loads need on average to
    get their energy before they leave (each at most its cap) to the limit."""
    need = [0.0] * len(limits)
    for i, load in enumerate(loads):
        if wanting[i] and _deadline_known(load, config):
            left_h = max(config.period_s or 300.0, load.departure_at - now) / 3600.0  # type: ignore[operator]
            amps = min(caps[i], load.energy_wh_needed / left_h / _watts_per_amp(load, config))  # type: ignore[operator]
            for k in keys[i]:
                need[k] += amps
    return max((need[k] / limits[k] for k in range(len(limits)) if need[k] > 0 and limits[k] > 0), default=0.0)


def _is_on(state: LoadState | None) -> bool:
    return state is not None and state.on


def _deadline_known(load: Load, config: AllocatorConfig) -> bool:
    return (
        config.deadline_aware
        and load.energy_wh_needed is not None
        and load.energy_wh_needed > 0
        and load.departure_at is not None
        and math.isfinite(load.departure_at)
    )


def _admit(
    loads: Sequence[Load],
    keys: list[list[int]],
    floors: list[float],
    caps: list[float],
    weights: list[float],
    starts: list[float],
    wanting: list[bool],
    limits: list[float],
    prev: dict[str, LoadState],
    now: float,
    config: AllocatorConfig,
    crunch: bool,
    risen: list[bool],
) -> list[int]:
    """Rules 4 and 5: the indices of the admitted loads (each reserving its min_a)."""
    inf = math.inf
    candidates: list[int] = []
    held_on: set[int] = set()
    resumed: set[int] = set()  # held off, but the capacity on its path rose (rule 4)
    in_state: dict[int, float] = {}
    for i, load in enumerate(loads):
        if not wanting[i]:
            continue
        old = prev.get(load.id)
        in_state_s = now - old.since if old is not None else 0.0
        if old is not None and old.on and in_state_s < config.min_on_s:
            held_on.add(i)
        elif old is not None and not old.on and in_state_s < config.min_off_s:
            flapping = (old.charged_s is not None and old.charged_s < config.min_on_s) or (
                old.rested_s is not None and old.rested_s < config.min_off_s)
            if flapping or not any(risen[k] for k in keys[i]):
                continue  # held off
            resumed.add(i)
        candidates.append(i)
        in_state[i] = in_state_s

    # When some load has a deadline: what each candidate would get without minimum currents.
    # A load that would get less than its min_a is "low"; on every node phase, the low loads
    # admitted at min_a stay within what the more urgent loads would leave them, except that a
    # load without a deadline is admitted whenever its min_a fits (as without deadlines), so
    # the rotation keeps every car charging in turn.
    # What a low load must leave is only what the more urgent loads (an earlier start) would
    # get: it never waits for a car that can wait longer, and among equally urgent cars the
    # rotation takes turns.
    desired: dict[int, float] = {}
    low: set[int] = set()
    budgets: dict[int, dict[int, float]] = {}  # low load -> node phase -> room for low loads
    if any(_deadline_known(loads[i], config) for i in candidates):
        zeros = [0.0] * len(loads)
        desired = _water_fill(candidates, keys, zeros, caps, weights, starts, limits)
        low = {i for i in candidates if desired[i] < floors[i]}
        if low:
            by_key: dict[int, list[tuple[float, float]]] = {}
            for j in candidates:
                if j not in low:
                    for k in keys[j]:
                        by_key.setdefault(k, []).append((starts[j], desired[j]))
            prefix: dict[int, tuple[list[float], list[float]]] = {}
            for k, items in by_key.items():
                items.sort()
                sums = list(itertools.accumulate(d for _, d in items))
                prefix[k] = ([st for st, _ in items], sums)
            for i in low:
                room = {}
                for k in keys[i]:
                    taken = 0.0
                    if k in prefix:
                        at = bisect.bisect_left(prefix[k][0], starts[i] - 1e-9)
                        taken = prefix[k][1][at - 1] if at else 0.0
                    room[k] = limits[k] - taken
                budgets[i] = room

    order: list[tuple[Any, ...]] = []
    for i in candidates:
        load = loads[i]
        if i in held_on:
            rank: tuple[int, float, float] = (0, 0.0, 0.0)
        elif i in resumed:
            rank = (2, 0.0, -in_state[i])  # only the room no other car claims
        else:
            # The rotation queue: waiting longest first, charging longest last.
            old = prev.get(load.id)
            on = old is not None and old.on
            rank = (1, 0.0, in_state[i] if on else -in_state[i])
        departure = load.departure_at if load.departure_at is not None else inf
        order.append((-load.priority, rank, departure, load.arrived_at, load.id, i))
    order.sort()

    used = [0.0] * len(limits)
    low_used = [0.0] * len(limits)
    admitted: list[int] = []
    for *_, i in order:
        floor = floors[i]
        if not all(used[k] + floor <= limits[k] + EPSILON_A for k in keys[i]):
            if i not in held_on and in_state[i] >= config.max_wait_s and not _is_on(prev.get(loads[i].id)):
                # waited too long and does not fit (cars held on fill its phases): keep the cars
                # after it off its phases, so that it fits as soon as their hold ends
                for k in keys[i]:
                    used[k] += floor
            continue
        if i in low:
            if (
                i not in held_on
                and _deadline_known(loads[i], config)
                and not (crunch and in_state[i] >= config.max_wait_s and not _is_on(prev.get(loads[i].id)))
                and any(low_used[k] + floor > budgets[i][k] + EPSILON_A for k in keys[i])
            ):
                continue
            for k in keys[i]:
                low_used[k] += floor
        for k in keys[i]:
            used[k] += floor
        admitted.append(i)
    return admitted


_START, _CAP, _NODE = 0, 1, 2


def _water_fill(
    admitted: list[int],
    keys: list[list[int]],
    floors: list[float],
    caps: list[float],
    weights: list[float],
    starts: list[float],
    limits: list[float],
) -> dict[int, float]:
    """Rule 6: weighted progressive filling above the floors, event by event.

    Each admitted load i is at its floor until the level x reaches
    ``starts[i] + floor / weight``, then rises as ``weight * (x - starts[i])`` until it
    reaches its cap or one of its node phases saturates. Per node phase k we keep
    ``base[k]`` (the sum of the loads below it that are not rising, minus
    ``weight * start`` of the rising ones) and ``rate[k]`` (the sum of the weights of the
    rising ones), so k saturates at ``x = (limit - base) / rate``. Events are kept in a
    heap; node events carry a version so that stale ones are skipped.
    """
    alloc: dict[int, float] = {}
    base = [0.0] * len(limits)
    rate = [0.0] * len(limits)
    rising_count = [0] * len(limits)
    version = [0] * len(limits)
    saturated = [False] * len(limits)
    members: dict[int, list[int]] = {}
    status: dict[int, int] = {}  # 0 waiting at floor, 1 rising, 2 frozen
    heap: list[tuple[float, int, int, int]] = []

    for i in admitted:
        alloc[i] = floors[i]
        for k in keys[i]:
            base[k] += floors[i]
            members.setdefault(k, []).append(i)
        if caps[i] - floors[i] <= EPSILON_A:
            status[i] = 2
            alloc[i] = caps[i]
        else:
            status[i] = 0
            heap.append((starts[i] + floors[i] / weights[i], _START, i, 0))
    heapq.heapify(heap)

    def push_node_event(k: int, level: float) -> None:
        version[k] += 1
        if rising_count[k] > 0 and not saturated[k]:
            at = (limits[k] - base[k]) / rate[k] if rate[k] > 0 else math.inf
            heapq.heappush(heap, (max(at, level), _NODE, k, version[k]))

    def recompute(k: int) -> None:
        rising = [j for j in members[k] if status[j] == 1]
        rate[k] = math.fsum(weights[j] for j in rising)
        base[k] = math.fsum(
            [alloc[j] for j in members[k] if status[j] != 1] + [-weights[j] * starts[j] for j in rising]
        )

    def freeze(i: int, value: float, touched: set[int]) -> None:
        was_rising = status[i] == 1
        status[i] = 2
        alloc[i] = value
        if not was_rising:
            return
        for k in keys[i]:
            base[k] += value + weights[i] * starts[i]
            before = rate[k]
            rate[k] -= weights[i]
            rising_count[k] -= 1
            if rising_count[k] == 0 or rate[k] <= before * 1e-6:
                # Cancellation (weights far apart): recompute the sums exactly.
                recompute(k)
            touched.add(k)

    while heap:
        level, kind, idx, ver = heapq.heappop(heap)
        touched: set[int] = set()
        if kind == _START:
            if status[idx] != 0:
                continue
            if any(saturated[k] for k in keys[idx]):
                status[idx] = 2
                continue
            status[idx] = 1
            for k in keys[idx]:
                base[k] -= floors[idx] + weights[idx] * starts[idx]
                rate[k] += weights[idx]
                rising_count[k] += 1
                touched.add(k)
            heapq.heappush(heap, (starts[idx] + caps[idx] / weights[idx], _CAP, idx, 0))
        elif kind == _CAP:
            if status[idx] != 1:
                continue
            freeze(idx, caps[idx], touched)
        else:
            if ver != version[idx] or saturated[idx]:
                continue
            saturated[idx] = True
            for i in members[idx]:
                if status[i] == 1:
                    value = weights[i] * (level - starts[i])
                    freeze(i, min(caps[i], max(floors[i], value)), touched)
                elif status[i] == 0:
                    freeze(i, floors[i], touched)
        for k in touched:
            push_node_event(k, level)

    _trim_float_excess(alloc, keys, floors, limits)
    _top_up(alloc, keys, caps, weights, limits)
    return alloc


def _top_up(
    alloc: dict[int, float], keys: list[list[int]], caps: list[float], weights: list[float], limits: list[float]
) -> None:
    """Give floating-point slivers of unused capacity (weights far apart) to loads below cap."""
    totals = [0.0] * len(limits)
    for i, value in alloc.items():
        for k in keys[i]:
            totals[k] += value
    for i in sorted(alloc, key=lambda j: -weights[j]):
        room = min((limits[k] - totals[k] for k in keys[i]), default=math.inf)
        extra = min(caps[i] - alloc[i], room)
        if 0.0 < extra <= 1e-3:
            alloc[i] += extra
            for k in keys[i]:
                totals[k] += extra


def _trim_float_excess(
    alloc: dict[int, float], keys: list[list[int]], floors: list[float], limits: list[float]
) -> None:
    """Remove the last bits of floating-point excess so no node limit is exceeded."""
    totals = [0.0] * len(limits)
    for i, value in alloc.items():
        for k in keys[i]:
            totals[k] += value
    over = {k for k, t in enumerate(totals) if t > limits[k]}
    if not over:
        return
    for i, value in alloc.items():
        excess = max((totals[k] - limits[k] for k in keys[i] if k in over), default=0.0)
        if excess > 0 and value > floors[i]:
            alloc[i] = max(floors[i], value - 2 * excess)


def _apply_hysteresis(
    loads: Sequence[Load],
    admitted: list[int],
    keys: list[list[int]],
    alloc: dict[int, float],
    limits: list[float],
    caps: list[float],
    weights: list[float],
    starts: list[float],
    prev: dict[str, LoadState],
    config: AllocatorConfig,
) -> None:
    """Rule 7: keep previous limits that differ by less than hysteresis_a, if they fit.

    What a load kept lower than its new share leaves unused is shared, by the same
    progressive filling, among the loads whose limit changes anyway.
    """
    if config.hysteresis_a <= 0:
        return
    keep_lower: list[tuple[int, float]] = []
    keep_higher: list[tuple[int, float]] = []
    for i in admitted:
        old = prev.get(loads[i].id)
        if old is None or old.limit_a <= 0:
            continue
        new = alloc[i]
        if new == old.limit_a or abs(new - old.limit_a) >= config.hysteresis_a - EPSILON_A:
            continue
        if not loads[i].min_a <= old.limit_a <= loads[i].max_a:
            continue
        (keep_lower if old.limit_a < new else keep_higher).append((i, old.limit_a))
    if not keep_lower and not keep_higher:
        return
    held: set[int] = set()
    for i, value in keep_lower:
        alloc[i] = value
        held.add(i)
    totals = [0.0] * len(limits)
    for i, value in alloc.items():
        for k in keys[i]:
            totals[k] += value
    for i, value in keep_higher:
        extra = value - alloc[i]
        if all(totals[k] + extra <= limits[k] for k in keys[i]):
            for k in keys[i]:
                totals[k] += extra
            alloc[i] = value
            held.add(i)
    if not keep_lower:
        return
    others = [i for i in admitted if i not in held]
    residual = list(limits)
    for i in held:
        for k in keys[i]:
            residual[k] -= alloc[i]
    current = [alloc.get(i, 0.0) for i in range(len(caps))]
    alloc.update(_water_fill(others, keys, current, caps, weights, starts, residual))
