"""Generate ``tests/data/kinetic_particle_reference.json``: particle answers.

For the kinetic solver's non-Gaussian accuracy tests (``tests/test_kinetic_accuracy.py``).

The particle simulator is an independent method (Monte Carlo of the finite network, no
finite elements), so these are accuracy references for the kinetic limit up to the
sampling error and the O(n^-1/2) finite-n offset. Run from the repository root:

    .venv/bin/python tests/programs/make_kinetic_references.py   # ~25 min on 2 cores

Cases: ``ring-mod`` (24 sites, 10^4 pairs per site) and ``torus-cubic`` (36 sites,
10^4 pairs per site, and ``torus-cubic-large`` with 2.56 x 10^5) from ``tests/data``:
per site mean, variance, e-i covariance and their i.i.d. standard errors at the stored
times; ``bistable-narrow`` / ``bistable-wide`` (the shipped ``bistable`` with its wells
3x narrower / wider, n = 10^6): the same moments plus histograms of y = v - mean(v) at
t = 4 on 400 bins over the sample's range.
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
DATA = ROOT / "tests" / "data"
OUT = DATA / "kinetic_particle_reference.json"
# bistable-narrow/-wide: the shipped well widths (1.2, 0.8) divided / multiplied by 3
CASES = {
    "ring-mod": dict(scenario=str(DATA / "ring-mod.toml"), overrides=["n=240000"],
                     times=[1.0, 2.0, 3.0], histogram=False),
    "torus-cubic": dict(scenario=str(DATA / "torus-cubic.toml"), overrides=["n=360000"],
                        times=[1.0, 2.0], histogram=False),
    # the same at 25.6x the pairs: the particles' distance to the limit must fall ~n^-1/2
    "torus-cubic-large": dict(scenario=str(DATA / "torus-cubic.toml"),
                              overrides=["n=9216000"], times=[1.0, 2.0], histogram=False),
    "bistable-narrow": dict(scenario="bistable", times=[1.0, 4.0], histogram=True,
                            overrides=["n=1000000", "dynamics.width=[0.4, 0.26666666666666666]"]),
    "bistable-wide": dict(scenario="bistable", times=[1.0, 4.0], histogram=True,
                          overrides=["n=1000000", "dynamics.width=[3.6, 2.4]"]),
}


def _round(a) -> list:
    return np.vectorize(lambda x: float(f"{x:.7g}"))(np.asarray(a, dtype=float)).tolist()


def run_case(name: str, case: dict) -> dict:
    t_end = max(case["times"])
    sets = case["overrides"] + [f"t_end={t_end}"]
    if case["histogram"]:
        sets.append(f"record.snapshots=[{t_end}]")
    sc = load_scenario(case["scenario"], sets)
    start = time.perf_counter()
    r = run_particles(sc, progress=False)
    wall = time.perf_counter() - start
    ti = [int(np.argmin(abs(r.t - t))) for t in case["times"]]
    N = r.extra["count"][1].astype(float)
    var = np.stack([r.cov[:, :, 0, 0], r.cov[:, :, 1, 1]], -1)[ti]
    kurt = r.extra["kurtosis"][1][ti]
    out = {"scenario": case["scenario"] if "/" not in case["scenario"]
           else str(Path(case["scenario"]).relative_to(ROOT)),
           "overrides": sets, "times": [float(r.t[i]) for i in ti], "n": sc.n,
           "seed": sc.seed, "dt": sc.dt, "pairs_per_site": int(N.min()),
           "wall_time": round(wall, 1),
           "mean": _round(r.vbar[ti]), "var": _round(var), "cov_ei": _round(r.cov[ti][..., 0, 1]),
           "kurtosis": _round(kurt),
           "se_mean": _round(np.sqrt(var / N[None, :, None])),
           "se_var": _round(var * np.sqrt(np.maximum(kurt - 1, 0) / N[None, :, None]))}
    if case["histogram"]:
        y = r.extra["state"][1][-1]
        y = y - y.mean(axis=0)
        for b, pop in enumerate("ei"):
            edges = np.linspace(y[:, b].min(), y[:, b].max(), 401)
            out[f"edges_{pop}"] = _round(edges)
            out[f"counts_{pop}"] = np.histogram(y[:, b], edges)[0].tolist()
        out["pairs"] = len(y)
    print(f"{name}: n = {sc.n}, {wall:.1f} s", file=sys.stderr, flush=True)
    return out


def main() -> int:
    names = sys.argv[1:] or list(CASES)
    data = json.loads(OUT.read_text()) if OUT.exists() else {
        "format": "fpsolver-kinetic-particle-reference/1",
        "generated_by": "tests/programs/make_kinetic_references.py",
        "index_order": "[time][site][population], population 0 = e, 1 = i",
        "standard_errors": "se_mean = sqrt(var/N), se_var = var sqrt((kurtosis-1)/N), "
                           "N = pairs per site (i.i.d. sampling; the finite-n offset "
                           "O(n^-1/2) of MODEL 2c comes on top)",
        "cases": {}}
    for name in names:
        data["cases"][name] = run_case(name, CASES[name])
        OUT.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
