"""Generate ``tests/data/sheet_particle_reference.json``: particles on the shipped ``sheet``.

For the per-site check of the kinetic solver on the 32 x 32 torus (``tests/test_sheet.py``).
The particle simulator is an independent method (Monte Carlo of the finite network, no
finite elements), so its per-site moments are references for the kinetic limit up to the
sampling error and the O(n^-1/2) finite-n offset. Run from the repository root:

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python tests/programs/make_sheet_reference.py

(about 10 minutes on one core). ``n = 1126400``: 1100 pairs at every one of the 1024
sites (grid positions). Stored per site, at t = 0.5 (densities still relaxing) and at
t_end = 5 (settled): mean and variance of v_e, v_i and their i.i.d. standard errors, as
in ``tests/programs/make_kinetic_references.py`` (se_mean = sqrt(var / N),
se_var = var sqrt((kurtosis - 1) / N)); moments to 7 digits, errors to 3, so the file
stays below 300 KB.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from fpsolver import load_scenario
from fpsolver.particles import run_particles

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "sheet_particle_reference.json"
TIMES = [0.5, 5.0]
OVERRIDES = ["n=1126400", "record.every=0.5", "record.snapshots=[]"]


def _round(a, digits: int) -> list:
    return np.vectorize(lambda x: float(f"{x:.{digits}g}"))(np.asarray(a, dtype=float)).tolist()


def main() -> int:
    sc = load_scenario("sheet", OVERRIDES + [f"t_end={max(TIMES)}"])
    start = time.perf_counter()
    r = run_particles(sc, progress=False)
    wall = time.perf_counter() - start
    ti = [int(np.argmin(np.abs(r.t - t))) for t in TIMES]
    N = r.extra["count"][1].astype(float)  # pairs per site
    var = np.stack([r.cov[:, :, 0, 0], r.cov[:, :, 1, 1]], -1)[ti]
    kurt = r.extra["kurtosis"][1][ti]
    data = {
        "format": "fpsolver-sheet-particle-reference/1",
        "generated_by": "tests/programs/make_sheet_reference.py",
        "index_order": "[time][site][population], population 0 = e, 1 = i; site k at "
                       "x = 2 pi (k // 32, k % 32) / 32",
        "standard_errors": "se_mean = sqrt(var/N), se_var = var sqrt((kurtosis-1)/N), "
                           "N = pairs per site (i.i.d. sampling; the finite-n offset "
                           "O(n^-1/2) of MODEL 2c comes on top)",
        "scenario": "sheet", "overrides": OVERRIDES, "times": [float(r.t[i]) for i in ti],
        "n": sc.n, "seed": sc.seed, "dt": sc.dt, "pairs_per_site": int(N.min()),
        "wall_time": round(wall, 1),
        "mean": _round(r.vbar[ti], 7), "var": _round(var, 7),
        "se_mean": _round(np.sqrt(var / N[None, :, None]), 3),
        "se_var": _round(var * np.sqrt(np.maximum(kurt - 1, 0) / N[None, :, None]), 3),
    }
    OUT.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"sheet: n = {sc.n}, {wall:.1f} s; wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KB)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
