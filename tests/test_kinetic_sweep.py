"""The kinetic solver with default numerics on Gaussian-exact scenarios (issue 8, point 6).

Linear F with additive noise keeps every density Gaussian, so the Gaussian reduction
(`fpsolver gaussian`: the Lyapunov equation for K, the constraint for vbar, to round-off)
is the exact answer. Twelve cases span the noise (sigma 0.05 to 5, e and i
independently), the time constants (tau 0.2 to 5), the initial covariance (0.01x to 25x
the stationary one) and the means (|vbar| up to 10). Each must reach, with the default
numerics (automatic frame, mesh, steps; kinetic.tol = 1e-4):

- relative K error (largest |dK_ab| over the largest |K_ab|, over the record times)
  <= 1e-5 and vbar error <= 1e-6 max(1, |vbar|);
- the run's own estimate within a factor 3 of the true error, above a floor of 1e-7:
  below it the true error is at the level of the constraint's Newton tolerance and the
  quadrature of <G> (measured 1e-8..1e-7), which no discretisation companion sees;
- min density >= -1e-6 peak, mass 1 to 1e-10.

Three cases run in the default suite, the rest under ``slow``.
"""

import numpy as np
import pytest
from mpi4py import MPI

from fpsolver.gaussian import run_gaussian
from fpsolver.kinetic import run_kinetic
from fpsolver.scenario import load_scenario

FLOOR = 1e-7
CASES = {
    "tanh": ("tanh", []),
    "sigma-0.05": ("tanh", ["populations.e.sigma=0.05", "populations.i.sigma=0.05",
                            "initial.cov=[[0.01, 0.0], [0.0, 0.01]]"]),
    "sigma-e-5": ("tanh", ["populations.e.sigma=5.0", "populations.i.sigma=0.3"]),
    "sigma-i-5": ("tanh", ["populations.e.sigma=0.3", "populations.i.sigma=5.0"]),
    "tau-e-0.2": ("tanh", ["populations.e.tau=0.2"]),
    "tau-i-5": ("tanh", ["populations.i.tau=5.0"]),
    "tau-5-0.2": ("tanh", ["populations.e.tau=5.0", "populations.i.tau=0.2"]),
    "cov-0.01x": ("tanh", ["initial.cov=[[0.005, 0.0], [0.0, 0.005]]"]),
    "cov-25x": ("tanh", ["initial.cov=[[12.5, 0.0], [0.0, 12.5]]"]),
    "vbar-10": ("linear", ["populations.e.input=10.0"]),
    "linear-sigma-0.05": ("linear", ["populations.e.sigma=0.05",
                                     "populations.i.sigma=0.05"]),
    "correlated": ("tanh", ["populations.e.sigma=2.0", "populations.i.tau=0.5",
                            "initial.cov=[[2.0, -0.8], [-0.8, 1.0]]"]),
}
FAST = {"tanh", "sigma-0.05", "vbar-10"}


def _params() -> list:
    return [pytest.param(name, marks=() if name in FAST else (pytest.mark.slow,), id=name)
            for name in CASES]


def true_errors(kin, ref) -> tuple[float, float]:
    """Max over the records of the relative K error and the vbar error (as estimated)."""
    scale = np.abs(ref.cov).max(axis=(-2, -1))
    dK = (np.abs(kin.cov - ref.cov).max(axis=(-2, -1)) / scale).max()
    dv = (np.abs(kin.vbar - ref.vbar) / np.maximum(1.0, np.abs(ref.vbar))).max()
    return float(dK), float(dv)


@pytest.mark.parametrize("case", _params())
def test_gaussian_exact_case(case):
    name, sets = CASES[case]
    sc = load_scenario(name, ["t_end=2.0", "record.every=0.1"] + sets)
    kin = run_kinetic(sc, comm=MPI.COMM_SELF, progress=False)
    ref = run_gaussian(sc)
    err_K, err_v = true_errors(kin, ref)
    assert err_K <= 1e-5, (case, err_K)
    assert err_v <= 1e-6, (case, err_v)
    est = kin.info["error_estimate"]
    for true, estimated in ((err_K, est["K"]), (err_v, est["vbar"])):
        if max(true, estimated) > FLOOR:
            assert max(true, FLOOR) / 3 <= estimated <= 3 * max(true, FLOOR), (
                case, true, estimated)
    assert est["within_tol"]
    assert kin.info["min_density_relative"] >= -1e-6
    assert np.abs(kin.extra["mass"][1] - 1).max() < 1e-10
