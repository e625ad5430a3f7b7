# ---
# jupytext:
#   text_representation:
#     extension: .py
#     format_name: light
# ---

# # A cortical sheet: `sheet`, frame by frame
#
# The shipped `sheet` puts one E–I column at every site of a 32 x 32 torus
# `[0, 2π)^2`. The balance constraint (docs/model.md §2a)
#
# `A_a(x) + Σ_b s_b Σ_k J_ab(x, x_k) w_k <G_ab(vbar_b(x_k, t) + y_b)>_k = 0`
#
# couples the sites through the means `vbar_a(x, t)`, with the exponential kernel
# `J_ab(x, x') = c_ab exp(-|x - x'| / 0.5)` (periodic distance) and the input
# `A_a(x) = input_a + input_cos_a cos(x_1)`: a stripe along `x_2`. `F` is cubic, so every
# site has its own non-Gaussian fluctuation density `p_x(y, t)` (§2b): one Fokker–Planck
# equation per site, 1024 of them, solved by finite elements and split over the MPI ranks.
#
# The animation shows `vbar_e(x, t)` on the sheet and, beside it, the marginal densities
# `p_x(y_e, t)` at three sites across the stripe (marked on the sheet): the densities
# start as the same Gaussian N(0, 0.5) everywhere and relax to different, non-Gaussian
# shapes, while the stripe of the means stays balanced.
#
# Run: `python demos/demo_sheet.py` (quick: an 8 x 8 sheet to t = 1, about a minute; also
# when `CI` is set), `--full` (the shipped 32 x 32 sheet to t = 5: hours on one core), or
# in parallel: `mpirun -n 2 python demos/demo_sheet.py`. Writes `out_sheet/`.

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
from matplotlib import animation  # noqa: E402

from fpsolver import load_scenario  # noqa: E402
from fpsolver.output import write_outputs  # noqa: E402
from fpsolver.plotting import Run, marginal_grid, snapshot_times  # noqa: E402
from fpsolver.timegrid import record_times  # noqa: E402

OUT = Path("out_sheet")
COLORS = ("tab:red", "tab:green", "tab:blue")
# -

# ## Sizes
#
# Quick: 8 x 8 sites to `t = 1` with `kinetic.tol = 5e-4` (the run's own estimate stays
# within it; a coarser state mesh would need artificial diffusion), frames every 0.1.
# Full: the shipped scenario (32 x 32 sites, `t = 5`), frames every 0.25. The frames are
# taken from the recording grid itself, so snapshots and records share their times.

# +
def sizes(quick: bool) -> list[str]:
    t_end, every, stride = (1.0, 0.05, 2) if quick else (5.0, 0.05, 5)
    frames = record_times(t_end, every)[::stride].tolist()
    over = [f"t_end={t_end}", f"record.every={every}", f"record.snapshots={frames}"]
    if quick:
        over += ["space.sites=8", "kinetic.tol=5e-4"]
    return over


def marked_sites(side: int) -> list[int]:
    """Three sites across the stripe: x_1 = 0, pi/2, pi (input peak, flank, trough)."""
    return [i * side + side // 2 for i in (0, side // 4, side // 2)]
# -


# ## Running the kinetic solver
#
# The communicator is the caller's: under `mpirun -n 2` the sites are split over both
# ranks. Rank 0 writes the run folder and reads it back as a user would.

# +
def run(quick: bool, comm) -> dict | None:
    from fpsolver.kinetic import run_kinetic

    sc = load_scenario("sheet", sizes(quick))
    start = time.perf_counter()
    result = run_kinetic(sc, comm=comm, progress=False)
    seconds = time.perf_counter() - start
    if comm.rank != 0:
        return None
    write_outputs(OUT / "kinetic", sc, result)
    print(f"  kinetic, {result.sites.count} sites on {comm.size} rank(s): {seconds:.1f} s")
    kin = Run(OUT / "kinetic")
    ds = kin.ds
    x = ds["x"].values
    side = sc.space.sites
    sites = marked_sites(side)
    marginal = ds["marginal_e"].values  # (snapshot, site, grid)
    grid = marginal_grid(kin, "marginal_e")
    times = snapshot_times(kin)
    t = ds["time"].values
    return {"x": x, "side": side, "t": t, "vbar": ds["vbar"].values, "times": times,
            "frame_records": [int(np.argmin(np.abs(t - s))) for s in times],
            "input_e": sc.populations.e.input + sc.populations.e.input_cos * np.cos(x[:, 0]),
            "sites": sites, "grid": grid, "marginal_e": marginal[:, sites],
            "mass": np.trapezoid(marginal, grid, axis=-1), "seconds": seconds,
            "ranks": comm.size, "estimate": result.info["error_estimate"]}
# -


# ## The animation
#
# Left: `vbar_e(x, t)` on the sheet (`x_1` down, `x_2` across), the marked sites as
# circles. Right: the marginal densities of `y_e` at those sites, and the common initial
# Gaussian (grey). With pillow the frames make a GIF; without it, a strip of frames.

# +
def _sheet(data: dict, k: int) -> np.ndarray:
    """vbar_e at frame k as a (side, side) image, [x_1 index, x_2 index]."""
    side = data["side"]
    return data["vbar"][data["frame_records"][k], :, 0].reshape(side, side)


def _draw(fig, data: dict, k: int, axes=None):
    side, y = data["side"], data["grid"]
    vmin = min(data["vbar"][:, :, 0].min(), 0.0)
    vmax = data["vbar"][:, :, 0].max()
    if axes is None:
        axes = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.25]})
    ax0, ax1 = axes
    ax0.clear()
    ax1.clear()
    h = np.pi / side  # pixel centres at the sites' coordinates
    extent = (-h, 2 * np.pi - h, 2 * np.pi - h, -h)
    im = ax0.imshow(_sheet(data, k), vmin=vmin, vmax=vmax, extent=extent, cmap="viridis")
    for s, c in zip(data["sites"], COLORS):
        ax0.plot(data["x"][s, 1], data["x"][s, 0], "o", mfc="none", mec=c, ms=10, mew=2)
    ax0.set_xlabel("x_2 (rad)")
    ax0.set_ylabel("x_1 (rad)")
    ax0.set_title(f"vbar_e(x, t), t = {data['times'][k]:.2f}")
    p0 = data["marginal_e"][0, 0]
    ax1.plot(y, p0, color="0.6", lw=1, label="t = 0 (all sites)")
    for n, (s, c) in enumerate(zip(data["sites"], COLORS)):
        x1 = data["x"][s, 0]
        ax1.plot(y, data["marginal_e"][k, n], color=c, lw=2, label=f"x_1 = {x1:.2f}")
    ax1.set_ylim(0, 1.05 * data["marginal_e"].max())
    wide = y[data["marginal_e"].max(axis=(0, 1)) > 1e-3 * data["marginal_e"].max()]
    ax1.set_xlim(wide[0], wide[-1])
    ax1.set_xlabel("fluctuation y_e (voltage)")
    ax1.set_ylabel("density p_x(y_e, t)")
    ax1.legend(fontsize=8, loc="upper right")
    ax1.grid(alpha=0.3)
    return axes, im


def animate(data: dict) -> Path:
    fig = plt.figure(figsize=(10.5, 4.2))
    axes, im = _draw(fig, data, 0)
    fig.subplots_adjust(left=0.07, right=0.97, wspace=0.5)
    fig.colorbar(im, ax=axes[0], label="vbar_e (voltage)", shrink=0.85)
    fig.suptitle(f"scenario sheet: {data['side']} x {data['side']} sites")
    frames = len(data["times"])
    if animation.writers.is_available("pillow"):
        path = OUT / "sheet.gif"
        anim = animation.FuncAnimation(fig, lambda k: _draw(fig, data, k, axes)[1:],
                                       frames=frames)
        anim.save(path, writer=animation.PillowWriter(fps=3), dpi=70)
        plt.close(fig)
        return path
    plt.close(fig)
    picks = np.unique(np.linspace(0, frames - 1, min(frames, 5)).round().astype(int))
    fig = plt.figure(figsize=(4.2 * len(picks), 7))
    for col, k in enumerate(picks):
        ax0 = fig.add_subplot(2, len(picks), col + 1)
        ax1 = fig.add_subplot(2, len(picks), len(picks) + col + 1)
        _draw(fig, data, k, (ax0, ax1))
    fig.tight_layout()
    path = OUT / "sheet_frames.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_profile(data: dict) -> Path:
    """vbar_e across the stripe (averaged over x_2) at the first and last frame."""
    side = data["side"]
    x1 = data["x"][:, 0].reshape(side, side)[:, 0]
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, ls in ((0, "--"), (len(data["times"]) - 1, "-")):
        ax.plot(x1, _sheet(data, k).mean(axis=1), ls, marker=".",
                label=f"vbar_e, t = {data['times'][k]:g}")
    ax.plot(x1, data["input_e"].reshape(side, side)[:, 0], ":", color="k",
            label="input A_e(x_1)")
    ax.set_xlabel("x_1 (rad)")
    ax.set_ylabel("voltage")
    ax.set_title("scenario sheet: the stripe's profile")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = OUT / "profile.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
# -


# +
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
    data["figures"] = [animate(data), plot_profile(data)]
    print(f"figures in {OUT}/ ({time.perf_counter() - start:.0f} s):")
    for p in data["figures"]:
        print(f"  {p}")
    return data


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="vbar_e(x, t) and densities for sheet")
    parser.add_argument("--full", action="store_true", help="full size (ignored if CI is set)")
    args = parser.parse_args()
    main(quick=bool(os.environ.get("CI")) or not args.full)
# -
