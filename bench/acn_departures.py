"""Learned departures on ACN-Data: prediction error and what they change for our allocator.

Trains the CSMS's departure estimator (csms/core/services/smart_charging/departures.py, the same
pure functions the server uses) on the sessions before each tested week and predicts each
session of the week at its arrival. See bench/README.md ("Learned departures").

    python bench/acn_departures.py --errors-only                  # (a) prediction error, no acnportal
    /tmp/venv-acn/bin/python bench/acn_departures.py --weeks 2019-10-07 2019-11-04 2019-11-18 --cap 30 50

ACN-Data's CSV here has no user id (the ACN API's ``userID`` is not in it), so the per-card
level of the estimator is fed the station id ("the same space") and the site level covers the
rest. ``estimated_departure`` is the driver's input only for claimed sessions; for the others it
is the real departure (an oracle no CSMS has), so "driver" below means: the driver's estimate
for claimed sessions, nothing for the others.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import csv
import gzip
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _estimator():
    """The server's estimator module, loaded from its file: it needs only the standard library,
    so this runs in acnportal's venv without the server's dependencies (csms/__init__ imports them)."""
    import importlib.util

    path = REPO / "csms" / "core" / "services" / "smart_charging" / "departures.py"
    spec = importlib.util.spec_from_file_location("csms_departures", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


_est = _estimator()
Stay, combine, learn, predict = _est.Stay, _est.combine, _est.learn, _est.predict

DEFAULT_DATA = REPO.parent / "shared" / "data" / "acn" / "caltech_2019-09-01_2019-12-31.csv.gz"
SITE_TZ = datetime.fromisoformat("2019-09-02T00:00:00-07:00").tzinfo
RULES = ("stated", "earlier", "later", "mean", "learned")


@dataclass(frozen=True)
class Row:
    session_id: str
    station_id: str
    arrival: datetime
    departure: datetime
    driver_estimate: datetime | None  # claimed sessions only


def read_rows(path: Path) -> list[Row]:
    out = []
    with gzip.open(path, "rt", newline="") as f:
        for r in csv.DictReader(f):
            claimed = r["claimed"] == "True"
            est = datetime.fromisoformat(r["estimated_departure"]) if claimed and r["estimated_departure"] else None
            out.append(Row(r["session_id"], r["station_id"], datetime.fromisoformat(r["arrival"]),
                           datetime.fromisoformat(r["departure"]), est))
    return out


def keys(row: Row, use_station: bool = True) -> tuple[str, ...]:
    return (f"station:{row.station_id}",) if use_station else ()


def predictions(rows: list[Row], week: datetime, *, quantile: float = 0.5,
                use_station: bool = True) -> dict[str, datetime | None]:
    """Each session of the week starting at ``week``: its departure learned from the sessions before."""
    history = learn((Stay(r.arrival, r.departure, keys(r, use_station)) for r in rows if r.departure <= week),
                    now=week, tz=SITE_TZ)
    out = {}
    for r in rows:
        if week <= r.arrival < week + timedelta(days=7):
            p = predict(history, keys(r, use_station), r.arrival, now=r.arrival, quantile=quantile)
            out[r.session_id] = None if p is None else p.departure_at
    return out


def error_stats(pairs: list[tuple[datetime | None, datetime]]) -> str:
    known = [(p - d).total_seconds() / 60 for p, d in pairs if p is not None]
    if not known:
        return f"{'-':>7} {'-':>7} {'-':>7} {0:>6.0%}"
    mae = statistics.median(abs(e) for e in known)
    within = sum(abs(e) <= 60 for e in known) / len(known)
    bias = statistics.median(known)
    return f"{mae:>7.0f} {within:>7.0%} {bias:>+7.0f} {len(known) / len(pairs):>6.0%}"


def error_table(rows: list[Row], weeks: list[datetime], quantile: float) -> None:
    by_id = {r.session_id: r for r in rows}
    pooled: dict[str, dict[str, list]] = {}
    print(f"quantile {quantile:g}; MAE = median |predicted - real departure| (min); "
          "bias = median (predicted - real) (min, < 0: early); known = share of sessions with a departure")
    header = f"{'week':<10} {'sessions':<13} {'departure':<22} {'MAE':>7} {'≤ 1 h':>7} {'bias':>7} {'known':>6}"
    print(header)
    print("-" * len(header))
    for week in [*weeks, None]:
        if week is None:
            print("-" * len(header))
            groups = pooled
            label = "all"
        else:
            learned = predictions(rows, week, quantile=quantile)
            site_only = predictions(rows, week, quantile=quantile, use_station=False)
            groups = {}
            for sid, pred in learned.items():
                r = by_id[sid]
                kind = "claimed" if r.driver_estimate is not None else "unclaimed"
                variants = {"driver": r.driver_estimate, "learned": pred, "learned (site only)": site_only[sid]}
                for rule in RULES:
                    variants[f"combined: {rule}"] = combine(r.driver_estimate, pred, rule)[0]
                for name, value in variants.items():
                    for g in (kind, "all"):
                        groups.setdefault(g, {}).setdefault(name, []).append((value, r.departure))
                        pooled.setdefault(g, {}).setdefault(name, []).append((value, r.departure))
            label = week.date().isoformat()
        for g in ("claimed", "unclaimed", "all"):
            for name, pairs in groups.get(g, {}).items():
                if g == "unclaimed" and (name == "driver" or name.startswith("combined")):
                    continue
                print(f"{label:<10} {g + f' ({len(pairs)})':<13} {name:<22} {error_stats(pairs)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--weeks", nargs="+", default=["2019-10-07", "2019-11-04", "2019-11-18"], metavar="DAY")
    parser.add_argument("--cap", type=float, nargs="+", default=[30.0, 50.0])
    parser.add_argument("--quantile", type=float, default=0.5)
    parser.add_argument("--rule", choices=RULES, default="stated", help="how learned and driver estimates combine")
    parser.add_argument("--variants", nargs="+", default=["data", "driver", "learned", "combined"],
                        choices=list(VARIANTS))
    parser.add_argument("--errors-only", action="store_true", help="only the prediction error (no acnportal)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    rows = read_rows(args.data)
    weeks = [datetime.fromisoformat(w).replace(tzinfo=SITE_TZ) for w in args.weeks]
    error_table(rows, weeks, args.quantile)
    if not args.errors_only:
        simulate(args, rows, weeks)


# --------------------------------------------------------------------------- (b) in ACN-Sim

VARIANTS = {
    "data": "the data's estimated_departure (driver's for claimed, REAL departure otherwise)",
    "driver": "driver's estimate for claimed sessions, none otherwise",
    "learned": "learned for every session (driver's estimate ignored)",
    "combined": "driver's estimate and learned combined by --rule (learned alone when unclaimed)",
    "corrected": "driver's estimate and learned combined by --rule for claimed sessions, none otherwise",
}


def departure_rule(variant: str, rule: str):
    """How the allocator's departure is chosen from (driver estimate, learned) in a variant."""
    def choose(driver: datetime | None, learned: datetime | None) -> datetime | None:
        if variant == "driver":
            return driver
        if variant == "learned":
            return learned
        if variant == "corrected" and driver is None:
            return None
        return combine(driver, learned, rule)[0]
    return choose


def run_variant(job):
    """One ACN-Sim run of our adaptive allocator with the departures of one variant."""
    import bench.acn_benchmark as ab

    variant, rule, cap, sessions, start, period_min, rows, history_rows, quantile = job
    by_id = {r.session_id: r for r in rows}
    history = learn((Stay(r.arrival, r.departure, keys(r)) for r in history_rows), now=start, tz=SITE_TZ)
    choose = departure_rule(variant, rule)
    origin = int(start.timestamp() / (60 * period_min)) * 60 * period_min  # ACN-Sim's time 0 (s)

    class LearnedDepartures(ab.AllocatorAlgorithm):
        predicted: dict[str, datetime | None] = {}

        def departure_s(self, session, period_s):
            if variant == "data":
                return super().departure_s(session, period_s)
            r = by_id[session.session_id]
            now = datetime.fromtimestamp(origin + self.interface.current_time * period_s, SITE_TZ)
            known = self.predicted.get(session.session_id, r.arrival)
            if session.session_id not in self.predicted or (known is not None and known <= now):
                p = predict(history, keys(r), r.arrival, now=max(now, r.arrival), quantile=quantile)
                known = self.predicted[session.session_id] = None if p is None else p.departure_at
            chosen = choose(r.driver_estimate, known)
            return None if chosen is None else chosen.timestamp() - origin

    ab.make_algorithm = lambda name, min_a=ab.MIN_A: LearnedDepartures(tree="adaptive", min_a=min_a)
    row = ab.run_one(("Ours (adaptive tree)", cap, sessions, start, period_min, ab.MIN_A, "caltech"))
    row["variant"] = variant
    row["week"] = start.date().isoformat()
    return row


def simulate(args, rows: list[Row], weeks: list[datetime]) -> None:
    from concurrent.futures import ProcessPoolExecutor

    import bench.acn_benchmark as ab

    jobs = []
    for week in weeks:
        sessions, _ = ab.site_sessions("caltech", args.data, week, week + timedelta(days=7), 5.0)
        ids = {s.session_id for s in sessions}
        week_rows = [r for r in rows if r.session_id in ids]
        history_rows = [r for r in rows if r.departure <= week]
        jobs += [(v, args.rule, cap, sessions, week, 5.0, week_rows, history_rows, args.quantile)
                 for cap in args.cap for v in args.variants]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(run_variant, jobs))
    print()
    print(f"Ours (adaptive tree) on caltech, period 5 min, combine rule {args.rule!r}, "
          f"quantile {args.quantile:g}; variants:")
    for v in args.variants:
        print(f"  {v:<9} {VARIANTS[v]}")
    header = f"{'week':<10} {'cap':>4} {'variant':<9} {'energy %':>8} {'met %':>6} {'Jain':>6} {'min over':>8}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['week']:<10} {r['cap_kw']:>3g}k {r['variant']:<9} {r['energy_pct']:>8.2f} {r['met_pct']:>6.1f} "
              f"{r['jain']:>6.3f} {r['over_min']:>8g}")
    print(f"\n{len(jobs)} simulations in {time.perf_counter() - t0:.0f} s with {args.jobs} processes")


if __name__ == "__main__":
    main()
