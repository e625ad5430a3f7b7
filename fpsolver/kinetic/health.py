"""What makes a kinetic result wrong, checked at every step with the real cause named.

A density that is not a density (NaN, non-positive mass, large negative values), a
variance that is not positive, or mass piling up at the edge of the state box end the
run with a :class:`~fpsolver.errors.NumericalError` that names the site, the time, the
measured value and the fix, before the balance solve could misreport it as "no balanced
state". Smaller departures are warned about once (:class:`HealthWarnings`). All the
numbers used are identical on every rank, so every rank raises together.
"""

from __future__ import annotations

import logging

import numpy as np

from fpsolver.errors import NumericalError

__all__ = ["check_densities", "check_moments", "HealthWarnings", "NEGATIVE_STOP",
           "NEGATIVE_WARN", "LAYER_STOP", "LAYER_WARN"]

logger = logging.getLogger(__name__)

NEGATIVE_STOP = 1e-3   # min / peak below -this: the density is not a density any more
NEGATIVE_WARN = 1e-6   # min / peak below -this: warned once
LAYER_STOP = 1e-2      # mass in the boundary layer above this: the box lost the density
LAYER_WARN = 1e-6      # above this: warned once (the truncation shows in K)


def _fail(stepper, problem, site, quantity, fix) -> None:
    exc = NumericalError(problem, step=stepper.step_index + 1, time=stepper.t_new,
                         site=int(site),
                         quantity=quantity, fix=fix)
    exc._fpsolver_shared = True  # from reduced numbers: every rank raises it
    raise exc


def check_densities(stepper, lo: np.ndarray, hi: np.ndarray) -> None:
    """After the density step: ``lo``/``hi`` the smallest/largest dof of every site."""
    mass = stepper.mass
    bad = ~(np.isfinite(mass) & np.isfinite(lo) & np.isfinite(hi))
    if bad.any():
        site = int(np.flatnonzero(bad)[0])
        _fail(stepper, "NaN/Inf in the density: the IMEX step blew up", site, "density",
              "reduce kinetic.dt (the stability bound of the explicit part failed to hold); "
              "please report the scenario")
    if (mass <= 0).any():
        site = int(np.argmin(mass))
        _fail(stepper, f"non-positive mass {mass[site]:.3e}", site, "density",
              "reduce kinetic.dt")
    ratio = lo / np.where(hi > 0, hi, 1.0)
    if ratio.min() < -NEGATIVE_STOP:
        site = int(np.argmin(ratio))
        _fail(stepper, f"density lost positivity: min/peak = {ratio[site]:.3e}", site,
              "density", f"raise kinetic.cells (cell Peclet number now "
              f"{stepper.peclet().max():.3g}; Galerkin densities oscillate above 2) or "
              "reduce kinetic.dt")


def check_moments(stepper, cov: np.ndarray) -> None:
    """After the moments: a variance must be positive and every moment finite."""
    var = np.stack([cov[:, 0, 0], cov[:, 1, 1]], axis=1)
    bad = ~np.isfinite(var) | (var <= 0)
    if bad.any():
        site = int(np.flatnonzero(bad.any(axis=1))[0])
        _fail(stepper, f"variance {var[site].tolist()} (must be finite and > 0)", site,
              "covariance K", "reduce kinetic.dt or raise kinetic.cells")
    layer = stepper.layer_mass
    if np.nanmax(layer) > LAYER_STOP:
        site = int(np.nanargmax(layer))
        _fail(stepper, f"mass {layer[site]:.3e} in the outer 5% of the state box", site,
              "density", "raise kinetic.half_width (the density has heavier tails than "
              "the box holds)")


class HealthWarnings:
    """Warn once per kind about negative values and mass near the box's edge.

    Keeps the smallest min/peak of any site at any step (``min_relative``).
    """

    def __init__(self, comm):
        self.comm, self.said = comm, set()
        self.min_relative = np.inf

    def _say(self, kind, *args) -> None:
        if kind in self.said:
            return
        self.said.add(kind)
        if self.comm.rank == 0:
            logger.warning(*args)

    def check(self, stepper) -> None:
        """Update ``min_relative`` from a stepper's densities and warn when due."""
        ratio = stepper.min_density / np.where(stepper.max_density > 0,
                                               stepper.max_density, 1.0)
        self.min_relative = min(self.min_relative, float(ratio.min()))
        if ratio.min() < -NEGATIVE_WARN:
            site = int(np.argmin(ratio))
            self._say("negative", "kinetic: density min/peak = %.2e at site %d, t = %g "
                      "(target > -%g) -- fix: raise kinetic.cells", ratio[site], site,
                      stepper.t, NEGATIVE_WARN)
        layer = stepper.layer_mass
        if np.nanmax(layer) > LAYER_WARN:
            site = int(np.nanargmax(layer))
            self._say("layer", "kinetic: mass %.2e in the outer 5%% of the state box at "
                      "site %d, t = %g: the truncation to %g %s shows in K -- fix: raise "
                      "kinetic.half_width", layer[site], site, stepper.t,
                      stepper.smesh.radius,
                      "voltage" if stepper.numerics.fixed_frame else "standard deviations")
