"""``run_kinetic``: the kinetic solver from a scenario to a :class:`RunResult`.

The loop is outside the numerics: it records observables, diagnostics and the run's own
error estimate (:mod:`fpsolver.kinetic.estimator`) at the record times, writes density
snapshots, warns about what makes a result doubtful (:mod:`fpsolver.kinetic.health`),
and reports progress. A run whose estimated error exceeds ``kinetic.tol`` says so, with
the quantity, the dominant part and the fix. The result's ``info`` holds the run's peak
resident memory (:func:`fpsolver.preflight.peak_memory`: summed over the ranks, the
largest rank, per site). Every rank returns the same full result.
"""

from __future__ import annotations

import contextlib
import logging
import time

import numpy as np

from fpsolver.kinetic.estimator import ErrorEstimator
from fpsolver.kinetic.health import HealthWarnings
from fpsolver.kinetic.numerics import resolve_numerics
from fpsolver.kinetic.snapshots import SnapshotWriter
from fpsolver.kinetic.stepper import BOUNDARY_LAYER, MAX_DOFS, KineticStepper
from fpsolver.kinetic.symmetry import reduced_model, site_orbits
from fpsolver.kinetic.timestep import StepControl, observables
from fpsolver.model import build_model
from fpsolver.output import RunResult
from fpsolver.preflight import peak_memory
from fpsolver.timegrid import record_times

__all__ = ["run_kinetic", "error_verdict"]

logger = logging.getLogger(__name__)
_PARTS = ("K_time", "K_space", "K_truncation", "vbar_time", "vbar_space")


def _progress(progress, comm):
    """Return ``report(step, t, t_end)``: the caller's, a 10%-of-t_end logger, or none."""
    if callable(progress):
        return progress
    if progress is None and comm.rank == 0:
        marks = {"next": 0.1}

        def report(step, t, t_end):
            if t >= marks["next"] * t_end - 1e-12:
                marks["next"] = np.floor(10 * t / t_end + 1e-9) / 10 + 0.1
                logger.info("kinetic t = %.4g of %g", t, t_end)
        return report
    return lambda step, t, t_end: None


class _Events:
    """The recording and snapshot times still ahead; steps are cut to land on them."""

    def __init__(self, t_rec, snaps, t0: float):
        self.t_rec = list(t_rec)
        self.times = []  # one event per time: a snapshot 0.1 * 3 is the record time 0.3
        for t in sorted(float(t) for t in list(t_rec) + list(snaps)):
            if not self.times or t - self.times[-1] > self._eps(t):
                self.times.append(t)
        self.snaps = set(float(t) for t in snaps)
        self.ahead = [t for t in self.times if t > t0 + self._eps(t)]

    @staticmethod
    def _eps(t: float) -> float:
        return 1e-9 * max(1.0, abs(t))

    def done(self, t: float) -> bool:
        return not self.ahead

    def limit(self, t: float, dt: float) -> float:
        """The step from t: at most to the next event."""
        nxt = self.ahead[0]
        return nxt - t if t + dt > nxt - self._eps(nxt) else dt

    def reached(self, t: float, rec, writer, stepper, estimator) -> None:
        """Record and write what is due at t."""
        if self.ahead and abs(t - self.ahead[0]) <= self._eps(t):
            t = self.ahead.pop(0)
        elif t != 0.0:
            return
        if any(abs(t - s) <= self._eps(t) for s in self.snaps):
            writer.write(t)
        if any(abs(t - r) <= self._eps(t) for r in self.t_rec):
            _record(rec, stepper, estimator.estimate() if estimator is not None else None)


# -- checkpoint hooks (fpsolver.runtime.RunControl) -------------------------------------
def _state(stepper, estimator, control_dt, rec, writer) -> dict:
    """Everything that continues the run exactly.

    The stepper, its error companions, the step control, the records and the snapshot
    marginals so far (lists: RunControl stacks them only when it writes).
    """
    return {**stepper.state(), **estimator.state(), **control_dt.state(),
            **{f"rec_{k}": v for k, v in rec.items()}, **writer.state()}


def _fields(stepper) -> dict:
    """What must stay finite: this rank's densities (by site), vbar and lambda."""
    d = stepper.dens
    return {"vbar": stepper.vbar, "lambda_": stepper.lam,
            **{(int(site), "density"): d.q[j] for j, site in enumerate(d.sites)}}


def _resume(control, stepper, estimator, control_dt, rec, writer, t_end: float) -> None:
    """Restore the checkpoint of ``control`` if any."""
    control.layout = {"sites": [int(s) for s in stepper.dens.sites]}
    saved = control.resume_state()
    if saved is None:
        return
    if saved.time > t_end * (1 + 1e-12):
        from fpsolver.errors import ScenarioError
        raise ScenarioError("t_end", f"the checkpoint is at t = {saved.time:g} (step "
                            f"{saved.step}), past t_end = {t_end:g}",
                            "resume with a t_end at least as large as the original run's")
    from fpsolver.runtime.checkpoint import agree_on_step  # all ranks, before any collective
    agree_on_step(control.comm, saved.arrays.get("step_index"), saved.step)
    stepper.restore({k: v for k, v in saved.arrays.items()
                     if not k.startswith(("rec_", "snap_", "est_", "control_"))})
    estimator.restore(saved.arrays)
    control_dt.restore(saved.arrays)
    for k in rec:
        rec[k] = list(saved.arrays[f"rec_{k}"])
    writer.restore(saved.arrays, stepper.step_index + 1)


def _record(rec: dict, stepper, estimate: dict | None) -> None:
    """Append the observables, diagnostics and error estimate of the current step."""
    st = stepper.statistics()
    B = stepper.B
    rec["vbar"].append(stepper.vbar.copy())
    rec["cov"].append(st["cov"])
    rec["skewness"].append(st["skewness"])
    rec["kurtosis"].append(st["kurtosis"])
    rec["lambda_"].append(stepper.lam.copy())
    rec["mass"].append(st["mass"])
    rec["min_density"].append(stepper.min_density.copy())
    rec["max_density"].append(stepper.max_density.copy())
    rec["boundary_mass"].append(stepper.layer_mass.copy())
    rec["mean_drift"].append(np.abs(st["mean"]).max(axis=1))
    rec["balance_residual"].append(np.full(B, stepper.residual))
    rec["newton_iterations"].append(np.full(B, stepper.newton))
    rec["step"].append(stepper.step_index)
    for k in ("K", "vbar") + _PARTS:
        key = k if k in _PARTS else f"error_{k}"
        rec[key].append(0.0 if estimate is None else estimate[k])


def error_verdict(arr: dict, tol: float, t=None) -> dict:
    """The run's estimated error (largest over the records) against ``tol``.

    With the dominant part and the fix when it exceeds ``tol``, the record time ``t`` of
    the largest value and the estimate at the end (a transient's error decays).
    """
    K, v = float(arr["error_K"].max()), float(arr["error_vbar"].max())
    parts = {k: float(arr[k].max()) for k in _PARTS}
    out = {"K": K, "vbar": v, "tol": tol, "within_tol": max(K, v) <= tol, **parts,
           "K_final": float(arr["error_K"][-1]), "vbar_final": float(arr["error_vbar"][-1])}
    if out["within_tol"]:
        out["message"] = f"estimated error K {K:.1e}, vbar {v:.1e} (tol {tol:g})"
        return out
    quantity = "K" if K >= v else "vbar"
    mine = {k: val for k, val in parts.items() if k.startswith(quantity)}
    worst = max(mine, key=mine.get)
    fixes = {"time": "lower kinetic.tol (smaller automatic steps) or set a smaller "
                     "kinetic.dt", "space": "raise kinetic.cells",
             "truncation": "raise kinetic.half_width"}
    series = arr["error_K" if quantity == "K" else "error_vbar"]
    when = f" at t = {t[int(np.argmax(series))]:g}" if t is not None else ""
    out["message"] = (f"estimated error of {quantity} {max(K, v):.1e}{when} exceeds "
                      f"kinetic.tol = {tol:g} ({series[-1]:.1e} at the end), mostly from the "
                      f"{worst.split('_')[1]} discretisation ({mine[worst]:.1e}) -- fix: "
                      f"{fixes[worst.split('_')[1]]}")
    return out


def _guard(control, stepper, n, t_new):
    if control is None:
        return contextlib.nullcontext()
    return control.guard_step(n, t_new, fields=lambda: _fields(stepper),
                              masses=lambda: {"density": stepper.mass})


def run_kinetic(scenario, *, comm=None, model=None, progress=None, snapshot_dir=None,
                control=None, symmetry: bool = True) -> RunResult:
    """Solve the kinetic limit (MODEL §2) with finite elements; full result on every rank.

    Args:
        scenario: the scenario (``scenario.kinetic`` sets the discretisation).
        comm: MPI communicator (default ``MPI.COMM_WORLD``); sites are split over its ranks.
        model: a prebuilt :class:`~fpsolver.model.Model` (default ``build_model(scenario)``).
        progress: ``callable(step, t, t_end)``, ``None`` (log every 10%) or ``False``.
        snapshot_dir: where ParaView density snapshots (VTX ``.bp``) go; None: none.
        control: a :class:`~fpsolver.runtime.RunControl` (entered): resume, checkpoints,
            bad-number checks and stop requests at every step; None: none.
        symmetry: solve one site per orbit of the lattice translations that leave the
            model unchanged (:mod:`fpsolver.kinetic.symmetry`: exact); False: every site.
    """
    if comm is None:
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
    start = time.perf_counter()
    full = model or build_model(scenario)
    orbits = site_orbits(full) if symmetry else None
    model = full if orbits is None else reduced_model(full, orbits)
    if orbits is not None and comm.rank == 0:
        logger.info("kinetic: %s", orbits.describe())
    numerics = resolve_numerics(model)
    if comm.rank == 0:
        for note in numerics.notes:
            logger.info("kinetic: %s", note)
    # the refinement budget of the whole lattice: an orbit run refines where the run of
    # every site would, at a fraction of its cost (not finer, and never slower)
    share = 1.0 if orbits is None else model.n_sites / full.n_sites
    stepper = KineticStepper(model, comm, numerics=numerics, max_dofs=int(MAX_DOFS * share))
    estimator = ErrorEstimator(stepper)
    setup = time.perf_counter() - start
    t_end = scenario.t_end
    t_rec = record_times(t_end, scenario.record.every)
    control_dt = StepControl(t_end, numerics.dt_max, numerics.dt, numerics.tol,
                             fixed=numerics.fixed_dt)
    snaps = sorted(set(float(s) for s in scenario.record.snapshots if s <= t_end + 1e-12))
    writer = SnapshotWriter(stepper, snapshot_dir, snaps,
                            labels=None if orbits is None else orbits.representatives)
    names = ("vbar", "cov", "skewness", "kurtosis", "lambda_", "mass", "min_density",
             "max_density", "boundary_mass", "mean_drift", "balance_residual",
             "newton_iterations", "error_K", "error_vbar", "step") + _PARTS
    rec = {k: [] for k in names}
    health = HealthWarnings(comm)
    report = _progress(progress, comm)
    if control is not None:
        _resume(control, stepper, estimator, control_dt, rec, writer, t_end)
    events = _Events(t_rec, snaps, stepper.t)
    loop_start = time.perf_counter()
    kappa_changes = len(stepper.stabilisations)
    if stepper.step_index == 0:
        events.reached(0.0, rec, writer, stepper, None)
    while not events.done(stepper.t):
        dt = events.limit(stepper.t, control_dt.next_step(stepper.t))
        n = stepper.step_index + 1
        with _guard(control, stepper, n, stepper.t + dt):
            stepper.step(dt)
            estimator.advance()
        if len(stepper.stabilisations) != kappa_changes:  # kappa changed the operator
            kappa_changes = len(stepper.stabilisations)
            control_dt.restart()
        # artificial diffusion on: the time error need not go below its space error
        control_dt.floor = estimator.space_error() if stepper.kappa.any() else 0.0
        control_dt.accept(stepper.t, observables(stepper))
        control_dt.watch(estimator.time_error)
        health.check(stepper)
        report(stepper.step_index, stepper.t, t_end)
        events.reached(stepper.t, rec, writer, stepper, estimator)
        if control is not None:
            control.end_of_step(n, stepper.t, lambda: _state(stepper, estimator, control_dt,
                                                             rec, writer),
                                fields=_fields(stepper), masses={"density": stepper.mass})
    steps = stepper.step_index
    if control is not None:
        control.finish(steps, stepper.t,
                       lambda: _state(stepper, estimator, control_dt, rec, writer))
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
        "min_density": (per_site, arr["min_density"],
                        {"long_name": "smallest dof value of the density in its frame"}),
        "max_density": (per_site, arr["max_density"],
                        {"long_name": "largest dof value of the density in its frame"}),
        "boundary_mass": (per_site, arr["boundary_mass"], {
            "long_name": f"mass in the outer {100 * BOUNDARY_LAYER:g}% of the state box"}),
        "mean_drift": (per_site, arr["mean_drift"], {"long_name": "max_a |<y_a>| (exact 0)"}),
        "balance_residual": (per_site, arr["balance_residual"],
                             {"long_name": "max |U^T Phi| after Newton"}),
        "newton_iterations": (per_site, arr["newton_iterations"],
                              {"long_name": "Newton iterations of the balance solve"}),
        "error_K": (("time",), arr["error_K"], {
            "long_name": "estimated relative error of K (largest over sites)"}),
        "error_vbar": (("time",), arr["error_vbar"], {
            "long_name": "estimated error of vbar relative to max(1, |vbar|)"}),
        **{f"error_{k}": (("time",), arr[k], {"long_name": f"part of the estimate: {k}"})
           for k in _PARTS},
        **writer.extras(),
    }
    estimate = error_verdict(arr, numerics.tol, t_rec)
    if comm.rank == 0 and not estimate["within_tol"]:
        logger.warning("kinetic: %s", estimate["message"])
    dofs = stepper.dens.V.dofmap.index_map.size_global
    peak = peak_memory(comm)
    info = {"wall_time": time.perf_counter() - start, "setup_time": setup, "steps": steps,
            "seconds_per_step": loop / max(steps, 1), "dofs": int(dofs),
            "ranks": comm.size, "site_groups": stepper.layout.groups,
            **numerics.to_dict(), "notes": list(numerics.notes),
            "dt_last": float(stepper.dt), "dt_changes": int(control_dt.changes),
            "refinements": [[int(k), list(c)] for k, c in stepper.refinements],
            "stabilised": [[int(k), float(t), [float(x) for x in kap]]
                           for k, t, kap in stepper.stabilisations],
            "error_estimate": estimate,
            "factorisations": int(comm.allreduce(stepper.imex.factorisations)),
            "max_mean_drift": float(arr["mean_drift"].max()),
            "max_boundary_mass": float(arr["boundary_mass"].max()),
            "min_density": float(arr["min_density"].min()),
            "min_density_relative": min(health.min_relative, float(
                (arr["min_density"] / arr["max_density"]).min())),
            **peak, "peak_memory_per_site": peak["peak_memory"] / model.n_sites}
    result = RunResult(kind="kinetic", t=np.array(t_rec), vbar=arr["vbar"], cov=arr["cov"],
                       sites=model.sites, extra=extra, info=info)
    return result if orbits is None else _expand(result, full, orbits)


def _expand(result: RunResult, full, orbits) -> RunResult:
    """The result on every site of ``full``: each orbit's values copied to its sites."""
    index = orbits.index
    extra = {}
    for name, (dims, values, attrs) in result.extra.items():
        if "site" in dims:
            values = np.take(values, index, axis=dims.index("site"))
        elif name == "density_site":
            values = orbits.representatives[values]
        extra[name] = (dims, values, attrs)
    info = {**result.info, "distinct_sites": len(orbits.representatives),
            "symmetry_axes": [int(a) for a in orbits.axes]}
    return RunResult(kind=result.kind, t=result.t, vbar=result.vbar[:, index],
                     cov=result.cov[:, index], sites=full.sites, extra=extra, info=info)
