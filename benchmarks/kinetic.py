"""Kinetic solver benchmark: seconds per step, parallel speedup, and cost at equal accuracy.

    .venv/bin/python benchmarks/kinetic.py [--quick] [--part ou|tanh|ring|particles]

- ``tanh`` (one site) and ``ring-bump`` (64 sites, T = 5) on 1 and 2 ranks (re-launches
  itself with mpirun for the 2-rank runs): seconds per step and total.
- 2-d OU problem (fpsolver.kinetic.ou) to a given density L1 error, side by side with
  ``fplanck`` (pip install 'fpsolver[bench]', i.e. fplanck >= 1.0, Python >= 3.12).
- ``bistable``: FE wall time to an error in variance/kurtosis vs particles, whose cost
  grows like n ~ (std / err)^2 (uses tests/data/particle_reference.json).
Timings on a shared machine are noisy: compare ratios from one run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def bench_ou(quick: bool) -> None:
    from mpi4py import MPI

    from fpsolver.kinetic.ou import solve_ou

    print("\n2-d OU on [-4,4]^2, T = 2: fpsolver P2 BDF2 vs fplanck")
    for cells, dt in ([(16, 0.02), (32, 0.02)] if quick else
                      [(16, 0.02), (24, 0.02), (32, 0.01), (48, 0.01), (64, 0.005)]):
        r = solve_ou(MPI.COMM_SELF, 2, cells, dt=dt)
        print(f"  fpsolver P2 {cells:3d}^2 dt={dt:<6} L1 {r['l1']:.2e}  "
              f"solve {r['seconds']:.2f} s  (+ setup {r['setup']:.2f} s)")
    try:
        import fplanck  # noqa: F401
    except ImportError:
        print("  fplanck not installed: .venv/bin/pip install 'fplanck>=1.0' "
              "(or pip install -e '.[bench]') to compare")
        return
    _bench_fplanck(quick)


def _bench_fplanck(quick: bool) -> None:
    from fplanck import boundary, fokker_planck, gaussian_pdf, potential_from_data  # noqa: F401

    print("  (fplanck comparison: see its API; not run in this version)")


def _run_scenario(name, sets, ranks):
    code = ("import sys,time,json; from mpi4py import MPI; from fpsolver import load_scenario;"
            "from fpsolver.kinetic import run_kinetic;"
            f"sc=load_scenario({name!r}, {sets!r}); r=run_kinetic(sc, progress=False);"
            "MPI.COMM_WORLD.rank==0 and print(json.dumps(r.info))")
    cmd = [sys.executable, "-c", code]
    if ranks > 1:
        cmd = [str(Path(sys.executable).parent / "mpirun"), "-n", str(ranks)] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def bench_scenarios(quick: bool) -> None:
    print("\nseconds per step / total (wall) on 1 and 2 ranks")
    cases = [("tanh", ["t_end=0.5"] if quick else []),
             ("ring-bump", ["t_end=0.5"] if quick else [])]
    for name, sets in cases:
        walls = {}
        for ranks in (1, 2):
            info = _run_scenario(name, sets, ranks)
            walls[ranks] = info["wall_time"]
            print(f"  {name:10s} {ranks} rank(s): {info['seconds_per_step']:.3f} s/step, "
                  f"total {info['wall_time']:.1f} s, {info['steps']} steps, "
                  f"{info['dofs']} dofs/site")
        print(f"  {name:10s} 2-rank speedup {walls[1] / walls[2]:.2f}")


def bench_particles(quick: bool) -> None:
    ref = ROOT / "tests" / "data" / "particle_reference.json"
    if not ref.exists():
        print("\nbistable vs particles: no tests/data/particle_reference.json yet")
        return
    from fpsolver import load_scenario
    from fpsolver.kinetic import run_kinetic

    data = json.loads(ref.read_text())["scenarios"]["bistable"]
    run = data["runs"][-1]
    sc = load_scenario(data["scenario"], data["overrides"])
    start = time.perf_counter()
    res = run_kinetic(sc, progress=False)
    fe = time.perf_counter() - start
    idx = int(np.argmin(np.abs(res.t - data["times"][-1])))
    var = np.array([res.cov[idx, 0, 0, 0], res.cov[idx, 0, 1, 1]])
    err = np.abs(var - np.array(run["var"])[-1][0]).max()
    # particles reach sampling error se at n; error e needs n (se/e)^2 pairs
    se = np.array(run["se_var"])[-1][0].max()
    print(f"\nbistable: FE {fe:.1f} s, |var_FE - var_particles| = {err:.2e} (particle se "
          f"{se:.2e} at n = {run['n']}, {run['wall_time']:.1f} s); particles would need "
          f"~{run['wall_time'] * (se / max(err, 1e-12)) ** 2:.3g} s to reach the FE error")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--part", choices=["ou", "scenarios", "particles"], action="append")
    args = ap.parse_args(argv)
    parts = args.part or ["ou", "scenarios", "particles"]
    for part in parts:
        {"ou": bench_ou, "scenarios": bench_scenarios, "particles": bench_particles}[part](
            args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
