# ---
# jupytext:
#   text_representation:
#     extension: .py
#     format_name: light
# ---

# # A density that is not Gaussian: `bistable`, frame by frame
#
# In the kinetic limit every pair's fluctuation `y = v - vbar` has a density
# `p(y_e, y_i, t)` that solves the Fokker–Planck equation (docs/model.md §2b)
#
# `∂_t p = -div_y(b(y, t) p) + ½ Σ ∂_g ∂_d (D_gd(vbar + y) p)`,
# `b(y, t) = F(vbar + y) - <F(vbar + ·)>`,
#
# while the means `vbar(t)` keep the network balanced (§2a). The `bistable` scenario has
# a double-well `F_a(v) = [u_a - u_a^3 / w_a^2] / tau_a` with an e–i rotation coupling and
# multiplicative noise `S_ee = sigma_e sqrt(1 + kappa v_e^2)`: the initial Gaussian splits
# into two lobes, one per well. The Gaussian reduction (§3) cannot follow that; a Gaussian
# with the *same* covariance `K` as the finite-element density — its ellipses are drawn
# on top — shows what a Gaussian picture would claim.
#
# The animation shows, side by side, the finite-element density and the histogram of the
# fluctuations of a finite network (particle simulator) at the same times.
#
# Run: `python demos/demo_density_evolution.py` (quick; also when `CI` is set) or
# `--full`. Writes `out_density_evolution/density.gif` and PNGs.

# +
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.animation import FuncAnimation, PillowWriter  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402
from mpi4py import MPI  # noqa: E402

from fpsolver import load_scenario  # noqa: E402
from fpsolver.output import write_outputs  # noqa: E402
from fpsolver.plotting import Run, particle_fluctuations, snapshot_times  # noqa: E402

OUT = Path("out_density_evolution")
# under `mpirun -n N` the ranks share the kinetic solve; rank 0 runs the rest and plots
ROOT_RANK = MPI.COMM_WORLD.rank == 0
# -

# ## Sizes
#
# Quick: a P2 grid of 40 x 40 cells on `[-3.5, 3.5]^2`, frames every 0.25, 2e4 pairs.
# Full: the scenario's grid, frames every 0.1, 1e5 pairs.

# +
def sizes(quick: bool) -> tuple[list[str], int]:
    every = 0.25 if quick else 0.1
    t_end = 4.0
    frames = np.round(np.arange(0.0, t_end + 1e-9, every), 6).tolist()
    over = [f"t_end={t_end}", f"record.snapshots={frames}"]
    if quick:
        over += ["kinetic.tol=1e-3"]  # looser accuracy target: bigger automatic steps
    return over, 20_000 if quick else 100_000
# -


# ## The density on a grid
#
# The kinetic solver stores, at each snapshot time, the 2-d density of a few sites on a
# regular grid of its moving frame, z = y / ell (`density(snapshot, density_site, z_e,
# z_i)` with `density_ell`); `density_in_y` gives it in y. Frames differ between
# snapshots, so we resample every frame onto one grid of y covering the widest.

# +
def fe_density(run: Run) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(y_e grid, y_i grid, p[frame, i_e, i_i])`` of the first density site."""
    from scipy.interpolate import RegularGridInterpolator

    from fpsolver.kinetic.snapshots import density_in_y

    ds = run.ds
    frames = [density_in_y(ds, k, 0) for k in range(ds.sizes["snapshot"])]
    top_e = max(np.abs(f[0]).max() for f in frames)
    top_i = max(np.abs(f[1]).max() for f in frames)
    ye, yi = np.linspace(-top_e, top_e, 161), np.linspace(-top_i, top_i, 161)
    E, I = np.meshgrid(ye, yi, indexing="ij")
    p = np.array([RegularGridInterpolator((fe, fi), pk, bounds_error=False,
                                          fill_value=0.0)((E, I))
                  for fe, fi, pk in frames])
    return ye, yi, p


def moments(ye, yi, p) -> tuple[float, np.ndarray, np.ndarray]:
    """Mass, mean and covariance of a gridded density (trapezoidal rule)."""
    E, I = np.meshgrid(ye, yi, indexing="ij")

    def integral(f):
        return np.trapezoid(np.trapezoid(f, yi, axis=1), ye)
    mass = integral(p)
    mean = np.array([integral(E * p), integral(I * p)]) / mass
    de, di = E - mean[0], I - mean[1]
    cov = np.array([[integral(de * de * p), integral(de * di * p)],
                    [integral(de * di * p), integral(di * di * p)]]) / mass
    return mass, mean, cov


def ellipses(ax, K: np.ndarray, color="w"):
    """1- and 2-sigma ellipses of N(0, K): the Gaussian with the same covariance."""
    vals, vecs = np.linalg.eigh(K)
    angle = np.degrees(np.arctan2(vecs[1, 1], vecs[0, 1]))
    out = []
    for k in (1, 2):
        e = Ellipse((0, 0), 2 * k * np.sqrt(vals[1]), 2 * k * np.sqrt(vals[0]), angle=angle,
                    fill=False, color=color, lw=1.2, ls="--" if k == 2 else "-")
        ax.add_patch(e)
        out.append(e)
    return out
# -


# ## Running both solvers

# +
def run(quick: bool) -> dict:
    from fpsolver.kinetic import run_kinetic
    from fpsolver.particles import run_particles

    over, n = sizes(quick)
    sc = load_scenario("bistable", over)
    timings = {}
    for kind, solve, scen in (("kinetic", lambda s: run_kinetic(s, progress=False), sc),
                              ("particles", lambda s: run_particles(s, progress=False),
                               sc.replace(n=n))):
        if kind != "kinetic" and not ROOT_RANK:
            continue  # under mpirun only the kinetic solver is shared; rank 0 does the rest
        start = time.perf_counter()
        result = solve(scen)
        if ROOT_RANK:  # one rank writes the run folder
            write_outputs(OUT / kind, scen, result)
            timings[kind] = time.perf_counter() - start
            print(f"  {kind}: {timings[kind]:.1f} s")
    if not ROOT_RANK:
        return None
    kin, par = Run(OUT / "kinetic"), Run(OUT / "particles")
    ye, yi, p = fe_density(kin)
    times = snapshot_times(kin)
    data = {"times": times, "y_e": ye, "y_i": yi, "density": p, "n": n, "timings": timings,
            "mass": [], "fe_cov": [], "solver_cov": [], "particle_cov": [], "hist": []}
    edges_e = np.linspace(ye[0], ye[-1], 61)
    edges_i = np.linspace(yi[0], yi[-1], 61)
    rec_t = kin.ds["time"].values
    for k, t in enumerate(times):
        mass, _, cov = moments(ye, yi, p[k])
        data["mass"].append(mass)
        data["fe_cov"].append(cov)  # of the gridded density: the e-i covariance included
        data["solver_cov"].append(kin.ds["cov"].values[np.argmin(np.abs(rec_t - t)), 0])
        kp = int(np.argmin(np.abs(snapshot_times(par) - t)))
        y = particle_fluctuations(par, kp)
        data["particle_cov"].append(np.cov(y.T))
        h, _, _ = np.histogram2d(y[:, 0], y[:, 1], bins=[edges_e, edges_i], density=True)
        data["hist"].append(h)
    data["hist_edges"] = (edges_e, edges_i)
    for key in ("mass", "fe_cov", "solver_cov", "particle_cov", "hist"):
        data[key] = np.array(data[key])
    return data
# -


# ## The animation
#
# Left: the finite-element density; right: the particle histogram. Both carry the 1- and
# 2-sigma ellipses of the Gaussian with the finite-element covariance `K(t)`.

# +
def animate(data: dict) -> list[Path]:
    ye, yi, p = data["y_e"], data["y_i"], data["density"]
    ee, ei = data["hist_edges"]
    vmax = float(np.percentile(p.max(axis=(1, 2)), 90))
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.8), sharex=True, sharey=True)
    im0 = axes[0].pcolormesh(ye, yi, p[0].T, shading="gouraud", vmin=0, vmax=vmax)
    im1 = axes[1].pcolormesh(ee, ei, data["hist"][0].T, vmin=0, vmax=vmax)
    fig.colorbar(im1, ax=axes, label="density (1 / voltage$^2$)", shrink=0.9)
    axes[0].set_title("finite elements p(y_e, y_i, t)")
    axes[1].set_title(f"particles, n = {data['n']:g} (histogram)")
    for ax in axes:
        ax.set_xlabel("fluctuation y_e (voltage)")
        ax.set_aspect("equal")
    axes[0].set_ylabel("fluctuation y_i (voltage)")
    patches = [ellipses(ax, data["solver_cov"][0]) for ax in axes]
    title = fig.suptitle("")

    def frame(k):
        im0.set_array(p[k].T.ravel() if im0.get_array().ndim == 1 else p[k].T)
        im1.set_array(data["hist"][k].T.ravel() if im1.get_array().ndim == 1
                      else data["hist"][k].T)
        for ax, es in zip(axes, patches):
            for e in es:
                e.remove()
        patches[:] = [ellipses(ax, data["solver_cov"][k]) for ax in axes]
        title.set_text(f"scenario bistable, t = {data['times'][k]:.2f} (units of tau); "
                       "ellipses: Gaussian with the same K")
        return [im0, im1, title]

    gif = OUT / "density.gif"
    FuncAnimation(fig, frame, frames=len(data["times"])).save(gif, writer=PillowWriter(fps=4),
                                                              dpi=70)
    paths = [gif]
    for k in (0, len(data["times"]) - 1):
        frame(k)
        path = OUT / f"density_t{data['times'][k]:g}.png"
        fig.savefig(path, dpi=100)
        paths.append(path)
    plt.close(fig)
    return paths


def plot_marginals(data: dict) -> Path:
    """The e-marginal at the last time: bimodal, unlike the Gaussian with the same K."""
    ye, yi, p = data["y_e"], data["y_i"], data["density"][-1]
    pe = np.trapezoid(p, yi, axis=1)
    ee = data["hist_edges"][0]
    he = data["hist"][-1].sum(axis=1) * np.diff(data["hist_edges"][1])[0]
    K = data["solver_cov"][-1]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(ye, pe, lw=2, label="finite elements")
    ax.stairs(he, ee, label=f"particles, n = {data['n']:g}")
    ax.plot(ye, np.exp(-ye**2 / (2 * K[0, 0])) / np.sqrt(2 * np.pi * K[0, 0]), "--",
            label="Gaussian with the same variance")
    ax.set_xlabel("fluctuation y_e (voltage)")
    ax.set_ylabel("density")
    ax.set_title(f"scenario bistable: marginal of y_e at t = {data['times'][-1]:g}")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = OUT / "marginal_e_final.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    data["marginal_e_final"] = pe
    return path
# -


# +
def main(quick: bool) -> dict:
    OUT.mkdir(exist_ok=True)
    start = time.perf_counter()
    data = run(quick)
    if data is None:
        return None  # not rank 0: the kinetic run is shared, the rest is rank 0's
    data["figures"] = animate(data) + [plot_marginals(data)]
    print(f"figures in {OUT}/ ({time.perf_counter() - start:.0f} s):")
    for p in data["figures"]:
        print(f"  {p}")
    return data


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="p(y_e, y_i, t) for bistable, animated")
    parser.add_argument("--full", action="store_true", help="full size (ignored if CI is set)")
    args = parser.parse_args()
    main(quick=bool(os.environ.get("CI")) or not args.full)
# -
