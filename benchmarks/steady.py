"""Stationary states: ``fpsolver steady`` (Newton) against a long ``fpsolver kinetic`` run.

    flock /tmp/fpsolver-bench.lock .venv/bin/python benchmarks/steady.py [--quick]

For ``bistable`` (T = 16) and ``ring-bump`` (T = 14) the kinetic run goes on until its
slowest mode (the leading eigenvalue of ``fpsolver spectrum``: -1.03 and -1.31) has
decayed below 1e-7; the stationary solve then uses the kinetic run's final mesh (its
Peclet refinements), so the two differ by the time discretisation and the remaining
transient only. Printed and stored: wall times (setup included), their ratio, and the
largest differences of vbar (relative to max(1, |vbar|)) and K (relative) over sites,
with the kinetic run's own error estimate and its largest drift of the mean of y (0 in
the limit and in the stationary solve: a vbar difference of that size is the kinetic
run's error).
``--quick``: ``tanh`` to T = 8 (a smoke run, written to a temporary file).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from evidence import Record, settle

CASES = {"bistable": 16.0, "ring-bump": 14.0}
QUICK = {"tanh": 8.0}


def compare(name: str, t_end: float) -> dict:
    """Run both solvers on ``name`` and return the figures."""
    from mpi4py import MPI

    from fpsolver.kinetic import run_kinetic
    from fpsolver.kinetic.numerics import resolve_numerics
    from fpsolver.model import build_model
    from fpsolver.scenario import load_scenario
    from fpsolver.steady import solve_steady

    scenario = load_scenario(name, [f"t_end={t_end}", f"record.every={t_end / 4}",
                                    "record.snapshots=[]"])
    start = time.perf_counter()
    kin = run_kinetic(scenario, comm=MPI.COMM_SELF, progress=False)
    t_kin = time.perf_counter() - start
    model = build_model(scenario)
    numerics = resolve_numerics(model)
    numerics.cells = tuple(kin.info["cells"])
    start = time.perf_counter()
    st = solve_steady(model, numerics=numerics, comm=MPI.COMM_SELF, refine=False)
    t_st = time.perf_counter() - start
    v_k, v_s = kin.vbar[-1], st.vbar
    K_k = np.stack([kin.cov[-1][:, 0, 0], kin.cov[-1][:, 1, 1]], 1)
    K_s = np.stack([st.cov[:, 0, 0], st.cov[:, 1, 1]], 1)
    dv = float((np.abs(v_k - v_s) / np.maximum(1.0, np.abs(v_s))).max())
    dK = float((np.abs(K_k - K_s) / np.abs(K_s)).max())
    out = {"t_end": t_end, "sites": model.n_sites, "cells": list(numerics.cells),
           "kinetic_seconds": round(t_kin, 2), "kinetic_steps": int(kin.info["steps"]),
           "steady_seconds": round(t_st, 2), "speedup": round(t_kin / t_st, 1),
           "newton_iterations": st.info["newton_iterations"],
           "max_vbar_difference": dv, "max_K_difference": dK,
           "kinetic_error_estimate": kin.info["error_estimate"]["K"],
           "kinetic_error_estimate_vbar": kin.info["error_estimate"]["vbar"],
           "kinetic_max_mean_drift": kin.info["max_mean_drift"]}
    print(f"{name}: kinetic to T = {t_end:g} {t_kin:.1f} s ({out['kinetic_steps']} steps), "
          f"steady {t_st:.1f} s ({out['newton_iterations']} Newton iterations): "
          f"{out['speedup']}x; max |dvbar| {dv:.1e}, max |dK|/K {dK:.1e}", flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run (tanh only)")
    ap.add_argument("--out", help="write the results here (default: benchmarks/results/"
                    "steady.json; with --quick a temporary file)")
    args = ap.parse_args(argv)
    record = Record("steady", argv, quick=args.quick)
    for name, t_end in (QUICK if args.quick else CASES).items():
        if not args.quick:
            settle()
        record.figures[name] = compare(name, t_end)
    record.write(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
