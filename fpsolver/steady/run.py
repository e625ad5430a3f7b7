"""From a scenario to a stationary state and its spectrum, in the shapes the CLI writes.

``run_steady`` returns the :class:`~fpsolver.output.RunResult` of a stationary state (one
"time", the same variables as a kinetic run, plus each site's density), so
``observables.nc`` of ``fpsolver steady`` compares directly with a kinetic run's last
record. ``run_spectrum`` adds the leading eigenvalues of the linearised kinetic limit;
its box is wider than the density's (:func:`spectrum_half_width`), since the eigenfunctions
(Hermite-like: a polynomial of degree k times the density) reach further: the truncation
error of the degree-k mode at L sd is ~ L^(2k) exp(-L^2 / 2) / k!. Measured on the
Ornstein-Uhlenbeck spectrum (tenth eigenvalue): 6 sd 2e-3, 8 sd 6e-8 (degree 5) but
4e-6 (degree 7), 10 sd 1e-9.
"""

from __future__ import annotations

import numpy as np

from fpsolver.model import build_model
from fpsolver.output import RunResult

__all__ = ["run_steady", "run_spectrum", "run_continuation", "steady_result",
           "spectrum_half_width", "eigenfunction_dataset", "SPECTRUM_TOL"]

SPECTRUM_TOL = 1e-4  # estimated eigenvalue error (relative to max(1, |lambda|)) that warns


def spectrum_half_width(count: int) -> float:
    """Box half width (sd) for ``count`` eigenvalues: 6 + sqrt(2 count + 3).

    The highest mode among the first ``count`` has degree <= count + 1, whose
    eigenfunction turns at sqrt(2 k + 1) sd; 6 more sd leave its truncation error below
    1e-8 (10.8 sd for 10 eigenvalues).
    """
    return 6.0 + float(np.sqrt(2 * count + 3))


def _numerics(model, count: int | None):
    from fpsolver.kinetic.numerics import resolve_numerics

    num = resolve_numerics(model)
    if count and not model.scenario.kinetic.half_width and not num.fixed_frame:
        num.half_width = max(num.half_width, spectrum_half_width(count))
        num.notes.append(f"spectrum: half_width = {num.half_width:g} sd (eigenfunctions "
                         "reach further than the density)")
    return num


def steady_result(model, state, comm) -> RunResult:
    """The stationary state as a one-record :class:`RunResult` (t = [0]); every rank."""
    from fpsolver.steady.newton import _gather

    S = model.n_sites
    sp = state.space
    n = sp.n
    dens = _gather(comm, state.sites,
                   [state.q[int(s)] / np.prod(state.ell[s]) for s in state.sites], (n,), S)
    z = sp.V.tabulate_dof_coordinates()[:, :2]
    one = lambda a: a[None]  # noqa: E731 - one record
    extra = {
        "skewness": (("time", "site", "population"), one(state.skewness),
                     {"long_name": "skewness of y_a"}),
        "kurtosis": (("time", "site", "population"), one(state.kurtosis),
                     {"long_name": "kurtosis of y_a (Gaussian 3)"}),
        "lambda_": (("time", "site", "population"), one(state.lam),
                    {"long_name": "balance current lambda = -<F> (MODEL 2c)",
                     "units": "voltage / time"}),
        "min_density_relative": (("time", "site"), one(state.min_relative),
                                 {"long_name": "smallest dof value / peak of the density"}),
        "ell": (("site", "population"), state.ell,
                {"long_name": "frame: y_a = ell_a z_a (the density's standard deviation)"}),
        "density": (("site", "dof"), dens,
                    {"long_name": "stationary density p_x(y) at the dofs, y = ell z"}),
        "dof_z": (("dof", "axis"), z, {"long_name": "dof coordinates z (y = ell z per site)"}),
    }
    info = {**state.info, "residuals": state.residuals,
            "min_density_relative": float(state.min_relative.min())}
    return RunResult(kind="steady", t=np.array([0.0]), vbar=one(state.vbar),
                     cov=one(state.cov), sites=model.sites, extra=extra, info=info)


def run_steady(scenario, *, comm=None, model=None, spectrum: int | None = None):
    """Solve the stationary state of ``scenario``; returns (model, state).

    ``spectrum``: the number of eigenvalues the state is for (a wider box), or None.
    """
    from mpi4py import MPI

    from fpsolver.steady.newton import solve_steady

    comm = comm or MPI.COMM_WORLD
    model = model or build_model(scenario)
    state = solve_steady(model, numerics=_numerics(model, spectrum), comm=comm)
    return model, state


def run_spectrum(scenario, *, comm=None, count: int = 10, target: float | None = None,
                 vectors: bool = False):
    """Stationary state and leading eigenvalues; returns (model, state, spectrum, report).

    ``report`` is the JSON-ready summary: eigenvalues (real, imag), their residuals and
    error estimates, the verdict, the time scale and the stationary means.

    Error estimate: the same computation on a mesh with 2/3 of the cells per axis; each
    eigenvalue's estimate is its distance to the nearest coarse one (P2 eigenvalues
    converge like h^4, so the fine error is about a quarter of it; it also flags
    spurious eigenvalues of an unresolved mesh; the box truncation, shared by both meshes,
    is kept below 1e-8 by :func:`spectrum_half_width`). Eigenvalues whose estimate exceeds
    :data:`SPECTRUM_TOL` relative to max(1, |lambda|) are named in a warning.
    """
    import logging

    from mpi4py import MPI

    from fpsolver.steady.newton import solve_steady
    from fpsolver.steady.spectrum import compute_spectrum, verdict

    comm = comm or MPI.COMM_WORLD
    model, state = run_steady(scenario, comm=comm, spectrum=count)
    spec = compute_spectrum(model, state, count=count, target=target, comm=comm,
                            vectors=vectors)
    coarse_num = _numerics(model, count)
    coarse_num.cells = tuple(max(4, int(round(c * 2 / 3))) for c in state.info["cells"])
    coarse_state = solve_steady(model, numerics=coarse_num, comm=comm, refine=False)
    coarse = compute_spectrum(model, coarse_state, count=count + 4, target=spec.target,
                              comm=comm).eigenvalues
    est = np.array([np.abs(coarse - lam).min() if len(coarse) else np.inf
                    for lam in spec.eigenvalues])
    loose = [k for k, (lam, e) in enumerate(zip(spec.eigenvalues, est))
             if e > SPECTRUM_TOL * max(1.0, abs(lam))]
    if loose and comm.rank == 0:
        logging.getLogger(__name__).warning(
            "spectrum: eigenvalues %s are not resolved by the mesh (estimated error up to "
            "%.1e) -- fix: raise kinetic.cells or ask for fewer (--count)",
            loose, float(est[loose].max()))
    report = {
        "scenario": scenario.name, **verdict(spec.eigenvalues),
        "eigenvalues": [[float(z.real), float(z.imag)] for z in spec.eigenvalues],
        "residuals": [float(r) for r in spec.residuals],
        "error_estimates": [float(e) for e in est],
        "unresolved": loose,
        "target": spec.target,
        "neutral": "per site: mass and the mean of y (3 directions, eigenvalue 0, not "
                   "perturbations of the kinetic limit) are deflated",
        "steady": {"vbar": state.vbar.tolist(), "residuals": state.residuals},
        "info": {**spec.info, "steady_wall_time": state.info["wall_time"],
                 "cells": list(state.info["cells"]), "half_width": state.info["half_width"],
                 "degree": state.info["degree"]},
    }
    return model, state, spec, report


def run_continuation(scenario_arg, overrides: list, key: str, p_from: float, p_to: float,
                     *, comm=None, count: int = 4, max_points: int = 400,
                     run_id: str | None = None):
    """Continue the stationary state of a scenario in the field ``key``.

    Returns (branch, dataset): the :class:`~fpsolver.steady.continuation.Branch` and its
    ``branch.nc`` dataset (:mod:`fpsolver.steady.branch_io`).
    """
    from fpsolver.rundir import new_run_id
    from fpsolver.scenario import load_scenario
    from fpsolver.steady.branch_io import branch_dataset
    from fpsolver.steady.continuation import continue_branch

    def model_at(p: float):
        setting = f"{key}={float(p)!r}"
        return build_model(load_scenario(scenario_arg, list(overrides) + [setting]))

    branch = continue_branch(model_at, p_from, p_to, comm=comm, count=count,
                             max_points=max_points)
    scenario = load_scenario(scenario_arg, list(overrides) + [f"{key}={p_from!r}"])
    dataset = branch_dataset(branch, key, scenario,
                             {"run_id": run_id or new_run_id(), "status": "complete"})
    return branch, dataset


def eigenfunction_dataset(model, state, spec, comm, run_attrs: dict):
    """The eigenfunctions of a spectrum (computed with ``vectors=True``) as a Dataset.

    ``density_re/density_im(eigenvalue, site, dof)``: the density perturbation in y at the
    dofs (y = ell z, ``dof_z`` and ``ell`` as in ``observables.nc`` of ``steady``), with
    ``dvbar_re/dvbar_im(eigenvalue, site, population)`` the mean perturbation that goes
    with it, and the eigenvalues. Collective; every rank gets the whole set.
    """
    import xarray as xr

    from fpsolver.steady.newton import _gather

    S, n = model.n_sites, state.space.n
    k = len(spec.eigenvalues)
    parts = {}
    for name, take in (("re", np.real), ("im", np.imag)):
        rows = [take(spec.vectors[int(s)]) / np.prod(state.ell[s]) for s in state.sites]
        full = _gather(comm, state.sites, rows, (k, n), S)          # (site, k, dof)
        parts[name] = full.transpose(1, 0, 2)
    data = {
        "eigenvalue_re": (("eigenvalue",), spec.eigenvalues.real),
        "eigenvalue_im": (("eigenvalue",), spec.eigenvalues.imag),
        "density_re": (("eigenvalue", "site", "dof"), parts["re"]),
        "density_im": (("eigenvalue", "site", "dof"), parts["im"]),
        "dvbar_re": (("eigenvalue", "site", "population"), spec.dvbar.real),
        "dvbar_im": (("eigenvalue", "site", "population"), spec.dvbar.imag),
        "ell": (("site", "population"), state.ell),
        "dof_z": (("dof", "axis"), state.space.V.tabulate_dof_coordinates()[:, :2]),
        "stationary_density": (("site", "dof"), _gather(
            comm, state.sites, [state.q[int(s)] / np.prod(state.ell[s]) for s in state.sites],
            (n,), S)),
    }
    return xr.Dataset(data, coords={"population": ["e", "i"]},
                      attrs={"scenario_name": model.scenario.name, "solver": "spectrum",
                             **run_attrs})
