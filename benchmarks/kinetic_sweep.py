"""Cost and accuracy of the kinetic defaults on the Gaussian-exact sweep (issue 8).

    .venv/bin/python benchmarks/kinetic_sweep.py [--cases tanh vbar-10 ...]

For every case of ``tests/test_kinetic_sweep.py`` (t_end = 2, exact answer: the Gaussian
reduction) it runs the kinetic solver twice on one rank with one BLAS thread:

- ``auto``: the default numerics (adaptive frame, mesh and steps, kinetic.tol = 1e-4);
- ``box``: the previous release's fixed box (no frame, half width 8, 88 sinh-graded P2
  cells, BDF2 at dt = 0.0025: the shipped ``tanh`` settings), the baseline of "cost vs
  today".

and prints/writes (a failed run: its error message) the relative K error, the vbar error,
the run's own estimate, the smallest density / peak and the wall time (``run_kinetic``'s,
setup included), with the cost relative to ``tanh`` in the box. Results go to
``benchmarks/results/kinetic-sweep.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from evidence import Record

BOX = ["kinetic.frame=fixed", "kinetic.half_width=8.0", "kinetic.cells=88",
       "kinetic.grading=2.0", "kinetic.dt=0.0025"]


def run_case(name: str, sets: list, numerics: list) -> dict:
    from mpi4py import MPI
    from test_kinetic_sweep import true_errors

    from fpsolver.errors import FpsolverError
    from fpsolver.gaussian import run_gaussian
    from fpsolver.kinetic import run_kinetic
    from fpsolver.scenario import load_scenario

    sc = load_scenario(name, ["t_end=2.0", "record.every=0.1"] + sets + numerics)
    try:
        kin = run_kinetic(sc, comm=MPI.COMM_SELF, progress=False)
    except FpsolverError as exc:  # the old box fails on some cases: record why
        nan = float("nan")
        return {"failed": str(exc), "err_K": nan, "err_vbar": nan, "seconds": nan}
    err_K, err_v = true_errors(kin, run_gaussian(sc))
    est = kin.info["error_estimate"]
    return {"err_K": err_K, "err_vbar": err_v, "est_K": est["K"], "est_vbar": est["vbar"],
            "min_density_relative": kin.info["min_density_relative"],
            "seconds": kin.info["wall_time"], "steps": kin.info["steps"],
            "cells": list(kin.info["cells"])}


def main() -> None:
    from test_kinetic_sweep import CASES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"
                                             / "kinetic-sweep.json"))
    args = parser.parse_args()
    record = Record("kinetic-sweep")
    rows = {}
    base = run_case(*CASES["tanh"], BOX)["seconds"]
    head = (f"{'case':18s} {'K err':>8s} {'K est':>8s} {'v err':>8s} {'v est':>8s} "
            f"{'min/peak':>9s} {'s':>6s} {'x tanh':>6s} | {'box K err':>9s} {'box s':>6s}")
    print(head)
    for case in args.cases:
        auto = run_case(*CASES[case], [])
        box = run_case(*CASES[case], BOX)
        rows[case] = {"auto": auto, "box": box, "cost_vs_tanh_box": auto["seconds"] / base}
        if "failed" in box:
            print(f"   box: {box['failed']}")
        print(f"{case:18s} {auto['err_K']:8.1e} {auto['est_K']:8.1e} {auto['err_vbar']:8.1e} "
              f"{auto['est_vbar']:8.1e} {auto['min_density_relative']:9.1e} "
              f"{auto['seconds']:6.1f} {auto['seconds'] / base:6.2f} | "
              f"{box['err_K']:9.1e} {box['seconds']:6.1f}", flush=True)
    record.figures = {"tanh_box_seconds": base, "cases": rows}
    record.write(args.out)


if __name__ == "__main__":
    main()
