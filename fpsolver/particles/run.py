"""The particle simulator driver: :func:`run_particles` (MODEL §1).

Simulates the exact finite network of n E-I pairs,

    dv_a^j = [F_a(v^j) + sqrt(n) I_a(x_j, t)] dt + S_aa(v^j) dW_a^j,
    I_a(x, t) = A_a(x) + (1/n) sum_k sum_b s_b J_ab(x, x_k) G_ab(v_b^k),

by Itô Euler-Maruyama (F and S at the start of the step) with the stiff balanced term
sqrt(n) I treated linearly implicitly (:mod:`.coupling`), so dt is not limited by
sqrt(n). Time in units of tau, voltages dimensionless. Records the per-bin moments on the
grid ``record_times(t_end, record.every)`` and state snapshots at ``record.snapshots``.
SIGTERM/SIGINT stop the loop at the end of the current step and raise
:class:`~fpsolver.runtime.Interrupted` carrying the records reached.
"""

from __future__ import annotations

import logging
import sys
import time

import numpy as np

from fpsolver.errors import Interrupted, NumericalError, ScenarioError
from fpsolver.families import COMPILED_GAINS
from fpsolver.model import Model, build_model
from fpsolver.output import RunResult
from fpsolver.particles import records
from fpsolver.particles.coupling import make_lowrank
from fpsolver.particles.noise import NormalStream
from fpsolver.particles.positions import initial_means, make_layout
from fpsolver.particles.steppers import NumbaStepper, NumpyStepper, block_size
from fpsolver.runtime.signals import StopRequest
from fpsolver.scenario import Scenario
from fpsolver.timegrid import record_times

__all__ = ["run_particles"]

logger = logging.getLogger(__name__)
_OVERFLOW = 1e100  # |mean state| beyond this counts as overflow
_PARALLEL_MIN = 65536  # pairs below which the compiled passes run on one thread
_FAMILY_FIELD = {"F": "dynamics.family", "S": "noise.family", "G": "gains.family"}


def _steps(scenario: Scenario) -> tuple[int, float]:
    steps = max(1, int(round(scenario.t_end / scenario.dt)))
    return steps, scenario.t_end / steps


def _bar(progress: bool | None, total: int):
    show = sys.stderr.isatty() if progress is None else bool(progress)
    if not show:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="step", desc="particles", file=sys.stderr)


def run_particles(scenario: Scenario, *, model: Model | None = None,
                  progress: bool | None = None, backend: str = "auto",
                  implicit: bool = True, threads: int | None = None,
                  initial_state: np.ndarray | None = None) -> RunResult:
    """Simulate the finite network of ``scenario`` and record its observables.

    Args:
        scenario: the scenario (n, seed, dt, t_end, record, space.positions, ...).
        model: the model to simulate (default ``build_model(scenario)``); its terms are
            read from the model, the run settings from ``scenario``. A model with a user
            callable for F, S_diag or G (:meth:`~fpsolver.model.Model.builtin` false) runs
            on the numpy path.
        progress: ``None``: a tqdm bar only when stderr is a terminal; or a bool.
        backend: ``auto`` (numba when F, S and G are built-in families), ``numba`` or
            ``numpy``.
        implicit: linearly implicit stiff term (default) or plain explicit
            Euler-Maruyama (for comparison; needs dt sqrt(n) |eig(DPhi)| < ~1).
        threads: numba threads for the time loop (default: numba's current count; one
            thread below 65536 pairs); results do not depend on it.
        initial_state: v of every pair at t = 0, shape (n, 2), in the layout's order
            (mean field: any order); default the balanced means plus N(0, K0) draws.

    Returns:
        A :class:`~fpsolver.output.RunResult` (``kind="particles"``): ``vbar``/``cov`` per
        site bin; ``extra``: ``skewness``, ``kurtosis`` (plain), ``count``, on the ring
        ``fourier1_re``/``fourier1_im``, and ``state`` snapshots; ``info``: wall_time,
        steps, neuron_steps_per_second, seed, dt, backend.

    Raises:
        ScenarioError: unsupported combination (named field).
        NumericalError: the state became NaN/Inf or overflowed (step and time given).
        Interrupted: SIGTERM or SIGINT arrived (caught while the time loop runs, in the
            main thread): the loop stopped at the end of the current step, and
            ``.result`` is the run so far -- the time axis cut to the records reached
            (snapshots likewise), ``info["interrupted"]`` = ``"SIGTERM at t = ..."``. A
            second signal of the same kind ends the run at once (Ctrl-C twice:
            KeyboardInterrupt). There is no checkpoint: a particle run is redone.
    """
    import numba

    start = time.perf_counter()
    model = model or build_model(scenario)
    sc = scenario
    if backend not in ("auto", "numba", "numpy"):
        raise ValueError(f"backend must be 'auto', 'numba' or 'numpy', got {backend!r}")
    builtin = model.builtin("F", "S", "G")  # the terms the compiled kernels evaluate
    if backend == "numba" and not builtin:
        term = next(t for t in ("F", "S", "G") if not model.builtin(t))
        raise ScenarioError(_FAMILY_FIELD[term], f"the numba backend needs the built-in F, "
                            f"S and G families, but {term} is a user callable (it runs on "
                            "the numpy path)", "use backend='numpy' or 'auto'")
    gains = model.family("G").name
    if builtin and gains not in COMPILED_GAINS:  # a shape per pair: the numpy path
        if backend == "numba":
            raise ScenarioError("gains.family", f"the numba backend compiles the gains "
                                f"{list(COMPILED_GAINS)} (one shape for all pairs), not "
                                f"'{gains}' (it runs on the numpy path)",
                                "use backend='numpy' or 'auto'")
        builtin = False
    use_numba = backend == "numba" or (backend == "auto" and builtin)
    layout = make_layout(model, sc)
    lowrank = make_lowrank(model, layout.cosine)
    steps, dt = _steps(sc)
    n = sc.n
    t_rec = record_times(sc.t_end, sc.record.every)
    late = [ts for ts in sc.record.snapshots if ts > sc.t_end + 1e-12]
    if late:
        logger.warning("record.snapshots: times %s are after t_end = %g and are skipped",
                       late, sc.t_end)
    t_snap = np.array(sorted(ts for ts in sc.record.snapshots if ts not in late), dtype=float)
    rec_at: dict[int, list[int]] = {}
    for r, ts in enumerate(t_rec):
        rec_at.setdefault(int(round(ts / dt)), []).append(r)
    snap_at: dict[int, list[int]] = {}
    for r, ts in enumerate(t_snap):
        snap_at.setdefault(int(round(ts / dt)), []).append(r)

    noise = NormalStream(n, sc.seed, block_size(n, lowrank.rank))
    K0 = np.array(sc.initial.cov)
    v0 = initial_means(model, layout, sc) + noise.draw() @ np.linalg.cholesky(K0).T
    if initial_state is not None:
        initial_state = np.asarray(initial_state, dtype=float)
        if initial_state.shape != (n, 2) or not np.isfinite(initial_state).all():
            raise ValueError(f"initial_state must be a finite array of shape ({n}, 2), got "
                             f"shape {initial_state.shape}")
        v0 = initial_state.copy()
    Stepper = NumbaStepper if use_numba else NumpyStepper
    stepper = Stepper(model, layout, lowrank, noise, v0, dt, implicit)

    B = model.n_sites
    count = np.bincount(layout.bins, minlength=B)
    T = len(t_rec)
    vbar = np.full((T, B, 2), np.nan)
    cov = np.full((T, B, 2, 2), np.nan)
    skew = np.full((T, B, 2), np.nan)
    kurt = np.full((T, B, 2), np.nan)
    ring = layout.cs is not None
    four = np.full((T, 2, 2), np.nan)
    keep = records.snapshot_index(n)
    snaps = np.full((len(t_snap), len(keep), 2), np.nan)

    def look(k: int) -> None:
        if k not in rec_at and k not in snap_at:
            return
        v = stepper.state()
        if k in rec_at:
            moments = records.bin_moments(v, layout.bins, count)
            f1 = records.fourier1(v, layout.cs) if ring else None
            for r in rec_at[k]:
                vbar[r], cov[r], skew[r], kurt[r] = moments
                if ring:
                    four[r] = f1
        for r in snap_at.get(k, []):
            snaps[r] = v[keep]

    bar = _bar(progress, steps)
    loop_start = time.perf_counter()
    numba_threads = numba.get_num_threads()
    # below _PARALLEL_MIN a parallel launch costs more than the work (results unchanged)
    threads = 1 if n < _PARALLEL_MIN else threads or numba_threads
    numba.set_num_threads(threads)
    done = 0  # steps completed
    try:
        with StopRequest() as stop:
            look(0)
            for k in range(steps):
                stepper.step()
                _check(stepper, k, dt, n)
                look(k + 1)
                done = k + 1
                if bar is not None:
                    bar.update(1)
                if stop.requested():
                    break
    finally:
        numba.set_num_threads(numba_threads)
        if bar is not None:
            bar.close()
    loop_time = time.perf_counter() - loop_start
    # the records reached (all of them unless stopped early)
    T = sum(1 for ts in t_rec if round(ts / dt) <= done)
    S = sum(1 for ts in t_snap if round(ts / dt) <= done)
    t_rec, vbar, cov, skew, kurt, four = (a[:T] for a in (t_rec, vbar, cov, skew, kurt, four))
    t_snap, snaps = t_snap[:S], snaps[:S]

    extra = {
        "skewness": (("time", "site", "population"), skew,
                     {"long_name": "skewness E[y^3]/K^(3/2) per bin"}),
        "kurtosis": (("time", "site", "population"), kurt,
                     {"long_name": "plain kurtosis E[y^4]/K^2 per bin (Gaussian: 3, "
                      "not excess)"}),
        "count": (("site",), count, {"long_name": "pairs per site bin"}),
        "snapshot_time": (("snapshot_time",), t_snap, {"units": "time (units of tau)"}),
        "state": (("snapshot_time", "pair", "population"), snaps,
                  {"long_name": "states v of the pairs kept in snapshots", "units": "voltage"}),
        "pair_index": (("pair",), keep, {"long_name": "index j of the pair in the network"}),
        "site_of_pair": (("pair",), layout.bins[keep], {"long_name": "bin of the pair"}),
        "pair_x": (("pair", "dim"), layout.x[keep], {"long_name": "position x_j"}),
    }
    if ring:
        extra["fourier1_re"] = (("time", "population"), four[:, 0],
                                {"long_name": "(1/n) sum_j v_a^j cos x_j"})
        extra["fourier1_im"] = (("time", "population"), four[:, 1],
                                {"long_name": "(1/n) sum_j v_a^j sin x_j"})
    info = {"wall_time": time.perf_counter() - start, "loop_time": loop_time,
            "steps": done, "dt": dt, "n": n, "seed": sc.seed,
            "neuron_steps_per_second": 2 * n * done / loop_time,
            "backend": "numba" if use_numba else "numpy",
            "scheme": "linearly-implicit" if implicit else "explicit",
            "kernel_features": lowrank.kind, "kernel_rank": lowrank.rank,
            "kernel_exact": layout.exact, "threads": threads}
    result = RunResult(kind="particles", t=t_rec, vbar=vbar, cov=cov, sites=model.sites,
                       extra=extra, info=info)
    if done < steps:
        info["interrupted"] = f"{stop.signal_name} at t = {done * dt:.6g}"
        raise Interrupted(done, done * dt, None, stop.signal_name, result=result)
    return result


def _check(stepper, k: int, dt: float, n: int) -> None:
    """Raise NumericalError if the state or the shift went non-finite or overflowed."""
    mean = stepper.vsum / n
    bad = not (np.all(np.isfinite(mean)) and np.all(np.isfinite(stepper.Y)))
    if bad or np.abs(mean).max() > _OVERFLOW:
        problem = "NaN/Inf" if bad else f"overflow (|mean| > {_OVERFLOW:g})"
        raise NumericalError(problem, step=k, time=k * dt, quantity="particle state v")
