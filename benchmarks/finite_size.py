"""Finite-size fixed points: particle runs approach the stationary state like n^-1/2.

    flock /tmp/fpsolver-bench.lock .venv/bin/python benchmarks/finite_size.py [--quick]

Issue 10, point 4. On a ring (cosine kernel) and a torus (Gaussian kernel), both with
``space.positions = "iid"`` (tests/data/ring-finite.toml, torus-finite.toml), particle
runs at n = 10^3 ... 10^5 start on the stationary state of ``fpsolver steady`` (vbar at
each pair's position plus fluctuations drawn from its site's stationary density), run a
burn-in of ``BURN`` and then average the per-bin means vbar over ``WINDOW`` time units.
The RMS distance (over sites and both populations) of that average to the stationary
vbar is fitted against n on log-log axes; the slope and its standard error are stored.

What the distance is made of, all O(n^-1/2) at a fixed window T:

- the deterministic finite-n offset of MODEL §2c, sqrt(n) Phi = lambda = -<F> at a
  stationary state; to first order vbar_n - vbar = (dPhi/dvbar)^-1 lambda / sqrt(n) with
  the *total* derivative (densities following vbar). Computed here as the change of the
  stationary state when the input A is replaced by A + m / sqrt(n) (m = <F>), which is
  exactly the stationary system of the finite network at first order ("predicted");
- the random positions: the empirical measure of the x_j differs from rho by O(n^-1/2)
  (on the torus, binned to sites, the bin counts; on the ring the cosine features);
- the sampling error of the time average, O((n T)^-1/2): at a fixed T also n^-1/2, so
  T only decides how much of the distance is noise (the scatter of the fit), not the
  slope. T = 10 keeps it below the offset (see ``noise`` in the results: the standard
  error of the window average from its 5 sub-windows).

What would bend the line: the Euler-Maruyama step (an O(dt) bias independent of n;
dt = 1e-3: on the ring at n = 10^5, seed 100, dt = 2.5e-4 gave the same distance, 4.67e-3
against 4.70e-3; ``--dt-check`` repeats this at dt / 4 on both spaces) and, at small n,
the second-order terms (the balance is 4x stiffer than ring-mod's so that
sqrt(n) |DPhi| >> 1 already at n = 10^3; the torus still shows them at n = 10^3, where a
bin holds ~28 pairs).

On the ring the pairs sit anywhere in their bin, so the recorded bin mean is compared
with the bin mean of the stationary vbar at the pairs' own positions (vbar interpolated
between the sites by its Fourier series; the stationary vbar is smooth). On the torus the
kernel and input are evaluated at the nearest site (binning), so a pair is exactly a
pair of its site and the bin mean is compared with vbar at the site.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
SPACES = {"ring": DATA / "ring-finite.toml", "torus": DATA / "torus-finite.toml"}
LADDER = (1000, 3162, 10000, 31623, 100000)
SEEDS = {1000: 8, 3162: 6, 10000: 4, 31623: 2, 100000: 2}
BURN = 2.0
WINDOW = 10.0
DT = 1e-3


def _scenario(space: str, n: int, seed: int, t_end: float, dt: float = DT):
    from fpsolver.scenario import load_scenario

    return load_scenario(str(SPACES[space]), [f"n={n}", f"seed={seed}", f"t_end={t_end}",
                                              f"dt={dt}"])


def periodic_interp(xs: np.ndarray, values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Trigonometric interpolant of ``values`` (B, k) at equispaced ``xs`` on [0, 2 pi)."""
    B = len(xs)
    c = np.fft.fft(values, axis=0) / B
    k = np.fft.fftfreq(B, 1.0 / B)
    if B % 2 == 0:  # split the Nyquist mode evenly (a real interpolant)
        c[B // 2] /= 2
        c = np.concatenate([c, c[B // 2:B // 2 + 1]])
        k = np.concatenate([k, [B // 2]])
    phase = np.exp(1j * np.outer(x - xs[0], k))
    return (phase @ c).real


def stationary(space: str):
    """(model, state) of the scenario's stationary state (one rank)."""
    from mpi4py import MPI

    from fpsolver.model import build_model
    from fpsolver.steady import solve_steady

    model = build_model(_scenario(space, 1000, 1, 1.0))
    return model, solve_steady(model, comm=MPI.COMM_SELF)


def predicted_offset(model, state) -> np.ndarray:
    """sqrt(n) (vbar_n - vbar) to first order: the stationary state at A + m eps."""
    from mpi4py import MPI

    from fpsolver.steady import solve_steady

    eps = 1e-3
    base = model.inputs + state.m * eps
    shifted = type("Shifted", (type(model),), {"inputs": property(lambda self: base)})
    m2 = type(model).__new__(shifted)
    m2.__dict__.update(model.__dict__)
    st2 = solve_steady(m2, comm=MPI.COMM_SELF, guess=state)
    return (st2.vbar - state.vbar) / eps


def _density_grids(state, grid: int = 400) -> dict:
    """Each site's stationary density on a grid x grid partition of its box (cached).

    As :func:`fpsolver.steady.sampling.sample_fluctuations` draws (cell by p times the
    area, uniform inside), evaluated once per stationary state instead of once per run.
    """
    cache = state.__dict__.setdefault("_grids", {})
    if not cache:
        from fpsolver.steady.sampling import evaluate_on_grid

        for s in range(len(state.vbar)):
            c, p = evaluate_on_grid(state.space, state.q[s], grid)
            p = np.clip(p, 0.0, None).ravel()
            cache[s] = (c, p / p.sum())
    return cache


def initial_and_target(model, state, sc):
    """Start on the stationary state; the limit of each bin's recorded mean."""
    from fpsolver.particles.positions import make_layout

    layout = make_layout(model, sc)
    rng = np.random.default_rng([sc.seed, 77])
    if model.sites.kind == "ring":
        means = periodic_interp(model.sites.points[:, 0], state.vbar, layout.x[:, 0])
    else:
        means = state.vbar[layout.bins]
    v0 = means.copy()
    grids = _density_grids(state)
    for s in range(model.n_sites):
        idx = np.flatnonzero(layout.bins == s)
        if len(idx):
            c, p = grids[s]
            h = c[1] - c[0]
            cells = rng.choice(p.size, size=len(idx), p=p)
            i, j = np.divmod(cells, len(c))
            z = np.column_stack([c[i], c[j]]) + h * (rng.random((len(idx), 2)) - 0.5)
            y = z * state.ell[s][None, :]
            v0[idx] += y - y.mean(axis=0)
    count = np.bincount(layout.bins, minlength=model.n_sites)
    target = np.stack([np.bincount(layout.bins, means[:, a], model.n_sites) for a in range(2)],
                      1) / np.maximum(count, 1)[:, None]
    return v0, target


def measure(space: str, model, state, n: int, seed: int, dt: float = DT) -> dict:
    """One particle run: the window average of vbar and its distance to the target."""
    from fpsolver.particles import run_particles

    sc = _scenario(space, n, seed, BURN + WINDOW, dt)
    v0, target = initial_and_target(model, state, sc)
    start = time.perf_counter()
    run = run_particles(sc, model=model, progress=False, threads=1, initial_state=v0)
    keep = run.t > BURN + 1e-9
    vb = run.vbar[keep]
    avg = vb.mean(axis=0)
    parts = np.array([p.mean(axis=0) for p in np.array_split(vb, 5)])
    noise = float(np.sqrt(((parts - avg) ** 2).mean() * 5 / 4 / 5))  # SE of the window mean
    rms = float(np.sqrt(((avg - target) ** 2).mean()))
    return {"n": n, "seed": seed, "rms": rms, "noise": noise, "dt": dt,
            "seconds": round(time.perf_counter() - start, 1), "avg": avg, "target": target}


def fit_slope(ns, rms) -> tuple[float, float, float]:
    """Least-squares slope of log rms against log n, its standard error, the intercept."""
    x, y = np.log(np.asarray(ns, float)), np.log(np.asarray(rms, float))
    A = np.column_stack([x, np.ones_like(x)])
    coef, res, *_ = np.linalg.lstsq(A, y, rcond=None)
    r = y - A @ coef
    s2 = r @ r / (len(x) - 2)
    cov = s2 * np.linalg.inv(A.T @ A)
    return float(coef[0]), float(np.sqrt(cov[0, 0])), float(coef[1])


def _print(text: str) -> None:
    print(text, flush=True)


def ladder(space: str, ladder=LADDER, seeds=SEEDS, log=_print) -> dict:
    """Runs over the n ladder; per n the RMS over seeds (mean of the squares), the fit."""
    t0 = time.perf_counter()
    model, state = stationary(space)
    pred = predicted_offset(model, state)
    pred_rms = float(np.sqrt((pred ** 2).mean()))
    log(f"{space}: steady {time.perf_counter() - t0:.1f} s; predicted deterministic offset "
        f"sqrt(n) * RMS = {pred_rms:.3f}")
    rows = []
    for n in ladder:
        runs = [measure(space, model, state, n, 100 + k) for k in range(seeds[n])]
        rms = float(np.sqrt(np.mean([r["rms"] ** 2 for r in runs])))
        noise = float(np.sqrt(np.mean([r["noise"] ** 2 for r in runs])))
        rows.append({"n": n, "seeds": len(runs), "rms": rms, "noise": noise,
                     "rms_sqrt_n": rms * np.sqrt(n), "per_seed": [r["rms"] for r in runs],
                     "seconds": sum(r["seconds"] for r in runs)})
        log(f"  n = {n:6d} ({len(runs)} seeds): RMS {rms:.3e} (sqrt(n) RMS {rms * np.sqrt(n):.3f}"
            f"), window noise {noise:.1e}, {rows[-1]['seconds']:.0f} s")
    slope, se, icpt = fit_slope([r["n"] for r in rows], [r["rms"] for r in rows])
    log(f"  {space}: slope {slope:.3f} +- {se:.3f} (standard error)")
    return {"scenario": SPACES[space].name, "sites": model.n_sites, "burn": BURN,
            "window": WINDOW, "dt": DT, "rows": rows, "slope": slope, "slope_se": se,
            "intercept": icpt, "predicted_offset_rms_sqrt_n": pred_rms,
            "seconds": round(time.perf_counter() - t0, 1)}


def dt_check(space: str, n: int = 100000, seed: int = 100) -> dict:
    """Distances at dt and dt / 4 (same seed and positions): the Euler-Maruyama bias."""
    model, state = stationary(space)
    a = measure(space, model, state, n, seed, DT)
    b = measure(space, model, state, n, seed, DT / 4)
    diff = float(np.sqrt(((a["avg"] - b["avg"]) ** 2).mean()))
    return {"n": n, "rms_dt": a["rms"], "rms_quarter_dt": b["rms"], "rms_difference": diff}


def main(argv=None) -> int:
    import dolfinx_solver  # noqa: F401  (before petsc4py)

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from evidence import Record, settle

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="n up to 10^4, one seed")
    ap.add_argument("--dt-check", action="store_true", help="also dt vs dt/4 at n = 10^5")
    ap.add_argument("--out", help="results file (default benchmarks/results/finite_size.json)")
    args = ap.parse_args(argv)
    record = Record("finite_size", argv, quick=args.quick)
    lad = LADDER[:3] if args.quick else LADDER
    seeds = {n: 1 for n in lad} if args.quick else SEEDS
    for space in SPACES:
        if not args.quick:
            settle()
        record.figures[space] = ladder(space, lad, seeds)
        if args.dt_check and not args.quick:
            record.figures[space]["dt_check"] = dt_check(space)
            print(f"  dt check: {record.figures[space]['dt_check']}", flush=True)
    record.write(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
