# ---
# jupytext:
#   text_representation:
#     extension: .py
#     format_name: light
# ---

# # Two stable balanced states for one input: `bistable-balance`
#
# The balance constraint (docs/model.md §2a) fixes the means `vbar` from the densities.
# With one gain shape for all pairs it is linear in the expectations and has one root;
# `bistable-balance` has a saturating `G_ee = 3 tanh` and linear `G_ei`, `G_ie`, `G_ii`
# (the `tanh_linear` gains), so with `A_i = 0` it reads `v_i = v_e` and
#
# `A_e = v_e - 3 <tanh(v_e + y_e)>`,
#
# an S-shaped curve in the input `A_e`: between two folds there are three balanced
# stationary states, the lower and the upper one stable, the middle one unstable (its
# fast balance Jacobian has a positive eigenvalue). `F` is cubic, so the densities are
# not Gaussian and differ along the branch.
#
# Figures: the branch `vbar_e(A_e)` from `fpsolver continue` (stable solid, unstable
# dashed, folds marked) with the leading slow and fast eigenvalues, the stationary
# densities at a few points along it (`fpsolver steady`, the branch picked by
# `initial.vbar`), and the slow spectrum of the two stable states at the shipped
# `A_e = 0.3` in the complex plane (`fpsolver spectrum`).
#
# Run: `python demos/demo_bifurcation.py` (quick; also when `CI` is set), `--full`, or
# `mpirun -n 2 python demos/demo_bifurcation.py`. Writes `out_bifurcation/`.

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
from fpsolver.model import build_model  # noqa: E402
from fpsolver.plotting import plot_stability_runs  # noqa: E402

OUT = Path("out_bifurcation")
NAME = "bistable-balance"
KEY = "populations.e.input"
# -

# ## Sizes
#
# Quick: the branch over `A_e` in [-1.5, 1.5] with arclength steps up to 0.5 and 2 slow
# eigenvalues per point, 6 eigenvalues in the spectrum figure. Full: [-2, 2], steps up to
# 0.1, 4 eigenvalues per point, 12 in the figure. The folds are located by bisection to
# 1e-8 of the range either way; the step only sets how finely the branch is drawn.

# +
def sizes(quick: bool) -> dict:
    if quick:
        return {"range": (-1.5, 1.5), "ds_max": 0.5, "count": 2, "spectrum": 6}
    return {"range": (-2.0, 2.0), "ds_max": 0.1, "count": 4, "spectrum": 12}


# the stationary states whose densities are drawn: (label, A_e, initial.vbar guess)
POINTS = [("lower, A_e = -1.2", -1.2, [-2.5, -2.5]), ("lower, A_e = 0.3", 0.3, [-2.5, -2.5]),
          ("middle, A_e = 0.3", 0.3, []), ("upper, A_e = 0.3", 0.3, [2.5, 2.5]),
          ("upper, A_e = 1.2", 1.2, [2.5, 2.5])]
# -


# ## The branch
#
# `continue_branch` is what `fpsolver continue` runs: pseudo-arclength continuation of the
# stationary system (densities and balance, docs/steady.md) in `A_e`, from the lower
# branch (the scenario's `initial.vbar`) through both folds to the upper branch.

# +
def model_at(p: float):
    return build_model(load_scenario(NAME, [f"{KEY}={float(p)!r}"]))


def branch_data(quick: bool, comm) -> dict:
    from fpsolver.steady.continuation import continue_branch

    s = sizes(quick)
    br = continue_branch(model_at, *s["range"], comm=comm, count=s["count"],
                         ds_max=s["ds_max"])
    return {"p": np.array(br.p), "vbar": np.array(br.vbar)[:, 0, :],
            "stable": br.stable(),
            "slow": np.array([sl.real.max() for sl in br.slow]),
            "fast": np.array([f.real.max() for f in br.fast]),
            "special": [(str(sp["kind"]), float(sp["p"]),
                         float(np.mean(np.asarray(sp["vbar"])[:, 0]))) for sp in br.special],
            "folds": sorted(float(sp["p"]) for sp in br.special if sp["kind"] == "fold")}
# -


# ## Stationary densities and spectra
#
# `solve_steady` finds the state its start leads to: `initial.vbar` picks the branch (the
# balance at t = 0 is solved from it, and Newton on the stationary system starts from
# that balanced state). The density of `y = (y_e, y_i)` lives on each site's frame
# `y = ell z`; its `y_e` marginal is drawn. The spectrum is that of the kinetic limit
# linearised at the state, on a box wide enough for the eigenfunctions asked for.

# +
def marginal(state, comm, grid: int = 161):
    """The y_e marginal of site 0's stationary density (every rank gets it)."""
    from fpsolver.steady.sampling import evaluate_on_grid

    out = None
    if 0 in state.q:
        c, vals = evaluate_on_grid(state.space, state.q[0], grid)
        h = c[1] - c[0]
        ell = state.ell[0]
        # p(y) = q(z) / (ell_e ell_i): integrate over y_i = ell_i z_i
        out = (ell[0] * c, vals.sum(axis=1) * h / ell[0])
    found = comm.allgather(out)
    return next(o for o in found if o is not None)


def states_data(quick: bool, comm) -> dict:
    from fpsolver.steady import solve_steady
    from fpsolver.steady.run import run_steady
    from fpsolver.steady.spectrum import compute_spectrum

    out = {"labels": [], "p": [], "vbar": [], "cov": [], "y_e": [], "p_e": []}
    for label, p, guess in POINTS:
        sc = load_scenario(NAME, [f"{KEY}={p!r}", f"initial.vbar={guess}"])
        state = solve_steady(build_model(sc), comm=comm)
        y, pe = marginal(state, comm)
        for k, v in (("labels", label), ("p", p), ("vbar", state.vbar[0]),
                     ("cov", state.cov[0]), ("y_e", y), ("p_e", pe)):
            out[k].append(v)
    out["spectra"] = {}
    for label, guess in (("lower", [-2.5, -2.5]), ("upper", [2.5, 2.5])):
        sc = load_scenario(NAME, [f"initial.vbar={guess}"])  # the shipped A_e = 0.3
        model, state = run_steady(sc, comm=comm, spectrum=sizes(quick)["spectrum"])
        spec = compute_spectrum(model, state, count=sizes(quick)["spectrum"], comm=comm)
        out["spectra"][label] = {"eigenvalues": spec.eigenvalues,
                                 "residuals": spec.residuals, "vbar": state.vbar[0]}
    return out
# -


# ## Figures

# +
def plot(data: dict) -> list[Path]:
    b, st = data["branch"], data["states"]
    paths = []
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(7.5, 8),
                                  gridspec_kw={"height_ratios": [2, 1]})
    p, v, stable = b["p"], b["vbar"][:, 0], b["stable"]
    plot_stability_runs(ax, p, v, stable)
    folds = [(pk, vk) for kind, pk, vk in b["special"] if kind == "fold"]
    for pk, vk in folds:
        ax.plot(pk, vk, "rs", ms=8)
        ax.annotate(f"fold A_e = {pk:.5f}", (pk, vk), xytext=(8, 0),
                    textcoords="offset points", fontsize=8, va="center")
    for label, pk, vb in zip(st["labels"], st["p"], st["vbar"]):
        ax.plot(pk, vb[0], "o", ms=7, label=label)
    ax.set_xlabel("input A_e (voltage / time)")
    ax.set_ylabel("stationary vbar_e (voltage)")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    # vbar_e is monotone along the S: the eigenvalues along the branch against it
    ax2.plot(v, b["slow"], "C0.-", label="slow: Re of the leading eigenvalue")
    ax2.plot(v, b["fast"], "C3.--", label="fast: largest Re of the balance Jacobian")
    for _, vk in folds:
        ax2.axvline(vk, color="r", lw=0.8, ls=":")
    ax2.axhline(0, color="0.5", lw=0.8)
    ax2.set_ylim(max(-6.0, min(b["slow"].min(), b["fast"].min()) - 0.5), 2.5)
    ax2.set_xlabel("stationary vbar_e along the branch (voltage); dotted: the folds")
    ax2.set_ylabel("eigenvalue (1 / time)")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.suptitle(f"{NAME}: stationary states in A_e (solid stable, dashed unstable)")
    fig.tight_layout()
    paths.append(OUT / "branch.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for label, y, pe, vb, K in zip(st["labels"], st["y_e"], st["p_e"], st["vbar"],
                                   st["cov"]):
        ax.plot(y, pe, label=f"{label}: vbar_e = {vb[0]:.3f}, K_ee = {K[0, 0]:.3f}")
    ax.set_xlabel("fluctuation y_e (voltage)")
    ax.set_ylabel("stationary density p(y_e)")
    ax.set_xlim(-2.5, 2.5)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    fig.suptitle(f"{NAME}: stationary densities along the branch (fpsolver steady)")
    fig.tight_layout()
    paths.append(OUT / "densities.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.5, 5))
    for (label, s), marker in zip(st["spectra"].items(), ("o", "x")):
        ev = s["eigenvalues"]
        ax.plot(ev.real, ev.imag, marker, ms=8,
                label=f"{label} state (vbar_e = {s['vbar'][0]:.3f})")
    ax.axvline(0, color="0.5", lw=0.8)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xlabel("Re (1 / time)")
    ax.set_ylabel("Im (1 / time)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.suptitle(f"{NAME}, A_e = 0.3: slow spectrum of the two stable states")
    fig.tight_layout()
    paths.append(OUT / "spectrum.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def main(quick: bool, comm=None) -> dict:
    """Run and plot; returns the plotted data on rank 0 and ``{}`` on the other ranks."""
    from mpi4py import MPI

    comm = comm if comm is not None else MPI.COMM_WORLD
    if comm.rank == 0:
        OUT.mkdir(exist_ok=True)
    start = time.perf_counter()
    data = {"branch": branch_data(quick, comm)}
    data["timings"] = {"branch": time.perf_counter() - start}
    data["states"] = states_data(quick, comm)
    data["timings"]["states"] = time.perf_counter() - start - data["timings"]["branch"]
    data["ranks"] = comm.size
    if comm.rank != 0:
        return {}
    print(f"  branch: {len(data['branch']['p'])} points, folds at A_e = "
          f"{', '.join(f'{f:.6f}' for f in data['branch']['folds'])} "
          f"({data['timings']['branch']:.0f} s on {comm.size} rank(s))")
    data["figures"] = plot(data)
    print(f"figures in {OUT}/ ({time.perf_counter() - start:.0f} s):")
    for p in data["figures"]:
        print(f"  {p}")
    return data


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the fold pair of bistable-balance")
    parser.add_argument("--full", action="store_true", help="full size (ignored if CI is set)")
    args = parser.parse_args()
    main(quick=bool(os.environ.get("CI")) or not args.full)
# -
