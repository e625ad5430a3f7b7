"""``run_kinetic``: the kinetic solver from a scenario to a :class:`RunResult`.

The loop is outside the numerics: it records observables and diagnostics at the record
times, writes density snapshots, warns about truncation, and reports progress. Every rank
returns the same full result.
"""

from __future__ import annotations

import contextlib
import logging
import time

import numpy as np

from fpsolver.gaussian import record_times
from fpsolver.kinetic.snapshots import SnapshotWriter
from fpsolver.kinetic.stepper import BOUNDARY_LAYER, KineticStepper
from fpsolver.model import build_model
from fpsolver.output import RunResult

__all__ = ["run_kinetic", "LAYER_WARN"]

logger = logging.getLogger(__name__)
LAYER_WARN = 1e-4  # boundary-layer mass above which the truncation is reported


def _progress(progress, comm):
    if callable(progress):
        return progress
    if progress is None and comm.rank == 0:
        return lambda n, steps, t: (n % max(1, steps // 10) == 0 and
                                    logger.info("kinetic step %d/%d, t = %g", n, steps, t))
    return lambda n, steps, t: None


# -- checkpoint hooks (fpsolver.runtime.RunControl) -------------------------------------
def _state(stepper, rec, writer) -> dict:
    """Everything that continues the run exactly: the stepper, the records and the
    snapshot marginals so far (lists: RunControl stacks them only when it writes)."""
    return {**stepper.state(), **{f"rec_{k}": v for k, v in rec.items()}, **writer.state()}


def _fields(stepper) -> dict:
    """What must stay finite: this rank's densities (by site), vbar and lambda."""
    g = stepper.group
    return {"vbar": stepper.vbar, "lambda_": stepper.lam,
            **{(int(site), "density"): g.p[j] for j, site in enumerate(g.sites)}}


def _resume(control, stepper, rec, writer, steps: int) -> int:
    """Restore the checkpoint of ``control`` if any; the first step still to run."""
    control.layout = {"sites": [int(s) for s in stepper.group.sites],
                      "dofs": int(stepper.group.p.shape[1])}
    saved = control.resume_state()
    if saved is None:
        return 0
    if saved.step > steps:
        from fpsolver.errors import ScenarioError
        raise ScenarioError("t_end", f"the checkpoint is at t = {saved.time:g} (step "
                            f"{saved.step}), past t_end = {steps * stepper.dt:g}",
                            "resume with a t_end at least as large as the original run's")
    stepper.restore({k: v for k, v in saved.arrays.items()
                     if not k.startswith(("rec_", "snap_"))})
    for k in rec:
        rec[k] = list(saved.arrays[f"rec_{k}"])
    writer.restore(saved.arrays, stepper.step_index + 1)
    return stepper.step_index + 1


def _guard(control, stepper, n):
    if control is None:
        return contextlib.nullcontext()
    return control.guard_step(n, n * stepper.dt, fields=lambda: _fields(stepper),
                              masses=lambda: {"density": stepper.mass})


def run_kinetic(scenario, *, comm=None, model=None, progress=None, snapshot_dir=None,
                ref_tol: float = 0.05, control=None) -> RunResult:
    """Solve the kinetic limit (MODEL §2) with finite elements; full result on every rank.

    Args:
        scenario: the scenario (``scenario.kinetic`` sets the discretisation).
        comm: MPI communicator (default ``MPI.COMM_WORLD``); sites are split over its ranks.
        model: a prebuilt :class:`~fpsolver.model.Model` (default ``build_model(scenario)``).
        progress: ``callable(step, steps, t)``, ``None`` (log every 10%) or ``False``.
        snapshot_dir: where ParaView density snapshots (VTX ``.bp``) go; None: none.
        ref_tol: drift of a site from the shared reference before refactorisation.
        control: a :class:`~fpsolver.runtime.RunControl` (entered): resume, checkpoints,
            bad-number checks and stop requests at every step; None: none.
    """
    if comm is None:
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
    start = time.perf_counter()
    model = model or build_model(scenario)
    kin = scenario.kinetic
    stepper = KineticStepper(model, comm, ref_tol=ref_tol)
    setup = time.perf_counter() - start
    B = model.n_sites
    dt = kin.dt
    t_rec = record_times(scenario.t_end, scenario.record.every)
    rec_steps = np.rint(t_rec / dt).astype(int)
    steps = int(rec_steps[-1])
    snaps = sorted(set(int(round(s / dt)) for s in scenario.record.snapshots
                       if s <= scenario.t_end + 1e-12))
    writer = SnapshotWriter(stepper, snapshot_dir, snaps)
    names = ("vbar", "cov", "skewness", "kurtosis", "lambda_", "mass", "min_density",
             "boundary_mass", "mean_drift", "balance_residual", "newton_iterations")
    rec = {k: [] for k in names}
    warned = False
    report = _progress(progress, comm)
    first = _resume(control, stepper, rec, writer, steps) if control is not None else 0
    loop_start = time.perf_counter()
    for n in range(first, steps + 1):
        if n:
            with _guard(control, stepper, n):
                stepper.step()
            report(n, steps, stepper.t)
        if n in writer.steps:
            writer.write(n * dt)
        if n in rec_steps:
            st = stepper.statistics()
            rec["vbar"].append(stepper.vbar.copy())
            rec["cov"].append(st["cov"])
            rec["skewness"].append(st["skewness"])
            rec["kurtosis"].append(st["kurtosis"])
            rec["lambda_"].append(stepper.lam.copy())
            rec["mass"].append(st["mass"])
            rec["min_density"].append(stepper.min_density.copy())
            rec["boundary_mass"].append(stepper.layer_mass.copy())
            rec["mean_drift"].append(np.abs(st["mean"]).max(axis=1))
            rec["balance_residual"].append(np.full(B, stepper.residual))
            rec["newton_iterations"].append(np.full(B, stepper.newton))
            worst = stepper.layer_mass.max()
            if worst > LAYER_WARN and not warned and comm.rank == 0:
                warned = True
                logger.warning(
                    "kinetic: mass %.2e within %g%% of the boundary of the state domain at "
                    "t = %g (site %d): the truncation to half width %g matters -- fix: "
                    "raise kinetic.half_width", worst, 100 * BOUNDARY_LAYER, n * dt,
                    int(stepper.layer_mass.argmax()), stepper.smesh.radius)
        if control is not None and n:
            control.end_of_step(n, stepper.t, lambda: _state(stepper, rec, writer),
                                fields=_fields(stepper), masses={"density": stepper.mass})
    if control is not None:
        control.finish(steps, stepper.t, lambda: _state(stepper, rec, writer))
    loop = time.perf_counter() - loop_start
    writer.close()
    arr = {k: np.array(v) for k, v in rec.items()}
    per_pop = ("time", "site", "population")
    per_site = ("time", "site")
    extra = {
        "skewness": (per_pop, arr["skewness"], {"long_name": "skewness of y_a"}),
        "kurtosis": (per_pop, arr["kurtosis"], {"long_name": "kurtosis of y_a (Gaussian 3)"}),
        "lambda_": (per_pop, arr["lambda_"], {"long_name": "balance current lambda (MODEL 2c)",
                                              "units": "voltage / time"}),
        "mass": (per_site, arr["mass"], {"long_name": "total mass of p_x"}),
        "min_density": (per_site, arr["min_density"], {"long_name": "min dof value of p_x"}),
        "boundary_mass": (per_site, arr["boundary_mass"], {
            "long_name": f"mass in the outer {100 * BOUNDARY_LAYER:g}% of the state domain"}),
        "mean_drift": (per_site, arr["mean_drift"], {"long_name": "max_a |<y_a>| (exact 0)"}),
        "balance_residual": (per_site, arr["balance_residual"],
                             {"long_name": "max |U^T Phi| after Newton"}),
        "newton_iterations": (per_site, arr["newton_iterations"],
                              {"long_name": "Newton iterations of the balance solve"}),
        **writer.extras(),
    }
    dofs = stepper.group.V.dofmap.index_map.size_global
    info = {"wall_time": time.perf_counter() - start, "setup_time": setup, "steps": steps,
            "seconds_per_step": loop / max(steps, 1), "dofs": int(dofs),
            "ranks": comm.size, "site_groups": stepper.layout.groups,
            "degree": kin.degree, "cells": kin.cells, "scheme": kin.scheme, "dt": dt,
            "refactorisations": int(comm.allreduce(stepper.group.refactorisations)),
            "max_mean_drift": float(arr["mean_drift"].max()),
            "max_boundary_mass": float(arr["boundary_mass"].max()),
            "min_density": float(arr["min_density"].min())}
    return RunResult(kind="kinetic", t=rec_steps * dt, vbar=arr["vbar"], cov=arr["cov"],
                     sites=model.sites, extra=extra, info=info)
