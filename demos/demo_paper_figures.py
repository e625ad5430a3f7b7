# ---
# jupytext:
#   text_representation:
#     extension: .py
#     format_name: light
# ---

# # The paper's Figures 1–5: the finite network against its kinetic limit
#
# MacLaurin & Vilanova (arXiv:2505.18481) check the kinetic limit of balanced E–I
# networks on three scenarios. This demo redoes them with fpsolver's three solvers:
#
# - the **particle simulator**: the finite network of `n` pairs,
#   `dv_a = [F_a(v) + sqrt(n) I_a] dt + S dW` (docs/model.md §1);
# - the **Gaussian limit**: for linear `F` and additive noise the fluctuation density is
#   `N(0, K(t))` with `dK/dt = -Λ K - K Λ^T + S S^T`, and `vbar(t)` solves the balance
#   constraint `A_a + Σ_b s_b <G_ab(vbar_b + y_b)> = 0` (§3);
# - the **finite-element (kinetic) solver**: the Fokker–Planck equation of `p(y, t)`
#   coupled to the same constraint (§2), which does not assume a Gaussian.
#
# Figs 1–2 (`linear`) and 3–4 (`tanh`) compare the means `vbar_a(t)` and the variances
# `K_aa(t)`. Fig 5 (`ring-oscillation`) is the fast oscillation on the ring: Fourier
# mode 1 of the fast Jacobian `DΦ` has eigenvalues `±i`, so the network oscillates at
# angular frequency `sqrt(n)` (§4) — we mark that prediction on the mode-1 spectrum.
#
# Run: `python demos/demo_paper_figures.py` (quick; also whenever `CI` is set) or
# `python demos/demo_paper_figures.py --full` (the paper's sizes). PNGs go to
# `out_paper_figures/` in the current directory.

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
from mpi4py import MPI  # noqa: E402

from fpsolver import load_scenario  # noqa: E402
from fpsolver.gaussian import run_gaussian  # noqa: E402
from fpsolver.output import write_outputs  # noqa: E402
from fpsolver.plotting import TIME_LABEL, Run, mode1_spectrum, site_average  # noqa: E402
from fpsolver.stability import analyse_stability  # noqa: E402

OUT = Path("out_paper_figures")
# under `mpirun -n N` the ranks share the kinetic solves; rank 0 runs the rest and plots
ROOT_RANK = MPI.COMM_WORLD.rank == 0
# -

# ## Sizes
#
# The quick mode shortens the runs and coarsens the finite-element grid; `--full` uses
# the scenarios as shipped (the paper's `n` and time spans).

# +
QUICK = {
    "linear": ["t_end=2.0", "n=10000", "record.every=0.05"],
    "tanh": ["t_end=2.0", "n=10000", "record.every=0.05"],
    "kinetic": ["kinetic.cells=32", "kinetic.dt=0.02", "kinetic.half_width=6.0"],
    "ring": ["t_end=10.0"],
}
FULL = {"linear": [], "tanh": [], "kinetic": [], "ring": []}
RING_N = (100, 400)
# -


# ## Running the three solvers
#
# Each run writes its outputs (`summary.json`, `observables.nc`) into a subfolder, and we
# read them back with `fpsolver.plotting.Run`, as `fpsolver plot` does: the figures show
# exactly what is on disk.

# +
def _series(run: Run) -> dict:
    return {"t": run.ds["time"].values, "vbar": site_average(run.ds, "vbar"),
            "K": np.diagonal(site_average(run.ds, "cov"), axis1=1, axis2=2)}


def run_mean_field(name: str, sizes: dict) -> dict:
    """Particles, Gaussian limit and kinetic solver for a mean-field scenario."""
    from fpsolver.kinetic import run_kinetic
    from fpsolver.particles import run_particles

    sc = load_scenario(name, sizes[name])
    out, data = OUT / name, {"n": sc.n}
    for kind, solve, scen in (
            ("gaussian", run_gaussian, sc),
            ("particles", lambda s: run_particles(s, progress=False), sc),
            ("kinetic", lambda s: run_kinetic(s, progress=False),
             load_scenario(name, sizes[name] + sizes["kinetic"]))):
        if kind != "kinetic" and not ROOT_RANK:
            continue  # under mpirun only the kinetic solver is shared; rank 0 does the rest
        start = time.perf_counter()
        result = solve(scen)
        if ROOT_RANK:  # one rank writes and reads the run folder
            write_outputs(out / kind, scen, result)
            data[kind] = _series(Run(out / kind))
            print(f"  {name} {kind}: {time.perf_counter() - start:.1f} s")
    # the finite-n offset of §2(c): where the particles should sit
    data["offset"] = analyse_stability(sc).offset
    return data
# -


# ## Figures 1–4: means and variances
#
# The particle means sit `O(n^{-1/2})` off the limit: the offset
# `(DΦ)^{-1} lambda / sqrt(n)` of §2(c), not noise; it is drawn as a dotted line.

# +
def plot_mean_field(name: str, data: dict, figs: tuple[int, int]) -> Path:
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    styles = {"particles": dict(lw=0.9, alpha=0.8, label=f"particles, n = {data['n']}"),
              "gaussian": dict(lw=2, ls="--", label="Gaussian limit"),
              "kinetic": dict(lw=1.5, ls="-.", label="finite elements (kinetic)")}
    for kind, style in styles.items():
        s = data[kind]
        for a in range(2):
            axes[0, a].plot(s["t"], s["vbar"][:, a], **style)
            axes[1, a].plot(s["t"], s["K"][:, a], **style)
    if data["offset"] is not None:
        g = data["gaussian"]
        for a in range(2):
            axes[0, a].plot(g["t"], g["vbar"][:, a] + data["offset"][a], ":", color="k",
                            lw=1, label="limit + finite-n offset")
    for a, pop in enumerate("ei"):
        axes[0, a].set_ylabel(f"mean vbar_{pop} (voltage)")
        axes[1, a].set_ylabel(f"variance K_{pop}{pop} (voltage$^2$)")
        axes[1, a].set_xlabel(TIME_LABEL)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"scenario {name}: paper Figs {figs[0]}–{figs[1]} (means, variances)")
    fig.tight_layout()
    path = OUT / f"fig{figs[0]}-{figs[1]}_{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
# -


# ## Figure 5: the ring oscillation
#
# On the ring the cosine kernel couples only Fourier modes 0 and ±1. We record the
# complex mode-1 amplitude of `v_e`, `z(t) = Σ_j v_e^j e^{-i x_j} / n`, and take its power
# spectrum (Hann window, the first time unit discarded as transient). The stability
# analysis predicts the peak at `sqrt(n) w` with `w = 1`.

# +
def run_ring(sizes: dict) -> dict:
    from fpsolver.particles import run_particles

    data = {}
    for n in RING_N:
        sc = load_scenario("ring-oscillation", sizes["ring"] + [f"n={n}"])
        start = time.perf_counter()
        out = OUT / f"ring-n{n}"
        write_outputs(out, sc, run_particles(sc, progress=False))
        run = Run(out)
        t = run.ds["time"].values
        z = run.ds["fourier1_re"].values[:, 0] + 1j * run.ds["fourier1_im"].values[:, 0]
        omega, power = mode1_spectrum(t, z, discard=1.0)
        data[n] = {"t": t, "z": z, "omega": omega, "power": power,
                   "peak": float(omega[np.argmax(power)]),
                   "predicted": analyse_stability(sc).frequency}
        print(f"  ring n = {n}: peak {data[n]['peak']:.2f} rad/time, predicted "
              f"{data[n]['predicted']:.2f}; {time.perf_counter() - start:.1f} s")
    return data


def plot_ring(data: dict) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for n, d in data.items():
        keep = d["t"] <= d["t"][0] + 2.0
        line, = axes[0].plot(d["t"][keep], d["z"].real[keep], lw=1, label=f"n = {n}")
        axes[1].semilogy(d["omega"], d["power"] / d["power"].max(), color=line.get_color(),
                         label=f"n = {n}: peak at {d['peak']:.1f}")
        axes[1].axvline(d["predicted"], color=line.get_color(), ls="--",
                        label=f"predicted sqrt(n) = {d['predicted']:.0f}")
    axes[0].set_xlabel(TIME_LABEL)
    axes[0].set_ylabel("Re of Fourier mode 1 of v_e (voltage)")
    axes[1].set_xlabel("angular frequency (rad per unit of tau)")
    axes[1].set_ylabel("power (normalised)")
    axes[1].set_xlim(0, 3 * max(d["predicted"] for d in data.values()))
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("scenario ring-oscillation: paper Fig 5, oscillation at sqrt(n)")
    fig.tight_layout()
    path = OUT / "fig5_ring-oscillation.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
# -


# ## Putting it together
#
# `main(quick)` returns the plotted data, so `tests/test_demos.py` can check it: the
# spectral peak near `sqrt(n)`, the particles within sampling error of the limit plus the
# offset, the finite-element solver on the Gaussian limit.

# +
def main(quick: bool) -> dict:
    sizes = QUICK if quick else FULL
    OUT.mkdir(exist_ok=True)
    start = time.perf_counter()
    data = {"linear": run_mean_field("linear", sizes),
            "tanh": run_mean_field("tanh", sizes)}
    if not ROOT_RANK:
        return None  # the other ranks only share the kinetic runs
    data["ring"] = run_ring(sizes)
    data["figures"] = [plot_mean_field("linear", data["linear"], (1, 2)),
                       plot_mean_field("tanh", data["tanh"], (3, 4)),
                       plot_ring(data["ring"])]
    print(f"figures in {OUT}/ ({time.perf_counter() - start:.0f} s):")
    for p in data["figures"]:
        print(f"  {p}")
    return data


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the paper's Figs 1-5")
    parser.add_argument("--full", action="store_true", help="paper sizes (ignored if CI is set)")
    args = parser.parse_args()
    main(quick=bool(os.environ.get("CI")) or not args.full)
# -
