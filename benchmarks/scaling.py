"""Strong and weak scaling of the kinetic solver on sheets: measured costs, modelled ranks.

    flock /tmp/fpsolver-bench.lock .venv/bin/python benchmarks/scaling.py [--quick]

Measured here (one rank, one BLAS thread, the shipped ``sheet`` with m x m sites):

- ``c_site``: the cost of one site in one step (its density's IMEX step, explicit
  products, solves, moments, quadrature of <G>), from steps after the start-up;
- ``c_red(S)``: the work every rank repeats on identical numbers each step (the balance
  Newton, FFT + GMRES on a torus, and the clustering of sites); the Newton also alone,
  up to 10^5 sites;
- the reductions of a step: how many, and how many doubles (counted on the
  communicator). Every per-site sum is an array over *all* S sites, reduced over the
  ranks (each rank fills its own sites): the volume grows with S, not with S / p;
- the steps to t = 5 (8 x 8 sheet; the step control does not depend on the site count);
- 1 and 2 ranks on the 16 x 16 sheet (``mpirun -n 2``): wall time, speedup and the
  largest difference of vbar and K (the split must not change the result);
- the 100 x 100 sheet (10^4 sites) to t = 5 on 2 ranks, as ``fpsolver kinetic`` runs it:
  its stripe input makes every column of the torus one orbit of the translations, so
  100 distinct sites are solved (:mod:`fpsolver.kinetic.symmetry`).

The cost figures above are for sites that all differ (the per-site measurement switches
the orbits off): the model below is the worst case, a sheet with no symmetry.

Modelled from those (printed and stored as "modelled"): a step of S sites on p ranks takes

    T(S, p) = ceil(S / p) c_site + c_red(S) + R (2 ceil(log2 p) alpha + 2 (p - 1) / p 8 V / beta)

with R reductions of V doubles (a reduce-scatter + all-gather allreduce), alpha = 2 us and
beta = 10 GB/s: an InfiniBand-class network, assumed, not measured. Strong scaling for
S = 10^4 and 10^5 on 1 ... 1024 ranks, weak scaling at 100 sites per rank, the ranks a
10^5-site sheet needs to reach t = 5 in 15 min and in 1 h, and memory per rank (measured
bytes per site; the FFT route keeps no dense S x S array).
``--quick``: 6 x 6 and 8 x 8 sheets, fewer steps, no 2-rank run (a smoke run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

from evidence import RESULTS, Record, settle

ROOT = Path(__file__).resolve().parents[1]
ALPHA = 2e-6     # s, network latency per message (assumed)
BETA = 10e9      # bytes/s, network bandwidth (assumed)
T_END = 5.0
RANKS = [2**k for k in range(11)]   # 1 ... 1024
WEAK_SITES_PER_RANK = 100
WALL_TIMES = (900.0, 3600.0, 7200.0, 14400.0)  # s: 15 min, 1, 2 and 4 h
THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}

# One size in a fresh process (its own peak memory): steps on one rank with timers around
# the repeated work and a counting communicator.
_MEASURE = r"""
import dolfinx_solver, json, resource, sys, time
from mpi4py import MPI
import fpsolver.kinetic.stepper as stepper_module
from fpsolver import load_scenario
from fpsolver.model import build_model

m, steps, dt = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])

class Counting:
    '''MPI.COMM_SELF, counting the reductions and the doubles they carry.'''
    def __init__(self, comm):
        self.comm, self.calls, self.doubles = comm, 0, 0
    def __getattr__(self, name):
        return getattr(self.comm, name)
    def _count(self, buf):
        self.calls += 1
        self.doubles += getattr(buf, "size", 1)
    def Reduce(self, a, b, **kw):
        self._count(a); return self.comm.Reduce(a, b, **kw)
    def Allreduce(self, a, b, **kw):
        self._count(a); return self.comm.Allreduce(a, b, **kw)
    def allreduce(self, a, **kw):
        self._count(a); return self.comm.allreduce(a, **kw)

clock = {"red": 0.0, "expect": 0.0}
def timed(key, fn):
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            clock[key] += time.perf_counter() - t
    return wrapper

stepper_module.update_clusters = timed("red", stepper_module.update_clusters)
scenario = load_scenario("sheet", [f"space.sites={m}", f"n={100 * m * m}"])
comm = Counting(MPI.COMM_SELF)
st = stepper_module.KineticStepper(build_model(scenario), comm)
st.constraint.solve = timed("red", st.constraint.solve)
st.expect = timed("expect", st.expect)
for _ in range(3):
    st.step(dt)
for key in clock:
    clock[key] = 0.0
comm.calls = comm.doubles = 0
t0 = time.perf_counter()
for _ in range(steps):
    st.step(dt)
wall = time.perf_counter() - t0
redundant = clock["red"] - clock["expect"]   # Newton without the per-site quadrature
S = m * m
print(json.dumps({"m": m, "sites": S, "dofs": int(st.dens.n_owned), "steps": steps,
                  "c_site": (wall - redundant) / (steps * S), "c_red": redundant / steps,
                  "reductions": comm.calls / steps, "doubles": comm.doubles / steps,
                  "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""

# The balance Newton alone on large sheets (FFT + GMRES), with gains whose slopes vary
# along the stripe like the sheet's: its cost per solve at 10^4 and 10^5 sites.
_NEWTON = r"""
import json, sys, time
import numpy as np
from fpsolver import load_scenario
from fpsolver.balance import BalanceConstraint
from fpsolver.model import build_model

m = int(sys.argv[1])
model = build_model(load_scenario("sheet", [f"space.sites={m}", f"n={m * m}"]))
con = BalanceConstraint(model)
assert con.circulant is not None
spread = 1 + 0.3 * np.cos(model.sites.points[:, 0])

def expect(vbar):
    v = vbar.T[None, :, :]
    return spread * np.tanh(v) * np.ones((2, 1, 1)), spread / np.cosh(v) ** 2 * np.ones((2, 1, 1))

vbar, info = con.solve(expect, np.zeros((model.n_sites, 2)))
t = time.perf_counter()
vbar2, info = con.solve(expect, vbar + 0.01)
print(json.dumps({"sites": m * m, "seconds": time.perf_counter() - t,
                  "iterations": info.iterations}))
"""

_STEPS = r"""
import dolfinx_solver, json, sys
from mpi4py import MPI
from fpsolver import load_scenario
from fpsolver.kinetic import run_kinetic
m, t_end = int(sys.argv[1]), float(sys.argv[2])
sc = load_scenario("sheet", [f"space.sites={m}", f"n={100 * m * m}", f"t_end={t_end}",
                             f"record.every={t_end / 2}", "record.snapshots=[]"])
r = run_kinetic(sc, progress=False)
if MPI.COMM_WORLD.rank == 0:
    print(json.dumps({"info": r.info, "vbar": r.vbar[-1].tolist(), "cov": r.cov[-1].tolist()}))
"""


def sheet_10k(ranks: int = 2) -> dict:
    """The 100 x 100 sheet to t = 5 on ``ranks`` ranks: wall time, steps, estimate."""
    run = _python(_STEPS, 100, T_END, ranks=ranks)["info"]
    out = {"sites": 10**4, "ranks": ranks, "wall_time": run["wall_time"],
           "steps": run["steps"], "distinct_sites": run.get("distinct_sites", 10**4),
           "error_estimate": {k: run["error_estimate"][k] for k in ("K", "vbar", "tol")},
           "peak_memory": run.get("peak_memory")}
    print(f"\n100 x 100 sheet to t = {T_END} on {ranks} ranks: {out['wall_time']:.0f} s, "
          f"{out['steps']} steps, {out['distinct_sites']} distinct sites, estimated error "
          f"K {out['error_estimate']['K']:.1e}, vbar {out['error_estimate']['vbar']:.1e}")
    return out


def _python(code: str, *args, ranks: int = 1) -> dict:
    cmd = [sys.executable, "-c", code, *map(str, args)]
    if ranks > 1:
        cmd = [str(Path(sys.executable).parent / "mpirun"), "-n", str(ranks)] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True,
                         env={**os.environ, **THREADS}).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(sizes, steps: int) -> list[dict]:
    """Per-site and redundant costs, reductions and peak memory at each m x m sheet."""
    rows = []
    print(f"\nsheet, one rank, one thread: {steps} steps of dt = 0.002 after three")
    print("   sites   dofs  c_site ms  c_red ms  reductions  doubles/step  peak MiB")
    for m in sizes:
        row = _python(_MEASURE, m, steps, 0.002)
        rows.append(row)
        print(f"  {row['sites']:6d} {row['dofs']:6d} {1e3 * row['c_site']:10.3f} "
              f"{1e3 * row['c_red']:9.2f} {row['reductions']:11.1f} {row['doubles']:13.0f} "
              f"{row['peak_bytes'] / 2**20:9.0f}", flush=True)
    return rows


def ranks_compared(m: int, t_end: float) -> dict:
    """1 and 2 ranks on the m x m sheet: times, speedup and the largest differences."""
    one, two = (_python(_STEPS, m, t_end, ranks=r) for r in (1, 2))
    dv = max(abs(a - b) for r1, r2 in zip(one["vbar"], two["vbar"]) for a, b in zip(r1, r2))
    flat = lambda c: [x for site in c for row in site for x in row]  # noqa: E731
    dk = max(abs(a - b) for a, b in zip(flat(one["cov"]), flat(two["cov"])))
    out = {"sites": m * m, "t_end": t_end, "steps": one["info"]["steps"],
           "wall_1": one["info"]["wall_time"], "wall_2": two["info"]["wall_time"],
           "max_vbar_difference": dv, "max_cov_difference": dk}
    out["speedup"] = out["wall_1"] / out["wall_2"]
    print(f"\n{m} x {m} sheet to t = {t_end}: 1 rank {out['wall_1']:.1f} s, 2 ranks "
          f"{out['wall_2']:.1f} s (speedup {out['speedup']:.2f}); largest difference "
          f"vbar {dv:.1e}, K {dk:.1e}")
    return out


def _fit_site_cost(rows: list[dict]) -> float:
    """c_site at the largest size measured (it grows slowly with S: cache effects)."""
    return rows[-1]["c_site"]


def newton_costs(sides) -> list[dict]:
    """The balance Newton alone (FFT + GMRES) on m x m sheets: seconds per solve."""
    rows = [_python(_NEWTON, m) for m in sides]
    for r in rows:
        print(f"  balance Newton, {r['sites']:7d} sites: {1e3 * r['seconds']:8.1f} ms a solve "
              f"({r['iterations']} iterations)", flush=True)
    return rows


def _fit_redundant(rows: list[dict], newton: list[dict]):
    """c_red(S) = Newton(S) + clustering(S), from the measured points.

    Newton: piecewise power law (log-log) through the Newton-alone timings, constant slope
    beyond the last. Clustering and the rest: the stepper's repeated work less the Newton
    at the largest sheet measured both ways, scaled linearly in S (it is O(S)).
    """
    import numpy as np

    alone = {r["sites"]: r["seconds"] for r in newton}
    both = max((r for r in rows if r["sites"] in alone), key=lambda r: r["sites"])
    per_site = max(both["c_red"] - alone[both["sites"]], 0.0) / both["sites"]
    pts = sorted(alone.items())
    x, y = np.log([p[0] for p in pts]), np.log([max(p[1], 1e-9) for p in pts])

    def c_red(s):
        ls = math.log(s)
        if ls <= x[-1]:
            newton_s = float(np.exp(np.interp(ls, x, y)))
        else:
            slope = (y[-1] - y[-2]) / (x[-1] - x[-2])
            newton_s = float(np.exp(y[-1] + slope * (ls - x[-1])))
        return newton_s + per_site * s
    return c_red, {"newton_points": [[float(a), float(b)] for a, b in pts],
                   "clustering_per_site_s": per_site}


def model(rows: list[dict], newton: list[dict], steps_to_t5: float) -> dict:
    """The scaling model's figures (see the module docstring)."""
    c_site = _fit_site_cost(rows)
    c_red, points = _fit_redundant(rows, newton)
    per_site = [r["doubles"] / r["sites"] for r in rows]
    doubles_per_site = max(per_site)
    reductions = max(r["reductions"] for r in rows)
    bytes_per_site = max((r2["peak_bytes"] - r1["peak_bytes"]) / (r2["sites"] - r1["sites"])
                         for r1, r2 in zip(rows, rows[1:]))

    def step(S, p):
        comm = 0.0 if p == 1 else reductions * (2 * math.ceil(math.log2(p)) * ALPHA
                                                + 2 * (p - 1) / p * 8 * doubles_per_site * S
                                                / BETA)
        return {"compute": math.ceil(S / p) * c_site, "redundant": c_red(S), "comm": comm}

    def run(S, p):
        parts = step(S, p)
        total = sum(parts.values()) * steps_to_t5
        return {"ranks": p, "seconds": total, **{k: v * steps_to_t5 for k, v in parts.items()},
                "memory_per_rank": math.ceil(S / p) * bytes_per_site + 2e8}

    out = {"assumed": {"alpha_s": ALPHA, "beta_bytes_per_s": BETA},
           "measured": {"c_site_s": c_site, "c_red": points,
                        "reductions_per_step": reductions,
                        "doubles_per_site_and_step": doubles_per_site,
                        "bytes_per_site": bytes_per_site, "steps_to_t5": steps_to_t5},
           "strong": {}, "weak": [], "weak_sites_per_rank": WEAK_SITES_PER_RANK}
    for S in (10**4, 10**5):
        out["strong"][str(S)] = [run(S, p) for p in RANKS]
    out["weak"] = [run(WEAK_SITES_PER_RANK * p, p) for p in RANKS]
    # the fewest ranks (powers of 2 up to 2^16) reaching t = 5 within each wall time; None:
    # out of reach (the repeated work alone takes longer)
    out["ranks_for_1e5"] = {f"{limit:.0f}s": next((p for p in RANKS + [2**k for k in
                                                                       range(11, 17)]
                                                   if run(10**5, p)["seconds"] <= limit), None)
                            for limit in WALL_TIMES}
    out["floor_1e5_s"] = run(10**5, 2**16)["seconds"]
    return out


def _print_model(fig: dict) -> None:
    print("\nmodelled (measured costs above; network assumed: alpha "
          f"{ALPHA * 1e6:.0f} us, beta {BETA / 1e9:.0f} GB/s), to t = {T_END}:")
    for S, runs in fig["strong"].items():
        print(f"  strong scaling, {int(S):,} sites: ranks, wall s (compute / redundant / "
              "comm), efficiency, memory per rank GiB")
        base = runs[0]["seconds"]
        for r in runs:
            efficiency = base / (r["ranks"] * r["seconds"])
            print(f"    {r['ranks']:5d} {r['seconds']:10.0f} ({r['compute']:.0f} / "
                  f"{r['redundant']:.0f} / {r['comm']:.1f})  {efficiency:5.2f}"
                  f"  {r['memory_per_rank'] / 2**30:7.2f}")
    print(f"  weak scaling, {WEAK_SITES_PER_RANK} sites per rank: ranks, sites, wall s, "
          "efficiency")
    base = fig["weak"][0]["seconds"]
    for r in fig["weak"]:
        print(f"    {r['ranks']:5d} {WEAK_SITES_PER_RANK * r['ranks']:7d} {r['seconds']:9.0f}"
              f"  {base / r['seconds']:5.2f}")
    print(f"  ranks for 10^5 sites to t = {T_END} within (s): {fig['ranks_for_1e5']}; "
          f"fastest possible {fig['floor_1e5_s']:.0f} s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run (small sheets)")
    ap.add_argument("--out", help="write the results here (default: benchmarks/results/"
                    "scaling.json; with --quick a temporary file)")
    ap.add_argument("--remodel", action="store_true", help="recompute the model from the "
                    "measurements stored in benchmarks/results/scaling.json (no run)")
    args = ap.parse_args(argv)
    if args.remodel:
        path = RESULTS / "scaling.json"
        data = json.loads(path.read_text())
        fig = data["figures"]
        fig.setdefault("steps_to_t5", fig["model"]["measured"]["steps_to_t5"])
        fig["model"] = model(fig["sizes"], fig["newton"], fig["steps_to_t5"])
        _print_model(fig["model"])
        path.write_text(json.dumps(data, indent=1) + "\n")
        return 0
    record = Record("scaling", argv, quick=args.quick)
    if not args.quick:
        settle()
    rows = measure([6, 8] if args.quick else [8, 16, 32], 4 if args.quick else 12)
    newton = newton_costs([8, 32, 100] if args.quick else [8, 16, 32, 100, 316])
    if args.quick:
        steps = _python(_STEPS, 6, 0.2)["info"]["steps"] / 0.2 * T_END
    else:
        steps = _python(_STEPS, 8, T_END)["info"]["steps"]
        record.figures["ranks_1_vs_2"] = ranks_compared(16, 0.2)
        record.figures["sheet_10k"] = sheet_10k(2)
    print(f"\nsteps to t = {T_END}: {steps:.0f}" + (" (from t = 0.2)" if args.quick else ""))
    record.figures["sizes"] = rows
    record.figures["steps_to_t5"] = steps
    record.figures["newton"] = newton
    record.figures["model"] = model(rows, newton, steps)
    _print_model(record.figures["model"])
    record.write(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
