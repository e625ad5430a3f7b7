"""Adaptive time steps for the kinetic solver: variable-step BDF2 on a ladder of steps.

Steps are dt_max / 2^k (dt_max divides ``record.every``), so every recording time is hit
exactly and a step size, once chosen, is kept for many steps (a new step size costs a
numeric refactorisation of every cluster's implicit matrix). After each step the local
error is estimated by Milne's device on what BDF2 integrates: the shape of every
site's density in its frame (its z-moments of orders 2 to 4; the frame, and with it K's
own relaxation, is integrated separately and accurately) and, for low-rank kernels, the
free part of vbar (scaled by max(1, |vbar|)). A quadratic extrapolation s_p through the
last three levels misses the BDF2 value by (1 + 2/9) dt^3 s''' while BDF2's own local
error is (2/9) dt^3 s''', so LTE ~ (2/11) |s - s_p|. The step halves when the LTE exceeds
``tol / 4`` per unit time (``dt tol / 4``: a quarter of the tolerance left for the time
error over a unit of time), and doubles when it has stayed below 1/16 of that (BDF2's
LTE grows 8x with the step) for three steps and the time is a multiple of the doubled
step. The run starts 2^:data:`_START_LEVELS` below the step estimated from the rates at
t = 0: the first step is backward Euler (first order), the first three are not checked,
and an initial density far from the dynamics' shape changes fastest at the start
(``bistable``: 90% of the run's time error was made before t = 0.05). The per-step
target bounds the global error only over about 4 time units (more on long runs whose
errors do not decay), so the control also watches the global time error
that the error estimator's time companion measures (:meth:`StepControl.watch`): when it
passes 3/4 of ``tol`` and has grown by half since the last tightening, the per-step share
is quartered and the step halved (BDF2: the error then grows 4x slower, measured on
``bistable`` with wide wells, whose estimate otherwise ended at 1.01 tol). While artificial
diffusion carries a transient (first order in h), the run's space error is estimated at
that level anyway, and :attr:`StepControl.floor` raises the target to it: BDF2 need not
resolve in time, at 1e-4, a transient the mesh resolves at 1e-2 (``torus-cubic``: steps
of 1e-5 for the rate-50-200 relaxation otherwise); what the transient leaves decays with
the relaxation, and the time companion measures it. A fixed ``kinetic.dt`` turns all this
off.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["StepControl", "observables"]

_MILNE = 2.0 / 11.0
_SHARE = 0.25    # of tol, for the time error per unit time
_CALM = 3        # steps below 1/16 of the target before the step doubles
_START_LEVELS = 3  # the first steps are 2^-3 of the estimated step (see the module doc)
_MIN_LEVEL = 20    # the step never falls below dt_max / 2^20 (the estimate says the rest)


def _forgetting(miss: np.ndarray, history) -> np.ndarray:
    """How much faster than over a unit of time each observable forgets its step errors.

    A component relaxing as s = s_inf + A exp(-lam t) (s1, s2, s3 its derivatives:
    s2 s1 < 0, s3 / s1 = lam^2 > 0) damps an error made in one step by exp(-lam dt) per
    step, so the errors of all steps add up to one step's error times
    1 / (1 - exp(-lam dt)), not 1 / dt (a unit of time of undamped accumulation, what
    the per-unit-time target assumes). The weight is w = max(1, (1 - exp(-lam dt)) / dt)
    with lam = sqrt(s3 / s1) from the step's quadratic miss (s3 (t3-t0)(t3-t1)(t3-t2)/6)
    and its last differences. Growing or oscillating components keep w = 1. A stiff
    transient at rate 50-200 (``torus-cubic``) then takes steps about sqrt(lam) larger;
    the global time error is still watched through the estimator's time companion
    (:meth:`StepControl.watch`).
    """
    (t0, _), (t1, _), (t2, r2), (t3, r3) = history
    r1 = history[1][1]
    dt = t3 - t2
    s1 = (r3 - r2) / dt
    s2 = (s1 - (r2 - r1) / (t2 - t1)) / (0.5 * (t3 - t1))
    s3 = miss * 6.0 / ((t3 - t0) * (t3 - t1) * dt)
    with np.errstate(divide="ignore", invalid="ignore"):
        lam2 = np.where((s3 * s1 > 0) & (s2 * s1 < 0), s3 / s1, 0.0)
    lam = np.sqrt(np.nan_to_num(lam2, nan=0.0, posinf=0.0))
    return np.maximum(1.0, -np.expm1(-lam * dt) / dt)


def observables(stepper) -> np.ndarray:
    """What the step control watches: the z-moments of orders 2-4 of every site.

    And vbar scaled by max(1, |vbar|) when the constraint leaves part of it free.
    """
    parts = [stepper.raw[:, 3:].ravel()]  # monomials(4) from order 2 on
    if stepper.constraint is not None and not stepper.constraint.full_rank:
        parts.append((stepper.vbar / np.maximum(1, np.abs(stepper.vbar))).ravel())
    return np.concatenate(parts)


class StepControl:
    """The step sequence of one run.

    Args:
        t_end: final time.
        dt_max: the largest step (divides the recording interval).
        dt0: the step to start with (rounded down onto the ladder).
        tol: the run's relative tolerance.
        fixed: keep ``dt0`` for the whole run (``kinetic.dt`` given).
    """

    def __init__(self, t_end: float, dt_max: float, dt0: float, tol: float, fixed: bool):
        self.t_end, self.dt_max, self.tol, self.fixed = t_end, dt_max, tol, fixed
        if fixed:
            self.dt = dt0
        else:
            level = max(0, math.ceil(math.log2(dt_max / dt0) - 1e-9)) + _START_LEVELS
            self.dt = dt_max / 2**level
        self.history: list[tuple[float, np.ndarray]] = []
        self.calm = 0
        self.changes = 0
        self.last_error = 0.0
        self.share = _SHARE      # of tol per unit time, lowered by watch()
        self.tightened_at = 0.0  # the global time error at the last tightening
        self.floor = 0.0         # an error the run has anyway (set each step, see accept)

    def next_step(self, t: float) -> float:
        """The step to take from time ``t`` (the last one ends exactly at t_end)."""
        return min(self.dt, self.t_end - t)

    def accept(self, t: float, s: np.ndarray) -> None:
        """Record the observables ``s`` reached at ``t`` and choose the next step."""
        self.history.append((t, s))
        if len(self.history) > 4:
            self.history.pop(0)
        if self.fixed or len(self.history) < 4:
            return
        (t0, s0), (t1, s1), (t2, s2), (t3, s3) = self.history
        # quadratic through (t0, s0), (t1, s1), (t2, s2), evaluated at t3
        l0 = (t3 - t1) * (t3 - t2) / ((t0 - t1) * (t0 - t2))
        l1 = (t3 - t0) * (t3 - t2) / ((t1 - t0) * (t1 - t2))
        l2 = (t3 - t0) * (t3 - t1) / ((t2 - t0) * (t2 - t1))
        miss = s3 - (l0 * s0 + l1 * s1 + l2 * s2)
        lte = _MILNE * float((np.abs(miss) / _forgetting(miss, self.history)).max())
        self.last_error = lte
        target = self.share * max(self.tol, self.floor) * (t3 - t2)
        if lte > target and self.dt > self.dt_max * 2.0**-_MIN_LEVEL:
            self.dt /= 2
            self.calm = 0
            self.changes += 1
            self.history = self.history[-1:]
            return
        self.calm = self.calm + 1 if lte < target / 16 else 0
        bigger = 2 * self.dt
        aligned = abs(t3 / bigger - round(t3 / bigger)) < 1e-9 * max(1.0, t3 / bigger)
        if self.calm >= _CALM and bigger <= self.dt_max * (1 + 1e-12) and aligned:
            self.dt = bigger
            self.calm = 0
            self.changes += 1
            self.history = self.history[-1:]

    def restart(self) -> None:
        """Forget the history: the operator changed (a kink no step size resolves)."""
        self.history = self.history[-1:]
        self.calm = 0

    def watch(self, time_error: float) -> None:
        """Tighten the control if the measured global time error nears ``tol``."""
        tol = max(self.tol, self.floor)
        if self.fixed or time_error <= 0.75 * tol or time_error <= 1.5 * self.tightened_at:
            return
        self.tightened_at = time_error
        self.share /= 4
        self.dt = max(self.dt / 2, self.dt_max * 2.0**-_MIN_LEVEL)
        self.calm = 0
        self.changes += 1
        self.history = self.history[-1:]

    def state(self) -> dict:
        """Arrays that restore the control exactly: dt, its counters and the history."""
        return {"control_dt": np.array(self.dt), "control_calm": np.array(self.calm),
                "control_changes": np.array(self.changes),
                "control_share": np.array(self.share),
                "control_tightened_at": np.array(self.tightened_at),
                "control_t": np.array([t for t, _ in self.history]),
                "control_s": np.array([s for _, s in self.history])}

    def restore(self, s: dict) -> None:
        """Set the control from :meth:`state`'s arrays."""
        self.dt = float(s["control_dt"])
        self.calm, self.changes = int(s["control_calm"]), int(s["control_changes"])
        self.share = float(s.get("control_share", _SHARE))
        self.tightened_at = float(s.get("control_tightened_at", 0.0))
        self.history = list(zip([float(t) for t in s["control_t"]], list(s["control_s"])))
