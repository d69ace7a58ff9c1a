"""Reference points for ``acn_benchmark.py``: what schedulers with more information or more
computing can reach on the same sessions and network.

Not part of the product; needs ``pip install acnportal cvxpy clarabel``. Three kinds of
reference, all on acnportal's exact phasor constraints, 0-32 A per EVSE and *no* 6 A minimum
(so they bound what our allocator, which keeps the IEC 61851 minimum, could reach):

- **Offline ceiling** (perfect foresight: every arrival, real departure and demand known in
  advance). Jain's index of the ratios delivered/requested is cos² of the angle between the
  ratio vector and the all-ones vector, so it does not change when the ratios are scaled; its
  maximum over the schedules that deliver at least E % of the energy is its maximum over the
  convex cone those schedules span (every limit times a free scale λ ≥ 0), and the largest
  cos² to a vector over a closed convex cone is reached at the vector's projection p onto
  the cone, where it is |p|² / n. One least-squares program with second-order cone
  constraints; ``p / λ`` is a schedule that reaches it.
- **Online model-predictive control**: every period, one convex program over the sessions
  plugged in (a 12 h horizon in 15-minute blocks after the first period) minimising the sum
  of squared unmet shares (1 - delivered/requested)² the sessions would end with, given the
  departures it is told, with a small reward for charging sooner; the first period is
  applied. With the *estimated* departures (what
  every online scheduler in acn_benchmark.py sees), with a horizon of one period (the
  greedy form, which trusts no departure), and with the *real* departures (information no
  CSMS has: where the estimates cost fairness).

    python bench/acn_references.py --cap 30 --energy 80.85 81.64
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import cvxpy as cp
import numpy as np
from acnportal import acnsim, algorithms
from acnportal.acnsim.network.sites import caltech_acn
from scipy import sparse

sys.path.insert(0, str(Path(__file__).resolve().parent))

from acn_benchmark import (
    DEFAULT_DATA,
    EVSE_MAX_A,
    SITE_TZ,
    VOLTAGE,
    load_sessions,
    make_events,
)


def jain(ratios: np.ndarray) -> float:
    return float(ratios.sum() ** 2 / (len(ratios) * (ratios**2).sum()))


def phasor_parts(matrix: np.ndarray, angles_deg: np.ndarray, limits) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Real and imaginary coefficient matrices (constraints x EVSEs) and the limits."""
    angles = np.deg2rad(angles_deg)
    return matrix * np.cos(angles), matrix * np.sin(angles), np.asarray(limits, dtype=float)


# --------------------------------------------------------------------------- offline ceiling


def offline_ceiling(sessions, cap_kw: float, period_min: float, energy_pct: float) -> tuple[float, float]:
    """Highest Jain index of a schedule delivering at least ``energy_pct`` % (and its energy %)."""
    network = caltech_acn(basic_evse=True, transformer_cap=cap_kw)
    index = {sid: j for j, sid in enumerate(network.station_ids)}
    horizon = max(s.departure for s in sessions)
    rows, owner = [], []
    for i, s in enumerate(sessions):
        for t in range(s.arrival, s.departure):  # one variable per session and period plugged in
            rows.append(index[s.station_id] * horizon + t)
            owner.append(i)
    cols = np.arange(len(owner))
    place = sparse.csr_matrix((np.ones(len(owner)), (rows, cols)), shape=(len(index) * horizon, len(owner)))
    demand = np.array([s.energy_kwh for s in sessions])
    kwh_per_amp = VOLTAGE * period_min / 60.0 / 1000.0
    to_ratio = sparse.csr_matrix((kwh_per_amp / demand[owner], (owner, cols)), shape=(len(sessions), len(owner)))

    x = cp.Variable(len(owner), nonneg=True)
    scale = cp.Variable(nonneg=True)
    ratio = to_ratio @ x
    constraints = [x <= EVSE_MAX_A * scale, ratio <= scale,
                   demand @ ratio >= energy_pct / 100.0 * demand.sum() * scale]
    real, imag, limits = phasor_parts(network.constraint_matrix, network._phase_angles, network.magnitudes)
    eye = sparse.identity(horizon)
    for c, limit in enumerate(limits):
        re = (sparse.kron(sparse.csr_matrix(real[c]), eye) @ place) @ x
        im = (sparse.kron(sparse.csr_matrix(imag[c]), eye) @ place) @ x
        constraints.append(cp.norm(cp.vstack([re, im]), 2, axis=0) <= limit * scale)
    problem = cp.Problem(cp.Minimize(cp.sum_squares(1 - ratio)), constraints)
    problem.solve(solver=cp.CLARABEL)
    if problem.status != "optimal":
        raise RuntimeError(f"offline ceiling: solver status {problem.status}")
    r = np.asarray(ratio.value) / float(scale.value)
    return jain(r), float(100 * (demand * r).sum() / demand.sum())


# --------------------------------------------------------------------------- online MPC


class PredictiveScheduler(algorithms.BaseAlgorithm):
    """Each period: minimise the sum of squared unmet shares the plugged-in sessions would end
    with, over ``horizon_h`` (first period, then ``block`` periods per step), given the
    departures in ``departures`` (session id -> period) or the estimated ones."""

    def __init__(self, horizon_h: float = 12.0, block: int = 3, departures: dict[str, int] | None = None):
        super().__init__()
        self.max_recompute = 1
        self.block = block
        self.blocks = int(horizon_h * 60 / 5 / block)
        self.departures = departures

    def register_interface(self, interface) -> None:
        super().register_interface(interface)
        infra = interface.infrastructure_info()
        self.index = {sid: j for j, sid in enumerate(infra.station_ids)}
        self.real, self.imag, self.limits = phasor_parts(infra.constraint_matrix, infra.phases,
                                                         infra.constraint_limits)

    def schedule(self, active_sessions):
        if not active_sessions:
            return {}
        now = self.interface.current_time
        period_h = self.interface.period / 60.0
        n, steps = len(active_sessions), 1 + self.blocks
        lengths = np.array([1] + [self.block] * self.blocks)
        offsets = np.concatenate([[0], 1 + np.arange(self.blocks) * self.block])
        present = np.zeros((n, steps))  # periods of each step the session is still plugged in
        requested, delivered, remaining = np.zeros(n), np.zeros(n), np.zeros(n)
        for i, s in enumerate(active_sessions):
            leaves = s.estimated_departure if self.departures is None else self.departures[s.session_id]
            present[i] = np.clip(max(1, leaves - now) - offsets, 0, lengths)
            requested[i], delivered[i], remaining[i] = s.requested_energy, s.energy_delivered, s.remaining_demand
        x = cp.Variable((n, steps), nonneg=True)
        energy = cp.sum(cp.multiply(x, present), axis=1) * VOLTAGE * period_h / 1000.0
        where = np.zeros((len(self.index), n))
        where[[self.index[s.station_id] for s in active_sessions], np.arange(n)] = 1.0
        re, im = (self.real @ where) @ x, (self.imag @ where) @ x
        constraints = [x <= EVSE_MAX_A * (present > 0), energy <= remaining]
        for c, limit in enumerate(self.limits):
            constraints.append(cp.norm(cp.vstack([re[c], im[c]]), 2, axis=0) <= limit * 0.999)
        # A small reward for energy delivered sooner (acnportal's adacharge calls it quick
        # charge): among schedules equally fair by the departures given, charge early.
        sooner = (steps - np.arange(steps)) / steps
        quick = cp.sum(cp.multiply(x, present) @ sooner) * VOLTAGE * period_h / 1000.0
        unmet = cp.sum_squares(1 - (delivered + energy) / requested)
        cp.Problem(cp.Minimize(unmet - 1e-4 * quick), constraints).solve(solver=cp.CLARABEL)
        rates = np.zeros(n) if x.value is None else np.maximum(0.0, x.value[:, 0])
        return {s.station_id: [float(r)] for s, r in zip(active_sessions, rates)}


def run_predictive(job):
    label, kwargs, sessions, cap_kw, start, period_min = job
    warnings.simplefilter("ignore")
    network = caltech_acn(basic_evse=True, transformer_cap=cap_kw)
    sim = acnsim.Simulator(network, PredictiveScheduler(**kwargs), make_events(sessions), start,
                           period=period_min, verbose=False)
    t0 = time.perf_counter()
    sim.run()
    evs = list(sim.ev_history.values())
    delivered = np.array([ev.energy_delivered for ev in evs])
    requested = np.array([ev.requested_energy for ev in evs])
    pilots = sim.pilot_signals
    over = sum(not network.is_feasible(pilots[:, t : t + 1]) for t in range(pilots.shape[1]))
    return label, cap_kw, 100 * delivered.sum() / requested.sum(), jain(delivered / requested), over * period_min, \
        time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--start", default="2019-09-02")
    parser.add_argument("--end", default="2019-09-09")
    parser.add_argument("--cap", type=float, nargs="+", default=[30.0])
    parser.add_argument("--period", type=float, default=5.0)
    parser.add_argument("--energy", type=float, nargs="+", default=[80.0],
                        help="offline ceiling among schedules delivering at least this %% of the energy")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    start = datetime.fromisoformat(args.start).replace(tzinfo=SITE_TZ)
    end = datetime.fromisoformat(args.end).replace(tzinfo=SITE_TZ)
    sessions, _ = load_sessions(args.data, start, end, args.period, set(caltech_acn(basic_evse=True).station_ids))
    print(f"ACN-Data caltech {args.start} .. {args.end}: {len(sessions)} sessions; exact phasor constraints, "
          "0-32 A, no minimum current")
    real = {s.session_id: s.departure for s in sessions}
    variants = [
        ("MPC, estimated departures", {}),
        ("MPC, one period (greedy)", {"horizon_h": 0.0}),
        ("MPC, real departures", {"departures": real}),
    ]
    jobs = [(label, kwargs, sessions, cap, start, args.period) for cap in args.cap for label, kwargs in variants]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        online = pool.map(run_predictive, jobs)
        print("\noffline ceiling (perfect foresight)")
        print(f"{'cap':>5} {'energy at least':>15} {'Jain ceiling':>12}")
        for cap in args.cap:
            for energy in args.energy:
                best, _ = offline_ceiling(sessions, cap, args.period, energy)
                print(f"{cap:>4g}k {energy:>13.2f} % {best:>12.4f}")
        print("\nonline references")
        print(f"{'cap':>5} {'scheduler':<27} {'energy %':>8} {'Jain':>6} {'min over':>8} {'wall s':>6}")
        for label, cap, energy, fairness, over, wall in online:
            print(f"{cap:>4g}k {label:<27} {energy:>8.2f} {fairness:>6.3f} {over:>8g} {wall:>6.0f}")


if __name__ == "__main__":
    main()
