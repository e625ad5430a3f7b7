"""Kinetic solver benchmark: seconds per step, parallel speedup, and cost at equal accuracy.

    flock /tmp/fpsolver-bench.lock .venv/bin/python benchmarks/kinetic.py [--quick] \
        [--part scenarios|ou|particles]

- ``scenarios``: ``tanh`` (one site) and ``ring-bump`` (64 sites, T = 5) on 1 and 2 ranks
  (re-launched with mpirun, no thread variable set: fpsolver's default placement): seconds
  per step, total (``run_kinetic``'s wall time, setup included; process wall time in
  brackets), speedup.
- ``ou``: the 2-d OU problem of :mod:`fpsolver.kinetic.ou` (exact Gaussian solution) to
  a density L1 error, fpsolver (P2, sinh-graded box a = 2, the solver's default grading;
  L1 by quadrature of |p_h - p|) against ``fplanck`` (finite volumes on the same box,
  propagated with ``expm_multiply``, i.e. exact in time; L1 = sum |p_i / h^2 - p(y_i)| h^2
  over its grid points, the favourable choice for fplanck: a continuous reconstruction
  would add interpolation error). Time = setup + solve; time to reach an L1 target: see
  :func:`_time_to` (interpolated on the measured cost/error front, extrapolated beyond).
- ``particles``: ``bistable``; reference = a fine FE solution. FE wall time to reach a
  relative error e in variance and kurtosis (max over the record times 0.5..4 and both
  populations) against the particle simulator, whose error is taken as its largest
  relative i.i.d. standard error c / sqrt(n) (c from tests/data/particle_reference.json;
  the finite-n bias O(n^-1/2) and the O(dt) time-step bias come on top): n_e = (c / e)^2
  pairs, time 2 n_e steps / rate, the rate (neuron-steps per second of the time loop,
  recording included, setup excluded) measured in this run at large n. The errors of the
  stored particle runs against the FE reference are printed alongside.

Timings on a shared machine are noisy: the load average is printed and stored; compare
ratios from one run. No figure here is asserted anywhere. The figures go to
``benchmarks/results/kinetic.json`` (:mod:`evidence`; a ``--quick`` run writes a temporary
file instead), from which ``benchmarks/readme_table.py`` makes the README's speed table.
Before each part the run waits (up to 3 x 60 s) while the 1-minute load is above 2.5.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from evidence import Record, settle

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "particle_reference.json"
# the thread variables are removed: the runs get fpsolver's own placement (fpsolver/threads.py),
# what a user gets from a plain `mpirun -n 2 fpsolver kinetic ...`
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS", "FPSOLVER_THREADS")


def _load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def _front(points):
    """The measured points (err, seconds, label) that no cheaper point beats, by time."""
    front, best = [], np.inf
    for err, t, label in sorted(points, key=lambda p: p[1]):
        if err < best:
            front.append((err, t, label))
            best = err
    return front


def _fit(points):
    """(a, b) of t = a e^-b by log-log least squares.

    Over the three most accurate points of the cost/error front.
    """
    pts = _front(points)[-3:]
    slope, icpt = np.polyfit(np.log([p[0] for p in pts]), np.log([p[1] for p in pts]), 1)
    return float(np.exp(icpt)), float(-slope)


def _time_to(points, target):
    """(seconds, how) to reach error <= target from measured points (err, seconds, label).

    On the cost/error front: the cheapest point already below the target; else log-log
    interpolation between the two front points around the target; below every measured
    error, the fit of :func:`_fit` ("extrapolated").
    """
    front = _front(points)
    below = [i for i, p in enumerate(front) if p[0] <= target]
    if not below:
        a, b = _fit(points)
        return a * target ** -b, "extrapolated"
    i = below[0]
    if i == 0:
        return front[0][1], front[0][2]
    (e1, t1, l1), (e2, t2, l2) = front[i - 1], front[i]
    w = np.log(e1 / target) / np.log(e1 / e2)
    return float(np.exp((1 - w) * np.log(t1) + w * np.log(t2))), f"between {l1} and {l2}"


# -- 1 and 2 ranks ---------------------------------------------------------------------
def _run_scenario(name, sets, ranks):
    code = ("import json; import dolfinx_solver; from mpi4py import MPI;"
            "from fpsolver import load_scenario; from fpsolver.kinetic import run_kinetic;"
            f"sc=load_scenario({name!r}, {sets!r}); r=run_kinetic(sc, progress=False);"
            "MPI.COMM_WORLD.rank==0 and print(json.dumps(r.info))")
    cmd = [sys.executable, "-c", code]
    if ranks > 1:
        cmd = [str(Path(sys.executable).parent / "mpirun"), "-n", str(ranks)] + cmd
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True,
                         env={k: v for k, v in os.environ.items()
                              if k not in THREAD_VARIABLES}).stdout
    info = json.loads(out.strip().splitlines()[-1])
    info["process_time"] = time.perf_counter() - start
    return info


def bench_scenarios(quick: bool) -> dict:
    print(f"\nseconds per step / total on 1 and 2 ranks, default threads ({_load()})")
    out = {"load_before": list(os.getloadavg())}
    cases = [("tanh", ["t_end=0.5"] if quick else []),
             ("ring-bump", ["t_end=0.5"] if quick else [])]
    for name, sets in cases:
        walls, runs = {}, {}
        for ranks in (1, 2):
            info = _run_scenario(name, sets, ranks)
            walls[ranks] = info["wall_time"]
            runs[ranks] = {k: info[k] for k in ("seconds_per_step", "wall_time", "setup_time",
                                                "process_time", "steps", "dofs",
                                                "factorisations") if k in info}
            print(f"  {name:10s} {ranks} rank(s): {info['seconds_per_step']:.4f} s/step, "
                  f"total {info['wall_time']:.1f} s (setup {info['setup_time']:.1f} s; "
                  f"process {info['process_time']:.1f} s), {info['steps']} steps, "
                  f"{info['dofs']} dofs/site", flush=True)
        print(f"  {name:10s} 2-rank speedup {walls[1] / walls[2]:.2f} (total), {_load()}")
        out[name] = {"overrides": sets, "ranks": runs, "speedup": walls[1] / walls[2]}
    out["load_after"] = list(os.getloadavg())
    return out


# -- OU: fpsolver vs fplanck -------------------------------------------------------------
def _ou_exact(t):
    from fpsolver.gaussian import lyapunov_covariance
    from fpsolver.kinetic.ou import OU_A, OU_D, OU_K0, OU_M0

    K = lyapunov_covariance(OU_A, OU_D, OU_K0, np.array([t]))[0]
    return np.exp(-np.diag(OU_A) * t) * OU_M0, K


def _gauss(m, K):
    P = np.linalg.inv(K)
    c = 1.0 / (2 * np.pi * np.sqrt(np.linalg.det(K)))

    def pdf(y0, y1):
        u, v = y0 - m[0], y1 - m[1]
        return c * np.exp(-0.5 * (P[0, 0] * u * u + 2 * P[0, 1] * u * v + P[1, 1] * v * v))
    return pdf


def fplanck_ou(N: int, t_end: float = 2.0, half_width: float = 4.0) -> dict:
    """The OU problem with fplanck on N x N cells of the box; L1 at its grid points.

    fplanck solves d_t p = -div(F/drag p) + div(kT/drag grad p) (k Boltzmann's
    constant): drag 1, potential U = y^T A y / 2 (force -A y) and kT_a = D_aa / 2.
    """
    from fplanck.potentials import harmonic_potential
    from fplanck.solver import FokkerPlanck
    from scipy import constants

    from fpsolver.kinetic.ou import OU_A, OU_D, OU_K0, OU_M0

    h = 2 * half_width / N
    start = time.perf_counter()
    fp = FokkerPlanck(temperature=np.diag(OU_D) / (2 * constants.k), drag=1.0,
                      extent=[2 * half_width] * 2, resolution=h,
                      potential=harmonic_potential([0.0, 0.0], np.diag(OU_A)))
    setup = time.perf_counter() - start
    start = time.perf_counter()
    p = fp.propagate(_gauss(OU_M0, OU_K0), t_end)  # normalised to sum 1
    seconds = time.perf_counter() - start
    exact = _gauss(*_ou_exact(t_end))(*fp.grid)
    return {"l1": float(np.abs(p / h**2 - exact).sum() * h**2), "seconds": seconds,
            "setup": setup, "dofs": int(p.size)}


def bench_ou(quick: bool) -> dict:
    from mpi4py import MPI

    from fpsolver.kinetic.ou import solve_ou

    print(f"\n2-d OU on [-4,4]^2 to T = 2: density L1 error vs wall time ({_load()})")
    out = {"load_before": list(os.getloadavg())}
    solve_ou(MPI.COMM_SELF, 2, 8, dt=0.1, grading=2.0)  # compile the forms
    fe = []
    for cells, dt in ([(16, 0.04), (32, 0.04), (48, 0.02)] if quick else
                      [(16, 0.04), (24, 0.04), (32, 0.04), (48, 0.02), (64, 0.02),
                       (64, 0.01), (96, 0.01), (128, 0.005)]):
        r = solve_ou(MPI.COMM_SELF, 2, cells, dt=dt, grading=2.0)
        total = r["setup"] + r["seconds"]
        fe.append((r["l1"], total, f"P2 {cells}^2 dt={dt}"))
        out.setdefault("fpsolver", []).append({"cells": cells, "dt": dt, "dofs": r["dofs"],
                                               "l1": r["l1"], "seconds": total,
                                               "setup": r["setup"]})
        print(f"  fpsolver P2 {cells:3d}^2 graded dt={dt:<6} {r['dofs']:6d} dofs  L1 "
              f"{r['l1']:.2e}  {total:.2f} s (setup {r['setup']:.2f})", flush=True)
    try:
        import fplanck  # noqa: F401
    except ImportError:
        print("  fplanck not installed: .venv/bin/pip install 'fplanck>=1.0' "
              "(or pip install -e '.[bench]') to compare")
        out["fplanck"] = "not installed"
        return out
    fpl = []
    for N in ([20, 40, 80] if quick else [20, 40, 80, 120, 160, 240, 280]):
        r = fplanck_ou(N)
        total = r["setup"] + r["seconds"]
        fpl.append((r["l1"], total, f"{N}^2 cells"))
        out.setdefault("fplanck", []).append({"cells": N, "dofs": r["dofs"], "l1": r["l1"],
                                              "seconds": total, "setup": r["setup"]})
        print(f"  fplanck  {N:3d}^2 cells        {r['dofs']:6d} dofs  L1 {r['l1']:.2e}  "
              f"{total:.2f} s (setup {r['setup']:.2f})", flush=True)
    a, b = _fit(fpl)
    print(f"  fplanck, fit to its three most accurate front points: t = {a:.3g} L1^-{b:.2f} s")
    out["fplanck_fit"] = {"a": a, "b": b, "form": "seconds = a L1^-b"}
    out["targets"] = []
    for target in ([3e-3, 1e-3] if quick else [1e-3, 3e-4, 1e-4, 3e-5]):
        (mine, how), (theirs, their_how) = _time_to(fe, target), _time_to(fpl, target)
        print(f"  L1 <= {target:.0e}: fpsolver {mine:.2f} s ({how}), fplanck {theirs:.2f} s "
              f"({their_how}): fpsolver {theirs / mine:.1f}x faster")
        out["targets"].append({"l1": target, "fpsolver_seconds": mine, "fpsolver_how": how,
                               "fplanck_seconds": theirs, "fplanck_how": their_how,
                               "ratio": theirs / mine})
    print(f"  ({_load()})")
    out["load_after"] = list(os.getloadavg())
    return out


# -- bistable: FE vs particles at equal accuracy ------------------------------------------
def _bistable_fe(data, sets):
    """Wall time and (var, kurtosis) at the reference times, shape (times, 2) each."""
    from fpsolver import load_scenario
    from fpsolver.kinetic import run_kinetic

    sc = load_scenario(data["scenario"], data["overrides"] + sets)
    start = time.perf_counter()
    res = run_kinetic(sc, progress=False)
    wall = time.perf_counter() - start
    idx = [int(np.argmin(np.abs(res.t - t))) for t in data["times"]]
    var = np.stack([res.cov[idx, 0, a, a] for a in range(2)], axis=1)
    return wall, var, res.extra["kurtosis"][1][idx, 0, :]


def bench_particles(quick: bool) -> dict:
    if not REFERENCE.exists():
        print(f"\nbistable vs particles: no {REFERENCE.relative_to(ROOT)} yet")
        return {"skipped": f"no {REFERENCE.relative_to(ROOT)}"}
    from mpi4py import MPI

    from fpsolver import load_scenario
    from fpsolver.errors import FpsolverError
    from fpsolver.particles import run_particles

    if MPI.COMM_WORLD.size > 1:
        return {"skipped": "runs on one rank only"}
    data = json.loads(REFERENCE.read_text())["scenarios"]["bistable"]
    use = np.array(data["times"]) > 0
    print(f"\nbistable, T = {data['times'][-1]}: FE vs particles at equal relative error in "
          f"variance and kurtosis ({_load()})")
    out = {"load_before": list(os.getloadavg()), "times": data["times"]}
    ref_sets = (["kinetic.cells=48", "kinetic.dt=0.01", "kinetic.half_width=4.5"] if quick
                else ["kinetic.cells=96", "kinetic.dt=0.005", "kinetic.half_width=4.5"])
    _, var_ref, kurt_ref = _bistable_fe(data, ref_sets)
    print(f"  reference: FE P2 {' '.join(ref_sets)}")
    out["reference"] = ref_sets

    def rel_err(var, kurt):
        return max(np.abs(var / var_ref - 1)[use].max(), np.abs(kurt / kurt_ref - 1)[use].max())

    fe = []
    ladder = ([(1, 24, 0.04), (2, 24, 0.02)] if quick else
              [(1, 16, 0.04), (1, 24, 0.04), (2, 16, 0.04), (2, 24, 0.02), (2, 48, 0.01),
               (2, 96, 0.01)])
    for deg, cells, dt in ladder:
        try:
            wall, var, kurt = _bistable_fe(data, [f"kinetic.degree={deg}",
                                                  f"kinetic.cells={cells}", f"kinetic.dt={dt}"])
        except FpsolverError as exc:  # too coarse for the solver's checks: record why
            print(f"  FE P{deg} {cells:3d}^2 dt={dt:<5} failed: {exc}", flush=True)
            out.setdefault("fe", []).append({"degree": deg, "cells": cells, "dt": dt,
                                             "failed": str(exc)})
            continue
        err = rel_err(var, kurt)
        fe.append((err, wall, f"P{deg} {cells}^2 dt={dt}"))
        out.setdefault("fe", []).append({"degree": deg, "cells": cells, "dt": dt,
                                         "rel_error": err, "seconds": wall})
        print(f"  FE P{deg} {cells:3d}^2 dt={dt:<5} rel. error {err:.2e}  {wall:.2f} s",
              flush=True)
    # particle error: i.i.d. sampling error c/sqrt(n) (lower bound), c from the reference
    c = 0.0
    for run in data["runs"]:
        n, var, kurt = run["n"], np.array(run["var"])[:, 0], np.array(run["kurtosis"])[:, 0]
        se = max((np.array(run["se_var"])[:, 0] / var)[use].max(),
                 (np.array(run["se_kurtosis"]) / kurt)[use].max())
        c = max(c, se * np.sqrt(n))
        out.setdefault("stored_particle_runs", []).append(
            {"n": n, "wall_time": run["wall_time"], "rel_error_vs_fe": rel_err(var, kurt),
             "sampling_se": se})
        print(f"  particles n = {n:.0e} (reference file, {run['wall_time']:.0f} s): rel. error "
              f"vs FE {rel_err(var, kurt):.2e}, sampling se {se:.2e}")
    sc = load_scenario(data["scenario"], data["overrides"])
    run_particles(sc.replace(n=1000, t_end=0.01), progress=False)  # compile
    n_meas, t_meas = (10**5, 0.05) if quick else (10**6, 0.2)
    info = run_particles(sc.replace(n=n_meas, t_end=t_meas), progress=False).info
    rate = info["neuron_steps_per_second"]
    steps = int(round(sc.t_end / sc.dt))
    print(f"  particles: measured {rate:.3g} neuron-steps/s at n = {n_meas:.0e} "
          f"({info.get('threads', '?')} threads); error e needs n_e = (c / e)^2 with "
          f"c = {c:.2f}, time 2 n_e {steps} / {rate:.3g} s")
    out["particles"] = {"measured_rate": rate, "measured_n": n_meas, "measured_t_end": t_meas,
                        "threads": info.get("threads"), "c": c, "steps": steps,
                        "model": "modelled: n_e = (c / e)^2 pairs, seconds = 2 n_e steps / "
                                 "measured_rate (i.i.d. sampling error only)"}
    out["targets"] = []
    for target in (1e-2, 3e-3, 1e-3):
        mine, how = _time_to(fe, target)
        n_e = (c / target) ** 2
        t_p = 2 * n_e * steps / rate
        print(f"  e <= {target:.0e}: FE {mine:.2f} s ({how}), particles n = {n_e:.2e} "
              f"{t_p:.3g} s: FE {t_p / mine:.0f}x cheaper")
        out["targets"].append({"rel_error": target, "fe_seconds": mine, "fe_how": how,
                               "particles_n": n_e, "particles_seconds_modelled": t_p,
                               "ratio": t_p / mine})
    print(f"  ({_load()})")
    out["load_after"] = list(os.getloadavg())
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run (short and coarse)")
    ap.add_argument("--part", choices=["scenarios", "ou", "particles"], action="append")
    ap.add_argument("--out", help="write the results here (default: benchmarks/results/"
                    "kinetic.json; with --quick a temporary file)")
    args = ap.parse_args(argv)
    record = Record("kinetic", argv, quick=args.quick)
    previous = None if args.quick or args.out else _previous()
    for part in args.part or ["scenarios", "ou", "particles"]:
        if not args.quick:
            settle()
        record.figures[part] = {"ou": bench_ou, "scenarios": bench_scenarios,
                                "particles": bench_particles}[part](args.quick)
    if previous and args.part:  # a partial run keeps the other parts' stored figures
        for part, figures in previous["figures"].items():
            if part not in record.figures:
                record.figures[part] = {**figures, "measured_on": figures.get(
                    "measured_on", previous["date_utc"])}
    record.write(args.out)
    return 0


def _previous() -> dict | None:
    from evidence import read

    return read("kinetic")


if __name__ == "__main__":
    sys.exit(main())
