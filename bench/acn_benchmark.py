"""Benchmark the load-balancing allocator against acnportal's published algorithms.

Runs ACN-Sim on an acnportal network (Caltech by default; JPL, Office001 or a generated
multi-transformer site with ``--site``) with real ACN-Data Caltech sessions and compares our
allocator (plugins/loadbalancing/allocator.py, wrapped as an acnportal algorithm) with
acnportal's Uncontrolled, FCFS, EDF, LLF and RoundRobin. See bench/README.md.

    python bench/acn_benchmark.py                      # 30 and 50 kW, 2019-09-02 .. 09-09
    python bench/acn_benchmark.py --cap 50 --start 2019-10-01 --end 2019-10-15
    python bench/acn_benchmark.py --site jpl --synthetic-evs 0

Needs ``pip install acnportal`` (tested with acnportal 0.3.3); runs offline.
"""

from __future__ import annotations

import os

# One thread per worker: the benchmark runs its simulations in parallel processes.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import csv
import gzip
import importlib.metadata
import itertools
import math
import random
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from acnportal import acnsim, algorithms
from acnportal.acnsim.events import EventQueue, PluginEvent
from acnportal.acnsim.models.battery import Battery
from acnportal.acnsim.models.ev import EV
from acnportal.acnsim.network.current import Current
from acnportal.acnsim.network.sites import caltech_acn, jpl_acn, office001_acn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from plugins.loadbalancing.allocator import (
    AllocatorConfig,
    AllocatorState,
    Load,
    Node,
    allocate,
)

DEFAULT_DATA = REPO.parent / "shared" / "data" / "acn" / "caltech_2019-09-01_2019-12-31.csv.gz"
VOLTAGE = 208.0  # caltech_acn's EVSE voltage (line to line)
EVSE_MAX_A = 32.0  # BASIC EVSE
MIN_A = 6.0  # IEC 61851 minimum; acnportal's baselines may use anything from 0 A
DEMAND_MET = 0.99
SITE_TZ = datetime.fromisoformat("2019-09-02T00:00:00-07:00").tzinfo  # ACN-Data is in site time (PDT)


# --------------------------------------------------------------------------- the adapter


@dataclass(frozen=True)
class MappedNode:
    """A node of the tree built from acnportal's constraints: the constraints it carries, as
    functions of its three group totals (see bench/README.md)."""

    id: str
    parent: str | None
    coeffs: np.ndarray  # constraints x 3: complex coefficient per group total
    limits: np.ndarray  # their limits (A)
    counts: np.ndarray  # EVSEs of each group below the node


@dataclass(frozen=True)
class SiteMap:
    """How an acnportal constraint set is mapped onto our node tree (see bench/README.md)."""

    group_of: dict[str, int]  # station id -> virtual phase 1..3 (one per phase angle)
    node_of: dict[str, str]  # station id -> deepest node its load hangs under
    nodes: tuple[MappedNode, ...]  # parents before children; nodes[0] is the root
    angles: tuple[float, ...]  # phase angle of each group

    def stations_under(self) -> dict[str, set[str]]:
        """Node id -> the stations below it."""
        parent = {n.id: n.parent for n in self.nodes}
        out: dict[str, set[str]] = {n.id: set() for n in self.nodes}
        for sid, node in self.node_of.items():
            at: str | None = node
            while at is not None:
                out[at].add(sid)
                at = parent[at]
        return out


def _node_name(names: list[str], taken: set[str], fallback: str) -> str:
    """The words the constraints' names share ("First Floor SP2" for "First Floor SP2 I_a", ...)."""
    words = [n.split() for n in names]
    common: list[str] = []
    for column in zip(*words):
        if len(set(column)) != 1:
            break
        common.append(column[0])
    if len(names) == 1:
        common = words[0]
    name = " ".join(common) or fallback
    while name in taken:
        name += "'"
    taken.add(name)
    return name


def map_infrastructure(infra) -> SiteMap:
    """Derive the tree from an acnportal InfrastructureInfo (constraint matrix and angles).

    Every EVSE on the same phase angle draws in the same direction, so the EVSEs of one angle
    form one "group" (a virtual phase). Each constraint limits the EVSEs it names (its
    support); its region is that support plus, from the groups it does not weigh, the EVSEs
    of the constraints no larger than it that it overlaps (a panel's line current I_a names
    the panel's A-B and C-A EVSEs; its lines I_b and I_c bring in the B-C ones). Constraints
    whose regions are equal, or overlap without one containing the other, are one node (a
    transformer's secondary and primary lines); the nodes then nest (a pod in a panel
    in a transformer), each below the smallest node that contains it, under a root that has
    every EVSE (a root without constraints when the site has several transformers). Within
    its node, a constraint must weigh all EVSEs of a group alike: then it is a function of the
    node's three group totals, and :func:`node_box` gives the node per-group limits (a box)
    whose every corner passes it. Anything else cannot be mapped and raises ValueError.
    """
    angles = [round(float(a), 6) for a in infra.phases]
    distinct = sorted(set(angles), key=lambda a: (30.0 - a) % 360.0)  # Caltech: AB, BC, CA
    if len(distinct) > 3:
        raise ValueError("more than three phase angles: cannot map onto L1..L3")
    group_index = np.array([distinct.index(a) for a in angles])
    ids = list(infra.station_ids)
    everyone = frozenset(range(len(ids)))
    matrix = np.asarray(infra.constraint_matrix, dtype=float)
    supports = [frozenset(np.flatnonzero(row).tolist()) for row in matrix]
    blocks = []
    for k, support in enumerate(supports):
        if not support:
            continue
        # A constraint's node also takes, from the groups it does not weigh, the EVSEs of the
        # no larger constraints it overlaps: a panel's line A (A-B and C-A EVSEs) is the panel's,
        # B-C EVSEs included, as its lines B and C show.
        touched = {int(group_index[i]) for i in support}
        region = set(support)
        for other in supports:
            if other & support and len(other) <= len(support) and not other <= support:
                region.update(i for i in other if int(group_index[i]) not in touched)
        blocks.append([frozenset(region), [k]])
    merged = True
    while merged:  # overlapping supports become one node, until they nest or are apart
        merged = False
        for a, b in itertools.combinations(range(len(blocks)), 2):
            sa, sb = blocks[a][0], blocks[b][0]
            if sa & sb and (sa == sb or not (sa <= sb or sb <= sa)):
                blocks[a] = [sa | sb, blocks[a][1] + blocks[b][1]]
                del blocks[b]
                merged = True
                break
    blocks.sort(key=lambda blk: -len(blk[0]))
    if not blocks or blocks[0][0] != everyone:
        blocks.insert(0, [everyone, []])
    rotations = np.array([np.exp(1j * np.deg2rad(a)) for a in distinct] + [0j] * (3 - len(distinct)))
    taken: set[str] = set()
    names: list[str] = []
    nodes: list[MappedNode] = []
    for j, (support, members) in enumerate(blocks):
        fallback = "site" if j == 0 else f"node {j}"
        name = _node_name([str(infra.constraint_ids[k]) for k in members], taken, fallback)
        names.append(name)
        parent = None
        if j:
            parent = names[min((p for p in range(j) if support < blocks[p][0]), key=lambda p: len(blocks[p][0]))]
        inside = np.array(sorted(support))
        coeffs = []
        for k in members:
            per_group = np.zeros(3, dtype=complex)
            for g in range(len(distinct)):
                values = set(matrix[k, inside[group_index[inside] == g]].tolist())
                if len(values) > 1:
                    raise ValueError(f"constraint {infra.constraint_ids[k]} weighs the EVSEs of one phase "
                                     f"unevenly within node {name}")
                per_group[g] = (values.pop() if values else 0.0) * rotations[g]
            coeffs.append(per_group)
        counts = np.bincount(group_index[inside], minlength=3).astype(float)
        nodes.append(MappedNode(name, parent, np.array(coeffs).reshape(-1, 3),
                                np.asarray(infra.constraint_limits, dtype=float)[members], counts))
    node_of = {}
    for j, (support, _) in enumerate(blocks):  # blocks are sorted largest first: the last wins
        for i in support:
            node_of[ids[i]] = names[j]
    group_of = {sid: int(group_index[i]) + 1 for i, sid in enumerate(ids)}
    return SiteMap(group_of, node_of, tuple(nodes), tuple(distinct))


_CORNERS = np.array(list(itertools.product((0.0, 1.0), repeat=3)))


def node_box(node: MappedNode, weights: np.ndarray, fixed: np.ndarray | None = None) -> tuple[float, float, float]:
    """Largest per-group limits of ``node`` proportional to ``weights`` whose whole box is feasible.

    A box [0, x1] x [0, x2] x [0, x3] of group totals is feasible when its eight corners are
    (each constraint |sum_g z_g * total_g| <= limit is convex). Groups given in ``fixed``
    (not NaN) keep that limit; the others are ``t * weight``, and along that ray each corner's
    current is |a + t b|, so the largest t is the root of a quadratic. A group without EVSEs
    below the node, or that none of its constraints weighs, has no limit (``inf``).
    """
    weights = np.asarray(weights, dtype=float)
    bound = (node.counts > 0) & (np.abs(node.coeffs) > 0).any(axis=0) if len(node.limits) else np.zeros(3, bool)
    fixed = np.full(3, np.nan) if fixed is None else fixed
    free = np.isnan(fixed) & bound
    base = np.where(np.isnan(fixed) | ~bound, 0.0, fixed)
    w = np.where(free, np.maximum(weights, 0.0), 0.0)
    if free.any() and not w.any():
        w = np.where(free, 1.0, 0.0)  # nothing wanted there now: share the node evenly
    scale = 0.0
    if w.any():
        a = (_CORNERS * base) @ node.coeffs.T  # corners x constraints
        b = (_CORNERS * w) @ node.coeffs.T
        # |a + t b|^2 = L^2: |b|^2 t^2 + 2 Re(a conj b) t + |a|^2 - L^2 = 0, largest root.
        qa = np.abs(b) ** 2
        qb = 2 * np.real(a * np.conj(b))
        qc = np.abs(a) ** 2 - node.limits**2
        with np.errstate(divide="ignore", invalid="ignore"):
            root = (-qb + np.sqrt(np.maximum(qb**2 - 4 * qa * qc, 0.0))) / (2 * qa)
        scale = max(0.0, float(np.min(np.where(qa > 0, root, np.inf))) * (1 - 1e-9))
    box = np.where(free, scale * w, base)
    return tuple(float(x) if bound[g] else math.inf for g, x in enumerate(box))  # type: ignore[return-value]


def fair_direction(node: MappedNode, usable: np.ndarray, steps: int = 14) -> np.ndarray:
    """The split of ``node`` among its groups that is max-min fair in what they can use.

    Each group gets ``min(usable, level)`` with the highest level whose box is feasible: a
    group with few cars gets what they can use before a crowded one is scaled down with it
    (a split in proportion to demand scales a lone car on its line pair down by the same
    factor as eight cars on another), and a more even box holds more current in all.
    When every group fits at what it can use, the direction stays ``usable``.
    """
    usable = np.asarray(usable, dtype=float)
    if not len(node.limits) or not usable.any():
        return usable
    box = np.array(node_box(node, usable))
    if np.all((box >= usable) | ~np.isfinite(box)):
        return usable
    lo, hi = 0.0, float(usable.max())
    for _ in range(steps):
        mid = (lo + hi) / 2
        w = np.minimum(usable, mid)
        fits = np.array(node_box(node, w))
        if np.all((fits >= w * (1 - 1e-9)) | ~np.isfinite(fits)):
            lo = mid
        else:
            hi = mid
    return np.minimum(usable, lo) if lo > 0 else usable


class AllocatorAlgorithm(algorithms.BaseAlgorithm):
    """Our allocator as an acnportal algorithm, called every period.

    ``tree="static"``: each node's per-group limits are fixed, in proportion to the number of
    EVSEs of each group below it. ``tree="adaptive"``: recomputed each period, split max-min
    fairly by what the active sessions of each group below the node can use in this period
    (what a capacity plugin would feed the allocator); the allocator itself is the same.
    """

    def __init__(self, tree: str = "adaptive", config: AllocatorConfig | None = None, min_a: float = MIN_A) -> None:
        super().__init__()
        self.max_recompute = 1
        self.tree = tree
        self.min_a = min_a
        self.config = config
        self.state: AllocatorState | None = None
        self.site: SiteMap | None = None
        self.delivered_kwh: dict[str, float] = {}
        self.box_rounds = 3

    def register_interface(self, interface) -> None:
        super().register_interface(interface)
        infra = interface.infrastructure_info()
        self.site = map_infrastructure(infra)
        self.max_pilot = {sid: float(infra.max_pilot[i]) for i, sid in enumerate(infra.station_ids)}
        self.voltage = {sid: float(infra.voltages[i]) for i, sid in enumerate(infra.station_ids)}
        self.static_boxes = {n.id: node_box(n, n.counts) for n in self.site.nodes}
        parent = {n.id: n.parent for n in self.site.nodes}
        self.path = {}
        for sid, node in self.site.node_of.items():
            path, at = [], node
            while at is not None:
                path.append(at)
                at = parent[at]
            self.path[sid] = path

    def departure_s(self, session, period_s: float) -> float | None:
        """The departure our allocator is given (bench/acn_departures.py gives learned ones)."""
        return session.estimated_departure * period_s

    def tree_nodes(self, boxes: dict[str, tuple[float, float, float]]) -> list[Node]:
        return [Node(n.id, n.parent, boxes[n.id]) for n in self.site.nodes]

    def schedule(self, active_sessions):
        site = self.site
        period_s = self.interface.period * 60.0
        config = self.config or AllocatorConfig(period_s=period_s)
        now = self.interface.current_time * period_s
        loads = []
        usable = {n.id: np.zeros(3) for n in site.nodes}
        delivered: dict[str, float] = {}
        for s in active_sessions:
            max_a = float(min(EVSE_MAX_A, self.max_pilot[s.station_id], s.max_rates[0]))
            needed_wh = max(0.0, float(s.remaining_demand) * 1000.0)
            group = site.group_of[s.station_id]
            volts = self.voltage[s.station_id]
            # What a meter would report: the average current over the last period.
            delivered[s.session_id] = float(s.energy_delivered)
            before = self.delivered_kwh.get(s.session_id)
            measured_a = None
            if before is not None:
                measured_a = (s.energy_delivered - before) * 1000.0 * 3600.0 / (volts * period_s)
            loads.append(
                Load(
                    id=s.session_id,
                    node=site.node_of[s.station_id],
                    phases=(group,),
                    min_a=self.min_a,
                    max_a=max_a,
                    measured_a=measured_a,
                    arrived_at=s.arrival * period_s,
                    energy_wh_needed=needed_wh,
                    energy_wh=float(s.energy_delivered) * 1000.0,
                    departure_at=self.departure_s(s, period_s),
                    watts_per_amp=volts,
                )
            )
            wanted = min(max_a, max(self.min_a, needed_wh * 3600.0 / (volts * period_s)))
            for node in self.path[s.station_id]:
                usable[node][group - 1] += wanted
        if self.tree == "static":
            result = allocate(self.tree_nodes(self.static_boxes), loads, now=now, state=self.state, config=config)
        else:
            result = self.adaptive_allocate(loads, usable, now, config)
        self.state = result.state
        self.delivered_kwh = delivered
        by_session = {s.session_id: s.station_id for s in active_sessions}
        return {by_session[k]: [v] for k, v in result.limits_a.items()}

    def adaptive_allocate(self, loads, usable, now, config):
        """Allocate with every node's limits fitted to where the power is wanted.

        Start from boxes split max-min fairly by what the sessions of each group below a node
        can use (``fair_direction``); then, a few times, freeze in each node the groups that did not use their share at
        what they used and give the rest to the groups that did (the largest feasible box with
        those groups fixed).
        """
        fixed = {n.id: np.full(3, np.nan) for n in self.site.nodes}
        usable = {n.id: fair_direction(n, usable[n.id]) for n in self.site.nodes}
        boxes = {n.id: node_box(n, usable[n.id]) for n in self.site.nodes}
        for _ in range(self.box_rounds):
            result = allocate(self.tree_nodes(boxes), loads, now=now, state=self.state, config=config)
            changed = False
            for n in self.site.nodes:
                box = np.array(boxes[n.id])
                used = np.array(result.node_totals_a[n.id])
                slack = (box - used > 0.5) & np.isnan(fixed[n.id]) & np.isfinite(box)
                if not slack.any() or slack.sum() == np.isfinite(box).sum():
                    continue
                fixed[n.id][slack] = used[slack]
                boxes[n.id] = node_box(n, usable[n.id], fixed=fixed[n.id])
                changed = True
            if not changed:
                break
        return result


# --------------------------------------------------------------------------- sites

SITES = ("caltech", "jpl", "office001", "generated")
DEFAULT_CAPS = {"caltech": [30.0, 50.0], "jpl": [40.0, 80.0], "office001": [10.0, 20.0], "generated": [30.0, 50.0]}
JPL_SPLIT = 45.0 / (45.0 + 150.0)  # jpl_acn's default transformers: 45 kW (1st floor) and 150 kW (3rd/4th)


def generated_network(cap_kw: float, transformers: int = 2, panels: int = 2, per_angle: int = 4,
                      panel_a: float = 80.0):
    """Several delta-wye transformers (``cap_kw`` shared evenly), each feeding panels with a
    limit per line (like JPL's), each panel with ``per_angle`` line-to-line EVSEs per angle."""
    network = acnsim.ChargingNetwork()
    layout = {(t, p): {angle: [f"T{t + 1}P{p + 1}-{name}{i}" for i in range(per_angle)]
                       for angle, name in ((30, "AB"), (-90, "BC"), (150, "CA"))}
              for t in range(transformers) for p in range(panels)}
    for ids in layout.values():  # acnportal takes every EVSE before any constraint
        for angle, group in ids.items():
            for sid in group:
                network.register_evse(acnsim.models.evse.get_evse_by_type(sid, "BASIC"), VOLTAGE, angle)
    for t in range(transformers):
        lines = None
        for p in range(panels):
            ids = layout[(t, p)]
            ab, bc, ca = Current(ids[30]), Current(ids[-90]), Current(ids[150])
            panel = {"a": ab - ca, "b": bc - ab, "c": ca - bc}
            for line, current in panel.items():
                network.add_constraint(current, panel_a, name=f"T{t + 1} Panel {p + 1} I_{line}")
            lines = panel if lines is None else {k: lines[k] + panel[k] for k in panel}
        kw = cap_kw / transformers
        for line, other in (("a", "c"), ("b", "a"), ("c", "b")):
            network.add_constraint(lines[line], kw * 1000 / 3 / 120, name=f"Transformer {t + 1} Secondary {line.upper()}")
            network.add_constraint(0.25 * (lines[line] - lines[other]), kw * 1000 / 3 / 277,
                                   name=f"Transformer {t + 1} Primary {line.upper()}")
    return network


def site_network(site: str, cap_kw: float):
    """The site's ChargingNetwork with BASIC EVSEs (continuous 0-32 A pilots) at ``cap_kw``."""
    if site == "caltech":
        return caltech_acn(basic_evse=True, transformer_cap=cap_kw)
    if site == "jpl":
        return jpl_acn(basic_evse=True, first_transformer_cap=cap_kw * JPL_SPLIT,
                       third_fourth_transformer_cap=cap_kw * (1 - JPL_SPLIT))
    if site == "office001":
        return office001_acn(basic_evse=True, transformer_cap=cap_kw)
    if site == "generated":
        return generated_network(cap_kw)
    raise ValueError(site)


def network_info(network):
    """The InfrastructureInfo an algorithm is given for ``network`` (as acnportal's Interface builds it)."""
    from acnportal.algorithms.utils import InfrastructureInfo  # noqa: PLC0415

    return InfrastructureInfo(network.constraint_matrix, network.magnitudes, network._phase_angles,
                              network._voltages, network.constraint_index, network.station_ids,
                              network.max_pilot_signals, network.min_pilot_signals, network.allowable_rates,
                              network.is_continuous)


def site_description(site: str) -> str:
    return {
        "caltech": "caltech_acn(basic_evse=True, transformer_cap=cap)",
        "jpl": f"jpl_acn(basic_evse=True), cap split {JPL_SPLIT:.3f} : {1 - JPL_SPLIT:.3f} between its two "
               "transformers (as 45 : 150 kW)",
        "office001": "office001_acn(basic_evse=True, transformer_cap=cap)",
        "generated": "generated_network(cap): 2 transformers (cap / 2 each) x 2 panels (80 A per line) x 12 EVSEs",
    }[site]


def assign_to_site(sessions: list[Session], station_ids: list[str], seed: int = 1) -> tuple[list[Session], int]:
    """Caltech's sessions on another site's EVSEs: in order of arrival, each on a free EVSE drawn
    at random (seeded); a session that finds every EVSE busy is left out (returned count)."""
    rng = random.Random(seed)
    free_at = {sid: -1 for sid in station_ids}
    out: list[Session] = []
    left_out = 0
    for s in sorted(sessions, key=lambda s: (s.arrival, s.session_id)):
        free = [sid for sid in station_ids if free_at[sid] <= s.arrival]
        if not free:
            left_out += 1
            continue
        sid = rng.choice(free)
        free_at[sid] = s.departure
        out.append(Session(s.session_id, sid, s.arrival, s.departure, s.estimated_departure, s.energy_kwh))
    return out, left_out


def site_sessions(site: str, path: Path, start: datetime, end: datetime, period_min: float):
    """ACN-Data Caltech sessions arriving in [start, end), on the site's EVSEs; and what was left out."""
    sessions, dropped = load_sessions(path, start, end, period_min, set(caltech_acn(basic_evse=True).station_ids))
    if site != "caltech":
        sessions, busy = assign_to_site(sessions, list(site_network(site, 1.0).station_ids))
        dropped["every EVSE busy"] = busy
    return sessions, dropped


# --------------------------------------------------------------------------- data and runs


@dataclass(frozen=True)
class Session:
    session_id: str
    station_id: str
    arrival: int  # periods from the start
    departure: int
    estimated_departure: int
    energy_kwh: float  # ACN-Sim convention: demand = energy really delivered


def load_sessions(path: Path, start: datetime, end: datetime, period_min: float, stations: set[str]):
    """Read ACN-Data sessions arriving in [start, end) as ACN-Sim does (periods, floor)."""
    offset = int(start.timestamp() / (60 * period_min))
    sessions: list[Session] = []
    dropped = {"unknown station": 0, "shorter than a period": 0, "overlap": 0, "no energy": 0}
    with gzip.open(path, "rt", newline="") as f:
        for row in csv.DictReader(f):
            arrival_dt = datetime.fromisoformat(row["arrival"])
            if not start <= arrival_dt < end:
                continue
            if row["station_id"] not in stations:
                dropped["unknown station"] += 1
                continue

            def period_of(text: str) -> int:
                return int(datetime.fromisoformat(text).timestamp() / (60 * period_min)) - offset

            arrival = period_of(row["arrival"])
            departure = period_of(row["departure"])
            energy = float(row["delivered_energy (kWh)"])
            if departure <= arrival:
                dropped["shorter than a period"] += 1
                continue
            if energy <= 0:
                dropped["no energy"] += 1
                continue
            estimated = period_of(row["estimated_departure"]) if row["estimated_departure"] else departure
            sessions.append(
                Session(row["session_id"], row["station_id"], arrival, departure, max(estimated, arrival + 1), energy)
            )
    sessions.sort(key=lambda s: (s.station_id, s.arrival))
    kept: list[Session] = []
    for s in sessions:
        if kept and kept[-1].station_id == s.station_id and s.arrival < kept[-1].departure:
            dropped["overlap"] += 1
            continue
        kept.append(s)
    kept.sort(key=lambda s: s.arrival)
    return kept, dropped


def make_events(sessions: list[Session]) -> EventQueue:
    battery_kw = EVSE_MAX_A * VOLTAGE / 1000
    evs = [
        EV(
            s.arrival, s.departure, s.energy_kwh, s.station_id, s.session_id,
            Battery(s.energy_kwh, 0, battery_kw), estimated_departure=s.estimated_departure,
        )
        for s in sessions
    ]
    return EventQueue([PluginEvent(ev.arrival, ev) for ev in evs])


ALGORITHMS = ["Uncontrolled", "FCFS", "EDF", "LLF", "RoundRobin", "Ours (static tree)", "Ours (adaptive tree)"]


def make_algorithm(name: str, min_a: float = MIN_A):
    sorted_algos = algorithms
    if name == "Uncontrolled":
        return algorithms.UncontrolledCharging()
    if name == "FCFS":
        return sorted_algos.SortedSchedulingAlgo(sorted_algos.first_come_first_served)
    if name == "EDF":
        return sorted_algos.SortedSchedulingAlgo(sorted_algos.earliest_deadline_first)
    if name == "LLF":
        return sorted_algos.SortedSchedulingAlgo(sorted_algos.least_laxity_first)
    if name == "RoundRobin":
        return sorted_algos.RoundRobin(sorted_algos.first_come_first_served)
    if name == "Ours (static tree)":
        return AllocatorAlgorithm(tree="static", min_a=min_a)
    if name == "Ours (adaptive tree)":
        return AllocatorAlgorithm(tree="adaptive", min_a=min_a)
    raise ValueError(name)


def time_schedule_calls(algo) -> list[tuple[float, int]]:
    """Record the CPU time of each schedule() call (robust to other load on the machine)."""
    calls: list[tuple[float, int]] = []
    inner = algo.schedule

    def timed(active_sessions):
        t0 = time.process_time()
        out = inner(active_sessions)
        calls.append((time.process_time() - t0, len(active_sessions)))
        return out

    algo.schedule = timed
    return calls


def run_one(job):
    """Simulate one algorithm at one capacity; return the metrics row."""
    name, cap_kw, sessions, start, period_min, min_a, site = job
    warnings.simplefilter("ignore")
    network = site_network(site, cap_kw)
    algo = make_algorithm(name, min_a)
    sim = acnsim.Simulator(network, algo, make_events(sessions), start, period=period_min, verbose=False)
    calls = time_schedule_calls(algo)
    wall = time.perf_counter()
    sim.run()
    wall = time.perf_counter() - wall

    evs = list(sim.ev_history.values())
    delivered = np.array([ev.energy_delivered for ev in evs])
    requested = np.array([ev.requested_energy for ev in evs])
    ratios = delivered / requested
    power_kw = network._voltages @ sim.charging_rates / 1000
    pilots = sim.pilot_signals
    over = sum(not network.is_feasible(pilots[:, t : t + 1]) for t in range(pilots.shape[1]))
    busy = [cpu for cpu, active in calls if active > 0]
    return {
        "site": site,
        "algorithm": name,
        "cap_kw": cap_kw,
        "sessions": len(evs),
        "energy_pct": 100 * delivered.sum() / requested.sum(),
        "met_pct": 100 * float(np.mean(ratios >= DEMAND_MET)),
        "peak_kw": float(power_kw.max()),
        "jain": float(ratios.sum() ** 2 / (len(ratios) * (ratios**2).sum())),
        "over_min": over * period_min,
        "ms_step": 1000 * float(np.mean(busy)) if busy else 0.0,
        "wall_s": wall,
    }


# --------------------------------------------------------------------------- synthetic 100 EVs


def synthetic_network(evses_per_phase: int, cap_kw: float):
    """A Caltech-like network: line-to-line EVSEs on three angles behind a transformer."""
    network = acnsim.ChargingNetwork()
    groups = {30: [], -90: [], 150: []}
    for angle, ids in groups.items():
        for i in range(evses_per_phase):
            sid = f"S{angle}-{i}"
            ids.append(sid)
            network.register_evse(acnsim.models.evse.get_evse_by_type(sid, "BASIC"), VOLTAGE, angle)
    ab, bc, ca = Current(groups[30]), Current(groups[-90]), Current(groups[150])
    secondary = cap_kw * 1000 / 3 / 120
    for name, current in (("Secondary A", ab - ca), ("Secondary B", bc - ab), ("Secondary C", ca - bc)):
        network.add_constraint(current, secondary, name=name)
    return network


def synthetic_run(name: str, evs: int = 100, steps: int = 24, seed: int = 1):
    """Mean ms per step of one algorithm with ``evs`` EVs plugged in for ``steps`` periods."""
    warnings.simplefilter("ignore")
    rng = random.Random(seed)
    per_phase = math.ceil(evs / 3)
    network = synthetic_network(per_phase, cap_kw=evs * 1.5)
    stations = list(network.station_ids)[:evs]
    sessions = [
        Session(f"ev{i}", sid, 0, steps + rng.randint(0, 12), steps + rng.randint(0, 12), rng.uniform(5, 30))
        for i, sid in enumerate(stations)
    ]
    algo = make_algorithm(name)
    sim = acnsim.Simulator(network, algo, make_events(sessions), datetime(2019, 9, 2), period=5, verbose=False)
    calls = time_schedule_calls(algo)
    sim.run()
    times = [cpu for cpu, active in calls if active >= evs * 0.9]
    return name, 1000 * float(np.mean(times)), len(times)


def bare_allocator_ms(evs: int = 100, steps: int = 200, seed: int = 1) -> float:
    """Mean ms of allocate() alone on a 3-level tree with ``evs`` mixed 1-/3-phase loads."""
    rng = random.Random(seed)
    nodes = [Node("grid", None, (250.0, 250.0, 250.0))]
    nodes += [Node(f"hub{h}", "grid", (80.0, 80.0, 80.0)) for h in range(10)]
    loads = []
    for i in range(evs):
        station = f"st{i}"
        nodes.append(Node(station, f"hub{i % 10}", (32.0, 32.0, 32.0)))
        phases = (1, 2, 3) if rng.random() < 0.5 else (rng.randint(1, 3),)
        loads.append(Load(f"ev{i}", station, phases, arrived_at=float(i), energy_wh_needed=rng.uniform(5e3, 4e4),
                          departure_at=rng.uniform(3600, 36000)))
    config = AllocatorConfig(period_s=60.0)
    state = None
    elapsed = 0.0
    for step in range(steps):
        now = 60.0 * step
        current = [
            Load(l.id, l.node, l.phases, arrived_at=l.arrived_at, energy_wh_needed=l.energy_wh_needed,
                 departure_at=l.departure_at,
                 measured_a=None if state is None else state.loads[l.id].limit_a * rng.uniform(0.5, 1.0))
            for l in loads
        ]
        t0 = time.process_time()
        result = allocate(nodes, current, now=now, state=state, config=config)
        elapsed += time.process_time() - t0
        state = result.state
    return 1000 * elapsed / steps


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="ACN-Data sessions (.csv.gz)")
    parser.add_argument("--start", default="2019-09-02", help="first arrival day (site time)")
    parser.add_argument("--end", default="2019-09-09", help="arrivals before this day")
    parser.add_argument("--site", choices=SITES, default="caltech",
                        help="acnportal network (Caltech's sessions are replayed on the others' EVSEs)")
    parser.add_argument("--cap", type=float, nargs="+", default=None,
                        help="transformer kW (jpl: both transformers together); default per site")
    parser.add_argument("--period", type=float, default=5.0, help="simulation period (minutes)")
    parser.add_argument("--algorithms", nargs="+", default=ALGORITHMS, choices=ALGORITHMS, metavar="NAME")
    parser.add_argument("--min-a", type=float, default=MIN_A,
                        help="our loads' min_a (6 A per IEC 61851; 0 only to see what that rule costs)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel simulations")
    parser.add_argument("--synthetic-evs", type=int, default=100, help="EVs in the timing case (0: skip)")
    parser.add_argument("--weeks", nargs="+", metavar="DAY", default=[],
                        help="instead: one line per week starting on each DAY, ours against the best baseline")
    args = parser.parse_args(argv)
    if args.cap is None:
        args.cap = DEFAULT_CAPS[args.site]
    if args.weeks:
        weekly_summary(args)
        return

    start = datetime.fromisoformat(args.start).replace(tzinfo=SITE_TZ)
    end = datetime.fromisoformat(args.end).replace(tzinfo=SITE_TZ)
    sessions, dropped = site_sessions(args.site, args.data, start, end, args.period)
    on = "" if args.site == "caltech" else f" on {args.site}'s EVSEs"
    print(f"ACN-Data caltech {args.start} .. {args.end}{on}: {len(sessions)} sessions, "
          f"{sum(s.energy_kwh for s in sessions):.0f} kWh requested (= delivered in the data); "
          f"left out: {', '.join(f'{v} {k}' for k, v in dropped.items() if v) or 'none'}")
    print(f"network {site_description(args.site)}, period {args.period:g} min, acnportal "
          f"{importlib.metadata.version('acnportal')}, our min_a {args.min_a:g} A")
    print("tree: " + "; ".join(
        f"{n.id} ({int(n.counts.sum())} EVSEs{', under ' + n.parent if n.parent else ''})"
        for n in map_infrastructure(network_info(site_network(args.site, args.cap[0]))).nodes))

    jobs = [(name, cap, sessions, start, args.period, args.min_a, args.site)
            for cap in args.cap for name in args.algorithms]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(run_one, jobs))
        synthetic = []
        if args.synthetic_evs:
            names = [n for n in args.algorithms if n != "Uncontrolled"]
            synthetic = list(pool.map(synthetic_run, names, [args.synthetic_evs] * len(names)))

    header = f"{'cap':>5} {'algorithm':<21} {'energy %':>8} {'met %':>6} {'peak kW':>7} {'Jain':>6} {'min over':>8} {'CPU ms/step':>11}"
    print()
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['cap_kw']:>4g}k {row['algorithm']:<21} {row['energy_pct']:>8.2f} {row['met_pct']:>6.1f} "
            f"{row['peak_kw']:>7.1f} {row['jain']:>6.3f} {row['over_min']:>8g} {row['ms_step']:>11.2f}"
        )
    if synthetic:
        print()
        print(f"synthetic case: {args.synthetic_evs} EVs plugged in at once, Caltech-like 3-angle network, "
              "mean CPU time per step while they charge:")
        for name, ms, steps in synthetic:
            print(f"  {name:<21} {ms:8.2f} CPU ms/step ({steps} steps)")
        print(f"  allocate() alone, {args.synthetic_evs} mixed 1-/3-phase loads on a 3-level tree: "
              f"{bare_allocator_ms(args.synthetic_evs):.2f} CPU ms/call")
    print(f"\n{len(jobs)} simulations in {time.perf_counter() - t0:.0f} s with {args.jobs} processes")


def weekly_summary(args) -> None:
    """Per week and capacity: the adaptive tree's energy and Jain against the best baseline's."""
    ours = "Ours (adaptive tree)"
    baselines = [n for n in args.algorithms if n not in ("Uncontrolled", "Ours (static tree)", ours)]
    jobs = []
    for day in args.weeks:
        start = datetime.fromisoformat(day).replace(tzinfo=SITE_TZ)
        sessions, _ = site_sessions(args.site, args.data, start, start + timedelta(days=7), args.period)
        jobs += [(name, cap, sessions, start, args.period, args.min_a, args.site)
                 for cap in args.cap for name in [*baselines, ours]]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(run_one, jobs))
    print(f"site {args.site}; baselines: {', '.join(baselines)}; ours: {ours}")
    header = f"{'week':<10} {'cap':>4} {'energy %':>8} {'best baseline':>21} {'Jain':>6} {'best baseline':>19}"
    print(header)
    print("-" * len(header))
    for i in range(0, len(rows), len(baselines) + 1):
        group = rows[i : i + len(baselines) + 1]
        mine = group[-1]
        top_energy = max(group[:-1], key=lambda r: r["energy_pct"])
        top_jain = max(group[:-1], key=lambda r: r["jain"])
        week = args.weeks[i // ((len(baselines) + 1) * len(args.cap))]
        print(f"{week:<10} {mine['cap_kw']:>3g}k {mine['energy_pct']:>8.2f} {top_energy['energy_pct']:>8.2f} "
              f"{top_energy['algorithm']:<12} {mine['jain']:>6.3f} {top_jain['jain']:>6.3f} {top_jain['algorithm']:<12}")


if __name__ == "__main__":
    main()
