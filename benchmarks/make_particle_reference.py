"""Generate ``tests/data/particle_reference.json``: particle moments at growing n.

The kinetic solver's tests compare against these numbers (non-Gaussian scenarios,
where no closed form exists), and ``tests/test_particles_accuracy.py`` checks that they
converge as n grows. Run from the repository root:

    .venv/bin/python benchmarks/make_particle_reference.py [--quick]

(about 10 minutes on 2 cores; ``--quick`` divides every n by 16 for a smoke run and
writes to ``out/particle_reference_quick.json`` instead).

File layout (JSON; every number rounded to 6 significant digits)::

    {
      "format": "fpsolver-particle-reference/1",
      "generated_by": "benchmarks/make_particle_reference.py",
      "moments": "per site bin: mean E[v_a], var E[y_a^2], cov_ei E[y_e y_i],
                  skewness E[y^3]/var^1.5, kurtosis E[y^4]/var^2 (plain: Gaussian = 3),
                  population moments (divisor N = pairs in the bin)",
      "standard_errors": "se_mean = sqrt(var/N), se_var = var sqrt((kurtosis-1)/N),
                          se_skewness = sqrt(6/N), se_kurtosis = sqrt(24/N) (i.i.d.
                          sampling; the finite-n bias O(n^-1/2) of MODEL 2c comes on top)",
      "scenarios": {
        "<name>": {
          "scenario": "<shipped scenario name>",
          "overrides": ["key=value", ...],      # applied with load_scenario(name, overrides)
          "times": [t_0, ...],                  # T times (subset of the record grid)
          "sites": [k_0, ...],                  # S site indices kept (all for mean-field)
          "x": [[x_k...], ...],                 # their coordinates (S, dim)
          "runs": [                             # increasing n
            {"n": int, "dt": float, "seed": int, "pairs_per_site": int,
             "wall_time": float, "scheme": "linearly-implicit",
             "mean": [T][S][2], "var": [T][S][2], "cov_ei": [T][S],
             "skewness": [T][S][2], "kurtosis": [T][S][2],
             "se_mean": [T][S][2], "se_var": [T][S][2],
             "se_skewness": [T][S], "se_kurtosis": [T][S]}, ...]
        }, ...
      }
    }

      "marginals": {                            # bistable, largest n, last time
        "scenario", "n", "seed", "time", "pairs": N (snapshot pairs binned),
        "edges": [B+1] (the vertex lines of the scenario's uniform kinetic mesh),
        "counts_e": [B], "counts_i": [B]        # histogram of y = v - mean(v)
      }

Index order is [time][site][population], population 0 = e, 1 = i.
Scenarios: ``bistable`` (mean-field; n = 1e4, 1e5, 1e6) and ``ring-bump`` (64 sites,
grid positions, 256 / 1024 / 4096 pairs per site; every 2nd site stored).
``--marginals-only`` recomputes just the ``marginals`` entry of an existing file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from fpsolver import load_scenario
from fpsolver.particles import run_particles

CASES = {
    "bistable": dict(scenario="bistable", overrides=[], ns=[10**4, 10**5, 10**6],
                     times=[0.0, 0.5, 1.0, 2.0, 4.0], site_stride=1),
    "ring-bump": dict(scenario="ring-bump", overrides=[], ns=[64 * 256, 64 * 1024, 64 * 4096],
                      times=[0.0, 1.0, 2.5, 5.0], site_stride=2),
}


def _round(a) -> list:
    return np.vectorize(lambda x: float(f"{x:.6g}"))(np.asarray(a, dtype=float)).tolist()


def run_case(name: str, case: dict, quick: bool) -> dict:
    out = {"scenario": case["scenario"], "overrides": case["overrides"], "runs": []}
    for n in case["ns"]:
        n = n // 16 if quick else n
        sc = load_scenario(case["scenario"], case["overrides"] + [f"n={n}"])
        start = time.perf_counter()
        r = run_particles(sc, progress=False)
        wall = time.perf_counter() - start
        ti = [int(np.argmin(abs(r.t - t))) for t in case["times"]]
        si = list(range(0, r.sites.count, case["site_stride"]))
        N = r.extra["count"][1][si].astype(float)
        var = np.stack([r.cov[:, :, 0, 0], r.cov[:, :, 1, 1]], -1)[ti][:, si]
        kurt = r.extra["kurtosis"][1][ti][:, si]
        out["times"] = [float(r.t[i]) for i in ti]
        out["sites"] = si
        out["x"] = _round(r.sites.points[si])
        out["runs"].append({
            "n": n, "dt": sc.dt, "seed": sc.seed, "pairs_per_site": int(N[0]),
            "wall_time": round(wall, 2), "scheme": r.info["scheme"],
            "mean": _round(r.vbar[ti][:, si]), "var": _round(var),
            "cov_ei": _round(r.cov[ti][:, si, 0, 1]),
            "skewness": _round(r.extra["skewness"][1][ti][:, si]), "kurtosis": _round(kurt),
            "se_mean": _round(np.sqrt(var / N[None, :, None])),
            "se_var": _round(var * np.sqrt(np.maximum(kurt - 1, 0) / N[None, :, None])),
            "se_skewness": _round(np.broadcast_to(np.sqrt(6 / N), (len(ti), len(si)))),
            "se_kurtosis": _round(np.broadcast_to(np.sqrt(24 / N), (len(ti), len(si)))),
        })
        print(f"{name}: n = {n}, {wall:.1f} s", file=sys.stderr, flush=True)
    return out


MARGINALS = dict(scenario="bistable", n=10**6, time=4.0)


def run_marginals(quick: bool) -> dict:
    """Histograms of y_e, y_i (snapshot pairs) on the kinetic mesh's vertex lines.

    Bins between the vertex lines of the scenario's uniform kinetic mesh: there the FE
    distribution function is exact by quadrature.
    """
    n = MARGINALS["n"] // 16 if quick else MARGINALS["n"]
    sc = load_scenario(MARGINALS["scenario"], [f"n={n}", f"t_end={MARGINALS['time']}",
                                               f"record.snapshots=[{MARGINALS['time']}]"])
    start = time.perf_counter()
    r = run_particles(sc, progress=False)
    state = r.extra["state"][1][-1]                     # (pairs, population)
    y = state - state.mean(axis=0)
    kin = sc.kinetic
    if kin.grading or kin.domain != "box":
        raise SystemExit("marginals need a uniform box mesh (kinetic.grading = 0)")
    edges = np.linspace(-kin.half_width, kin.half_width, kin.cells + 1)
    counts = [np.histogram(y[:, b], edges)[0] for b in range(2)]
    print(f"marginals: n = {n}, {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return {"scenario": sc.name, "n": n, "seed": sc.seed, "time": MARGINALS["time"],
            "pairs": len(y), "edges": _round(edges),
            "counts_e": counts[0].tolist(), "counts_i": counts[1].tolist()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n / 16, write to out/")
    parser.add_argument("--out", default=None, help="output file")
    parser.add_argument("--marginals-only", action="store_true",
                        help="recompute only the 'marginals' entry of the existing file")
    args = parser.parse_args(argv)
    default = "out/particle_reference_quick.json" if args.quick else \
        "tests/data/particle_reference.json"
    path = Path(args.out or default)
    if args.marginals_only:
        data = json.loads(path.read_text())
        data["marginals"] = run_marginals(args.quick)
        path.write_text(json.dumps(data, separators=(",", ":")) + "\n")
        print(f"updated {path}", file=sys.stderr)
        return 0
    data = {
        "format": "fpsolver-particle-reference/1",
        "generated_by": "benchmarks/make_particle_reference.py",
        "moments": "per site bin: mean E[v_a], var E[y_a^2], cov_ei E[y_e y_i], skewness "
                   "E[y^3]/var^1.5, kurtosis E[y^4]/var^2 (plain: Gaussian = 3); population "
                   "moments (divisor N = pairs in the bin); index order [time][site][population]",
        "standard_errors": "se_mean = sqrt(var/N), se_var = var sqrt((kurtosis-1)/N), "
                           "se_skewness = sqrt(6/N), se_kurtosis = sqrt(24/N) (i.i.d. sampling; "
                           "the finite-n bias O(n^-1/2) of MODEL 2c comes on top)",
        "scenarios": {name: run_case(name, case, args.quick) for name, case in CASES.items()},
        "marginals": run_marginals(args.quick),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
