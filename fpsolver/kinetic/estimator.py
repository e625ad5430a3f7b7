"""Every kinetic run estimates its own error: companion discretisations on a few sites.

Two companions run alongside the main discretisation on a sample of sites (all sites
when there is one; else up to :data:`SAMPLES`: the lowest and highest vbar_e and the
fastest frame at t = 0):

- the *time* companion takes one step for every two of the main run (variable steps:
  their sum): BDF2's global error is second order, so the main run's time error is
  ~ |Q_2dt - Q_dt| / 3;
- the *space* companion uses 2/3 of the cells along each axis: moments and smooth
  functionals of P2 elements converge like h^4 (measured: K on ``bistable`` from 24 to
  48 cells at order 4.0-4.1), so the space error is ~ |Q_H - Q_h| / ((3/2)^4 - 1);
  once a transient needed artificial diffusion (first order in h) ~ |Q_H - Q_h| / (1/2)
  (the space companion gets its own for its mesh; the time companion the main run's);
- the *truncation* to |z_g| <= W is estimated from the mass m in the boundary layer as
  if the tails were Gaussian: cutting a unit normal at +-W and renormalising lowers its
  variance by 2 W phi(W), while its mass in the box's layer (|z| > 0.95 W along either
  axis) is 4 (Phi(-0.95 W) - Phi(-W)); so K loses ~ m 2 W phi(W) / that (exact for
  Gaussian tails: 7.3e-8 at W = 6), and a heavier tail raises m and the estimate.

With one site the companions solve the whole coupled system (their own vbar), so the
vbar error is measured directly. With many sites they take vbar from the main run (the
constraint couples all sites) and the vbar error follows from the linearised constraint:
dvbar = -U (U^T J U)^{-1} U^T W dg, with dg the change of <G> the companions show,
applied at every site (the worst sample's, with its sign). The estimates are relative:
K by the largest |K_ab| of the site, vbar by max(1, |vbar|).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = ["ErrorEstimator", "SAMPLES", "SPACE_RATIO", "truncation_factor"]

SAMPLES = 3
SPACE_RATIO = 1.5
SPACE_ORDER = 4
TIME_ORDER = 2
FLOOR = 1e-12  # below this relative error nothing is measurable (solver tolerances)


def truncation_factor(W: float) -> float:
    """Relative variance lost to the cut at +-W per unit of boundary-layer mass.

    For Gaussian tails; the layer is the outer 5% of the box along either axis.
    """
    phi = math.exp(-0.5 * W * W) / math.sqrt(2 * math.pi)
    tail = lambda x: 0.5 * math.erfc(x / math.sqrt(2))  # noqa: E731
    layer = 4 * (tail(0.95 * W) - tail(W))
    return 2 * W * phi / max(layer, 1e-300)


def _sample(main) -> np.ndarray:
    if main.B <= SAMPLES:
        return np.arange(main.B)
    picks = [int(np.argmin(main.vbar[:, 0])), int(np.argmax(main.vbar[:, 0])),
             int(np.argmax(np.abs(main.frame.ell_dot()).max(axis=1)))]
    out = []
    for p in picks:
        if p not in out:
            out.append(p)
    return np.array(sorted(out))


def _coarse(cells) -> tuple[int, int]:
    return tuple(max(4, int(round(c / SPACE_RATIO))) for c in cells)


class ErrorEstimator:
    """The companions of a :class:`~fpsolver.kinetic.stepper.KineticStepper` ``main``.

    Call :meth:`advance` after every main step and :meth:`estimate` at record times.
    """

    def __init__(self, main):
        from fpsolver.kinetic.stepper import KineticStepper

        self.main = main
        self.closed = main.B == 1
        self.sample = _sample(main)
        self.history = {0: main.vbar[self.sample].copy()}
        num = main.numerics
        ids = main.site_ids[self.sample]

        def source(factor):
            return None if self.closed else (lambda k: self.history[k * factor])

        self.time = KineticStepper(main.model, main.comm, site_ids=ids, vbar_source=source(2),
                                   numerics=dataclasses.replace(num, dt=2 * num.dt),
                                   max_dofs=0)
        self.space = KineticStepper(main.model, main.comm, site_ids=ids,
                                    vbar_source=source(1), max_dofs=0,
                                    numerics=dataclasses.replace(num, cells=_coarse(num.cells)))
        self._cells = num.cells
        self._last_time = None   # time companion's statistics at its last step
        self._last_main = None   # the main run's statistics at that step
        self._pending = 0.0      # the odd step the time companion still has to cover
        self.truncation = truncation_factor(num.half_width) if not num.fixed_frame else None
        self.time_error = 0.0    # the time part now (K or vbar), for the step control

    def advance(self) -> None:
        """Follow the main run by one step (collective)."""
        main = self.main
        n = main.step_index
        self.history[n] = main.vbar[self.sample].copy()
        if main.numerics.cells != self._cells:  # the main mesh was refined: follow it
            self._cells = main.numerics.cells
            self.time.remesh(self._cells)
            self.space.remesh(_coarse(self._cells))
        self.time.set_kappa(main.kappa)  # same mesh: the same artificial diffusion
        if main.kappa.any():             # the space companion's for its own mesh
            self.space.stabilise()
        else:
            self.space.set_kappa(np.zeros(4))
        self.space.step(main.dt)
        if n % 2 == 1:
            self._pending = main.dt
        else:
            self.time.step(self._pending + main.dt)
            self._last_time = self._stats(self.time)
            self._last_main = self._main_stats()
            self.time_error = max(self._part(self._last_time, self._last_main,
                                             2**TIME_ORDER - 1))
        for k in [k for k in self.history if k < n - 2]:
            del self.history[k]

    def _stats(self, stepper) -> dict:
        g, _ = stepper.expect(stepper.vbar)
        return {"cov": stepper.statistics()["cov"], "vbar": stepper.vbar.copy(), "g": g}

    def _main_stats(self) -> dict:
        main = self.main
        return {"cov": main.statistics()["cov"][self.sample], "vbar": main.vbar[self.sample],
                "g": main.expect(main.vbar)[0][:, :, self.sample]}

    def estimate(self) -> dict:
        """Relative error estimates now.

        ``K``, ``vbar`` and their parts (time, space, truncation), each the largest over
        the sample. The time part is from the last step both runs reached (every other
        step).
        """
        main = self.main
        parts = {"time": self._part(self._last_time, self._last_main, 2**TIME_ORDER - 1),
                 "space": self._part(self._stats(self.space), self._main_stats(),
                                     self.space_factor())}
        trunc = 0.0
        if self.truncation is not None:
            trunc = float(np.nanmax(main.layer_mass)) * self.truncation
        K = max(FLOOR, parts["time"][0] + parts["space"][0] + trunc)
        v = max(FLOOR, parts["time"][1] + parts["space"][1])
        return {"K": K, "vbar": v, "K_time": parts["time"][0], "K_space": parts["space"][0],
                "K_truncation": trunc, "vbar_time": parts["time"][1],
                "vbar_space": parts["space"][1]}

    def space_error(self) -> float:
        """The space part of the estimate now (K or vbar, the larger)."""
        return max(self._part(self._stats(self.space), self._main_stats(),
                              self.space_factor()))

    def space_factor(self) -> float:
        """Richardson divisor of the space companion: h^4, or h^1 once stabilised.

        The artificial diffusion of a transient (:meth:`KineticStepper.stabilise`) is first
        order in h; what it left behind decays with the relaxation, and so does the
        companions' difference, so the first-order divisor is kept for the rest of the run.
        """
        if self.main.ever_stabilised:
            return SPACE_RATIO - 1
        return SPACE_RATIO**SPACE_ORDER - 1

    def _part(self, other, ref, factor: float) -> tuple[float, float]:
        """(K, vbar) relative error of the main run from a companion's ``other`` stats.

        The difference of the two runs divided by ``factor`` (Richardson).
        """
        if other is None:
            return 0.0, 0.0
        scale = np.abs(ref["cov"]).max(axis=(1, 2))
        dK = (np.abs(other["cov"] - ref["cov"]).max(axis=(1, 2)) / scale).max() / factor
        if self.closed:
            dv = np.abs(other["vbar"] - ref["vbar"]) / np.maximum(1, np.abs(ref["vbar"]))
            dv = dv.max() / factor
        else:
            dv = self._propagate((other["g"] - ref["g"]) / factor)
        return float(dK), float(dv)

    # -- checkpoint support -----------------------------------------------------------
    def state(self) -> dict:
        """This rank's estimator state (keys prefixed ``est_``).

        The arrays of both companions, the vbar history and the last time companion
        statistics.
        """
        keys = sorted(self.history)
        s = {"est_hist_keys": np.array(keys),
             "est_hist_vals": np.array([self.history[k] for k in keys]),
             "est_have_last": np.array(self._last_time is not None),
             "est_pending": np.array(self._pending),
             "est_time_error": np.array(self.time_error)}
        if self._last_time is not None:
            s.update({f"est_last_{k}": v for k, v in self._last_time.items()})
            s.update({f"est_main_{k}": v for k, v in self._last_main.items()})
        for name, comp in (("time", self.time), ("space", self.space)):
            s.update({f"est_{name}_{k}": v for k, v in comp.state().items()})
        return s

    def restore(self, arrays: dict) -> None:
        """Continue from :meth:`state` (collective)."""
        self.history = {int(k): np.array(v) for k, v in zip(arrays["est_hist_keys"],
                                                             arrays["est_hist_vals"])}
        self._last_time = self._last_main = None
        self._pending = float(arrays["est_pending"])
        self.time_error = float(arrays.get("est_time_error", 0.0))
        if bool(arrays["est_have_last"]):
            self._last_time = {k: np.array(arrays[f"est_last_{k}"]) for k in ("cov", "vbar", "g")}
            self._last_main = {k: np.array(arrays[f"est_main_{k}"]) for k in ("cov", "vbar", "g")}
        for name, comp in (("time", self.time), ("space", self.space)):
            prefix = f"est_{name}_"
            comp.restore({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})
        self._cells = self.main.numerics.cells

    def _propagate(self, dg_sample: np.ndarray) -> float:
        """Relative vbar change from a change dg of <G> (worst sample, every site)."""
        main = self.main
        con = main.constraint
        worst = dg_sample[:, :, np.argmax(np.abs(dg_sample).max(axis=(0, 1)))]
        dg = np.broadcast_to(worst[:, :, None], (2, 2, main.B))
        dphi = con.apply(dg).T.ravel()  # (population, site)
        _, gp = main.expect(main.vbar)
        dv = con.linear_solve(gp, dphi)
        if dv is None:
            return math.inf
        dv = -dv.reshape(2, main.B).T
        return float((np.abs(dv) / np.maximum(1, np.abs(main.vbar))).max())
