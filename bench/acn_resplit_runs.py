"""Issue 20, fifth pass (not kept): ours on (site:week:cap ...) with AllocatorAlgorithm attribute overrides, two at a time.

    /tmp/venv-acn/bin/python bench/acn_resplit_runs.py '{"resplit_rounds": 3, "resplit_rate": 0.5}' caltech:2019-11-11:50 jpl:2019-09-02:80
"""
import json, sys, time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
import acn_benchmark as B

def job(args):
    site, week, cap, over = args
    orig = B.make_algorithm
    def mk(name, min_a=B.MIN_A):
        a = orig(name, min_a)
        for k, v in over.items():
            setattr(a, k, v)
        return a
    B.make_algorithm = mk
    start = datetime.fromisoformat(week).replace(tzinfo=B.SITE_TZ)
    sessions, _ = B.site_sessions(site, B.DEFAULT_DATA, start, start + timedelta(days=7), 5.0)
    r = B.run_one(("Ours (adaptive tree)", cap, sessions, start, 5.0, B.MIN_A, site))
    return site, week, cap, r

if __name__ == "__main__":
    over = json.loads(sys.argv[1])
    runs = [r.split(":") for r in sys.argv[2:]]
    jobs = [(s, w, float(c), over) for s, w, c in runs]
    t = time.time()
    with ProcessPoolExecutor(2) as p:
        for site, week, cap, r in p.map(job, jobs):
            print(f"{site:<10} {week} {cap:>4g}k  {r['energy_pct']:6.2f}/{r['jain']:.3f} over {r['over_min']:g} ms {r['ms_step']:.1f}", flush=True)
    print(f"# {sys.argv[1]} {time.time()-t:.0f}s", flush=True)
