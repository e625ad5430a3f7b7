# ---
# jupytext:
#   text_representation:
#     extension: .py
#     format_name: light
# ---

# # A balanced bump on the ring: `ring-bump`
#
# With positions `x` on the ring `[0, 2π)`, the balance constraint (docs/model.md §2a)
#
# `A_a(x) + Σ_b s_b ∫ J_ab(x, x') <G_ab(vbar_b(x', t) + y_b)>_x' dx'/2π = 0`
#
# makes the mean `vbar_a(x, t)` a function of space. Here the kernel is
# `J_ab(x, x') = c0 + c1 cos(x - x')`, the input is `A_a(x) = input + input_cos cos(x)`,
# and `F` is cubic, so every site has its own non-Gaussian fluctuation density `p_x(y, t)`:
# the sites are coupled only through `vbar`. The kinetic solver evolves one Fokker–Planck
# equation per site (the sites are split over the MPI ranks); the particle simulator puts
# `n / sites` pairs at every site.
#
# Figures: `vbar_a(x, t)` as a space–time image for both solvers, the final profile
# `vbar_a(x)`, and the marginal densities `p_x(y_e)` at a few sites.
#
# Run: `python demos/demo_spatial.py` (quick; also when `CI` is set), `--full`, or in
# parallel: `mpirun -n 2 python demos/demo_spatial.py`. Writes `out_spatial/`.

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

from fpsolver import load_scenario  # noqa: E402
from fpsolver.output import write_outputs  # noqa: E402
from fpsolver.plotting import TIME_LABEL, Run, marginal_grid, snapshot_times  # noqa: E402

OUT = Path("out_spatial")
# -

# ## Sizes
#
# Quick: 16 sites, `t_end = 2`, a P2 grid of 24 x 24 cells, 2048 pairs per site.
# Full: the shipped scenario (64 sites, `t_end = 5`, 4096 pairs per site).

# +
def sizes(quick: bool) -> list[str]:
    if quick:
        return ["space.sites=16", "n=32768", "t_end=2.0", "kinetic.tol=1e-3",
                "record.snapshots=[0.0, 2.0]", "record.every=0.05"]
    return []
# -


# ## Running the solvers
#
# The communicator is the caller's: under `mpirun -n 2` the kinetic solver splits the
# sites over both ranks. The particle simulator and the figures run on rank 0.

# +
def run(quick: bool, comm) -> dict | None:
    from fpsolver.kinetic import run_kinetic

    sc = load_scenario("ring-bump", sizes(quick))
    start = time.perf_counter()
    result = run_kinetic(sc, comm=comm, progress=False)
    timings = {"kinetic": time.perf_counter() - start}
    if comm.rank != 0:
        return None
    write_outputs(OUT / "kinetic", sc, result)
    print(f"  kinetic on {comm.size} rank(s): {timings['kinetic']:.1f} s")
    from fpsolver.particles import run_particles

    start = time.perf_counter()
    write_outputs(OUT / "particles", sc, run_particles(sc, progress=False))
    timings["particles"] = time.perf_counter() - start
    print(f"  particles: {timings['particles']:.1f} s")
    kin, par = Run(OUT / "kinetic"), Run(OUT / "particles")
    x = kin.ds["x"].values[:, 0]
    data = {"x": x, "input_e": sc.populations.e.input + sc.populations.e.input_cos * np.cos(x),
            "timings": timings, "ranks": comm.size}
    for name, r in (("kinetic", kin), ("particles", par)):
        data[name] = {"t": r.ds["time"].values, "vbar": r.ds["vbar"].values,
                      "cov": r.ds["cov"].values}
    data["snapshot_times"] = snapshot_times(kin)
    data["grid"] = marginal_grid(kin, "marginal_e")
    data["marginal_e"] = kin.ds["marginal_e"].values  # (snapshot, site, grid)
    data["mass"] = np.trapezoid(data["marginal_e"], data["grid"], axis=-1)
    return data
# -


# ## Figures

# +
def plot(data: dict) -> list[Path]:
    x = data["x"]
    order = np.argsort(x)
    paths = []
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True, sharey=True)
    for row, name in enumerate(("kinetic", "particles")):
        d = data[name]
        for a, pop in enumerate("ei"):
            im = axes[row, a].pcolormesh(x[order], d["t"], d["vbar"][:, order, a],
                                         shading="nearest")
            fig.colorbar(im, ax=axes[row, a], label=f"vbar_{pop} (voltage)")
            axes[row, a].set_title(f"{name}: vbar_{pop}(x, t)")
            axes[row, a].set_ylabel(TIME_LABEL)
    for ax in axes[1]:
        ax.set_xlabel("position x on the ring (rad)")
    fig.suptitle("scenario ring-bump: space-time image of the balanced mean")
    fig.tight_layout()
    paths.append(OUT / "spacetime_vbar.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for name, style in (("kinetic", dict(lw=2)), ("particles", dict(marker=".", ls=""))):
        for a, pop in enumerate("ei"):
            axes[0].plot(x[order], data[name]["vbar"][-1, order, a], label=f"{name}, vbar_{pop}",
                         **style)
    axes[0].set_xlabel("position x on the ring (rad)")
    axes[0].set_ylabel("vbar at the final time (voltage)")
    axes[0].legend(fontsize=8)
    axes[0].grid(alpha=0.3)
    sites = order[:: max(1, len(x) // 4)][:4]
    for s in sites:
        axes[1].plot(data["grid"], data["marginal_e"][-1, s], label=f"x = {x[s]:.2f}")
    axes[1].set_xlabel("fluctuation y_e (voltage)")
    axes[1].set_ylabel(f"density p_x(y_e) at t = {data['snapshot_times'][-1]:g}")
    axes[1].legend(fontsize=8)
    axes[1].grid(alpha=0.3)
    fig.suptitle("scenario ring-bump: final profile and the densities at a few sites")
    fig.tight_layout()
    paths.append(OUT / "profile_and_densities.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    data["density_sites"] = sites
    return paths


def main(quick: bool, comm=None) -> dict:
    """Run and plot; returns the plotted data on rank 0 and ``{}`` on the other ranks."""
    from mpi4py import MPI

    comm = comm if comm is not None else MPI.COMM_WORLD
    if comm.rank == 0:
        OUT.mkdir(exist_ok=True)
    start = time.perf_counter()
    data = run(quick, comm)
    if data is None:
        return {}
    data["figures"] = plot(data)
    print(f"figures in {OUT}/ ({time.perf_counter() - start:.0f} s):")
    for p in data["figures"]:
        print(f"  {p}")
    return data


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="vbar(x, t) for ring-bump")
    parser.add_argument("--full", action="store_true", help="full size (ignored if CI is set)")
    args = parser.parse_args()
    main(quick=bool(os.environ.get("CI")) or not args.full)
# -
