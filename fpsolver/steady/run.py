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

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fpsolver.model import build_model
from fpsolver.output import RunResult

__all__ = ["run_steady", "run_spectrum", "run_continuation", "steady_result",
           "spectrum_half_width", "eigenfunction_dataset", "read_steady_folder",
           "StoredSteady", "SPECTRUM_TOL", "MODEL_SECTIONS"]

# the scenario sections a stationary state depends on (n, seed, times, recording, initial
# data and the discretisation do not change the state of the kinetic limit)
MODEL_SECTIONS = ("populations", "dynamics", "noise", "gains", "kernel", "space")

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


@dataclass
class StoredSteady:
    """A stationary state read from a ``fpsolver steady`` run folder (:func:`read_steady_folder`).

    Attributes:
        vbar, m, ell: (sites, 2) means, mean drift <F> (= -lambda) and frames.
        density: (sites, dofs) the densities p_x(y) at the dofs, y = ell z.
        dof_z: (dofs, 2) the dof coordinates z of the stored mesh.
        folder: where it was read from.
        mesh: the stored solve's ``cells``, ``half_width``, ``degree``, ``grading`` and
            ``domain`` (from its summary.json), or {}.
    """

    vbar: np.ndarray
    m: np.ndarray
    ell: np.ndarray
    density: np.ndarray
    dof_z: np.ndarray
    folder: str
    mesh: dict = field(default_factory=dict)

    def resolution(self, model, numerics) -> tuple | None:
        """``numerics``' cells with the stored solve's Peclet refinements applied, or None.

        The stored run started from the automatic cells of its box and doubled them
        along the axes where the density oscillated; the same factors on this solve's
        automatic cells spare it the refinements it would otherwise repeat. None when the
        stored run was not refined, or its mesh is unknown.
        """
        from fpsolver.kinetic.numerics import resolve_numerics

        try:
            base = resolve_numerics(model).cells
            factors = [int(round(int(c) / int(b))) for c, b in zip(self.mesh["cells"], base)]
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return None
        if len(factors) != 2 or max(factors) <= 1 or min(factors) < 1:
            return None
        return tuple(int(c) * f for c, f in zip(numerics.cells, factors))

    def guess(self, model, space, sites):
        """A :class:`~fpsolver.steady.newton.SteadyState` start on ``space`` (another mesh).

        Each site's density, a finite-element function on the stored mesh (rebuilt from
        the stored cells, half width and degree), is evaluated at the dofs of ``space`` in
        the same frame z (zero outside the stored box, where the density is below the
        truncation tolerance) and scaled to the frame's dof values q = p prod(ell). Where
        the stored mesh cannot be rebuilt (no summary.json, another mesh kind) the
        densities are interpolated piecewise linearly between the stored dofs instead
        (an O(h^2) start: Newton then also corrects the frames, 2 more iterations).
        """
        from fpsolver.steady.newton import SteadyState

        z = space.V.tabulate_dof_coordinates()[:, :2]
        values = self._evaluate_fe(model, z, sites)
        if values is None:
            values = self._evaluate_linear(z, sites)
        q = {int(s): np.clip(v, 0.0, None) * float(np.prod(self.ell[int(s)]))
             for s, v in zip(sites, values)}
        empty = np.full((len(self.vbar), 2), np.nan)
        return SteadyState(vbar=self.vbar.copy(), m=self.m.copy(), ell=self.ell.copy(),
                           cov=np.full((len(self.vbar), 2, 2), np.nan), skewness=empty,
                           kurtosis=empty, q=q, space=space, sites=np.asarray(sites),
                           residuals={}, min_relative=np.zeros(len(self.vbar)))

    def _evaluate_fe(self, model, z, sites):
        from fpsolver.kinetic.numerics import resolve_numerics
        from fpsolver.steady.site import SiteSpace

        m = self.mesh
        num = resolve_numerics(model)
        if not m or m.get("domain") != num.domain or m.get("degree") != num.degree:
            return None
        num.cells = tuple(int(c) for c in m["cells"])
        num.half_width = float(m["half_width"])
        num.grading = float(m["grading"])
        old = SiteSpace(model, num)
        stored_z = old.V.tabulate_dof_coordinates()[:, :2]
        if stored_z.shape != self.dof_z.shape or not np.allclose(stored_z, self.dof_z,
                                                                 atol=1e-9):
            return None  # not the mesh the state was solved on
        import dolfinx_solver  # noqa: F401
        from dolfinx import fem, geometry

        msh = old.V.mesh
        pts = np.column_stack([z, np.zeros(len(z))])
        tree = geometry.bb_tree(msh, msh.topology.dim)
        cells = geometry.compute_colliding_cells(
            msh, geometry.compute_collisions_points(tree, pts), pts)
        first = np.array([cells.links(i)[0] if len(cells.links(i)) else -1
                          for i in range(len(pts))], dtype=np.int32)
        inside = first >= 0
        f = fem.Function(old.V)
        out = []
        for s in sites:
            f.x.array[:] = self.density[int(s)]
            v = np.zeros(len(z))
            v[inside] = f.eval(pts[inside], first[inside])[:, 0]
            out.append(v)
        return out

    def _evaluate_linear(self, z, sites):
        from scipy.interpolate import LinearNDInterpolator
        from scipy.spatial import Delaunay

        tri = Delaunay(self.dof_z)
        return [LinearNDInterpolator(tri, self.density[int(s)], fill_value=0.0)(z)
                for s in sites]


def _leaves(tree, prefix: str = "") -> dict:
    """{"a.b.c": value} of a nested dict."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out = {}
    for k, v in tree.items():
        out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def read_steady_folder(folder, scenario) -> StoredSteady:
    """The stationary state of a finished ``fpsolver steady --out FOLDER`` run.

    The folder is read only: it must be complete and unaltered (its manifest's checksums),
    hold a stationary state (``solver = "steady"``, with the densities) and belong to the
    same model as ``scenario`` (the sections :data:`MODEL_SECTIONS` equal); otherwise a
    :class:`~fpsolver.errors.FpsolverError` names ``--steady``, what differs and the fix.
    """
    import json
    import tomllib

    import xarray as xr

    from fpsolver.errors import FpsolverError, RunFolderError
    from fpsolver.rundir import verify_run_folder
    from fpsolver.scenario import scenario_from_dict

    folder = Path(folder)
    fix = (f"fix: give --steady the --out folder of `fpsolver steady {scenario.name} "
           "--out DIR` with the same --set options, or leave --steady out")
    path = folder / "observables.nc"
    if not folder.is_dir() or not path.is_file():
        raise FpsolverError(f"--steady {folder}: not a run folder with observables.nc -- {fix}")
    try:
        verify_run_folder(folder, allow_interrupted=False)
    except RunFolderError as exc:
        raise FpsolverError(f"--steady {folder}: {exc}") from exc
    try:
        with xr.open_dataset(path) as ds:
            solver = ds.attrs.get("solver")
            stored_toml = ds.attrs.get("scenario_toml", "")
            if solver != "steady" or "density" not in ds:
                raise FpsolverError(f"--steady {folder}: holds a {solver!r} run, not a "
                                    f"stationary state of `fpsolver steady` -- {fix}")
            data = {k: np.asarray(ds[k].values, float) for k in
                    ("vbar", "lambda_", "ell", "density", "dof_z")}
        stored = scenario_from_dict(tomllib.loads(stored_toml)).to_dict()
    except FpsolverError:
        raise
    except Exception as exc:  # unreadable file or scenario
        raise FpsolverError(f"--steady {folder}: cannot read the stationary state ({exc}) "
                            f"-- {fix}") from exc
    there = _leaves({k: stored.get(k) for k in MODEL_SECTIONS})
    here = _leaves({k: scenario.to_dict().get(k) for k in MODEL_SECTIONS})
    diffs = [k for k in sorted(set(there) | set(here)) if there.get(k) != here.get(k)]
    if diffs:
        raise FpsolverError(
            f"--steady {folder}: the stationary state is of another scenario ("
            f"{', '.join(diffs[:4])}{' ...' if len(diffs) > 4 else ''} differ; "
            f"{diffs[0]} = {there.get(diffs[0])!r} there, {here.get(diffs[0])!r} here) "
            f"-- {fix}")
    vbar = data["vbar"][-1]
    if data["density"].shape[0] != len(vbar) or data["dof_z"].shape != (
            data["density"].shape[1], 2):
        raise FpsolverError(f"--steady {folder}: inconsistent shapes of density and dof_z "
                            f"-- {fix}")
    try:
        info = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        mesh = {k: info[k] for k in ("cells", "half_width", "degree", "grading", "domain")}
    except (OSError, ValueError, KeyError, TypeError):
        mesh = {}
    return StoredSteady(vbar=vbar, m=-data["lambda_"][-1], ell=data["ell"],
                        density=data["density"], dof_z=data["dof_z"], folder=str(folder),
                        mesh=mesh)


def run_steady(scenario, *, comm=None, model=None, spectrum: int | None = None,
               start: StoredSteady | None = None):
    """Solve the stationary state of ``scenario``; returns (model, state).

    ``spectrum``: the number of eigenvalues the state is for (a wider box), or None.
    ``start``: a stored stationary state (:func:`read_steady_folder`) that Newton starts
    from, interpolated to this solve's mesh (default: the Gaussian closure).
    """
    from mpi4py import MPI

    from fpsolver.steady.newton import solve_steady
    from fpsolver.steady.site import SiteSpace

    comm = comm or MPI.COMM_WORLD
    model = model or build_model(scenario)
    numerics = _numerics(model, spectrum)
    if start is None:
        return model, solve_steady(model, numerics=numerics, comm=comm)
    cells = start.resolution(model, numerics)
    if cells is not None and not model.scenario.kinetic.cells:
        numerics.cells = cells  # the stored refinements, not redone
    mine = np.array_split(np.arange(model.n_sites), comm.size)[comm.rank]
    guess = start.guess(model, SiteSpace(model, numerics), mine)
    return model, solve_steady(model, comm=comm, guess=guess)


def run_spectrum(scenario, *, comm=None, count: int = 10, target: float | None = None,
                 vectors: bool = False, start: StoredSteady | None = None,
                 fourier: bool = True):
    """Stationary state and leading eigenvalues; returns (model, state, spectrum, report).

    ``report`` is the JSON-ready summary: eigenvalues (real, imag), their residuals and
    error estimates, the verdict, the time scale, the stationary means and, on the
    Fourier route, each eigenvalue's wavenumber (``modes``; None on the full route).
    ``start``: a stored stationary state (``--steady DIR``) to start Newton from, on this
    box. ``fourier=False``: the whole operator even where the Fourier route applies.

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
    model, state = run_steady(scenario, comm=comm, spectrum=count, start=start)
    spec = compute_spectrum(model, state, count=count, target=target, comm=comm,
                            vectors=vectors, fourier=fourier)
    coarse_num = _numerics(model, count)
    coarse_num.cells = tuple(max(4, int(round(c * 2 / 3))) for c in state.info["cells"])
    coarse_state = solve_steady(model, numerics=coarse_num, comm=comm, refine=False)
    coarse = compute_spectrum(model, coarse_state, count=count + 4, target=spec.target,
                              comm=comm, fourier=fourier).eigenvalues
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
        "modes": None if spec.modes is None else spec.modes.tolist(),
        "error_estimates": [float(e) for e in est],
        "unresolved": loose,
        "target": spec.target,
        "neutral": "per site: mass and the mean of y (3 directions, eigenvalue 0, not "
                   "perturbations of the kinetic limit) are deflated",
        "steady": {"vbar": state.vbar.tolist(), "residuals": state.residuals,
                   "newton_per_mesh": state.info["newton_per_mesh"],
                   "start": start.folder if start is not None else "gaussian closure"},
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
