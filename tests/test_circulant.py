"""The FFT form of a translation-invariant coupling (fpsolver/circulant.py).

Every check compares with the dense route (an independent answer: an einsum with the
kernel matrix, an LU of the dense Jacobian); the tolerances are round-off of sums over
at most 2 x 256 terms of size <= 1 (FFT and dense sums differ by ~1e-15 per term).
"""

import numpy as np
import pytest

from fpsolver import load_scenario
from fpsolver.balance import BalanceConstraint
from fpsolver.circulant import circulant_coupling
from fpsolver.errors import BalanceError
from fpsolver.model import build_model


def _sheet(m: int):
    return build_model(load_scenario("sheet", [f"space.sites={m}", f"n={100 * m * m}"]))


def _ring():
    return build_model(load_scenario("sheet", ["space.kind=ring", "space.sites=24",
                                               "n=2400"]))


@pytest.mark.parametrize("build", [lambda: _sheet(6), _ring], ids=["torus", "ring"])
def test_fft_coupling_equals_the_dense_sum(build):
    model = build()
    fast = circulant_coupling(model)
    assert fast is not None
    x = np.random.default_rng(1).standard_normal((2, 2, model.n_sites))
    dense = np.einsum("abjk,abk->aj", model.coupling(), x)
    assert np.abs(fast.apply(x) - dense).max() < 1e-12 * np.abs(dense).max()
    absolute = np.einsum("abjk,abk->aj", np.abs(model.coupling()), x)
    assert np.abs(fast.apply(x, absolute=True) - absolute).max() < 1e-12 * np.abs(absolute).max()


def test_a_kernel_that_is_not_translation_invariant_keeps_the_dense_route():
    model = _sheet(6)
    model.kernel[0, 1, 3, 7] *= 1.01
    assert circulant_coupling(model) is None
    assert BalanceConstraint(model).circulant is None


def test_gmres_solves_the_jacobian_of_a_striped_state():
    """G' varying along the stripe (+-30%): GMRES itself, no dense fallback."""
    model = _sheet(16)
    con = BalanceConstraint(model)
    x1 = model.sites.points[:, 0]
    gp = np.ones((2, 2, model.n_sites)) * (1 + 0.3 * np.cos(x1))
    rhs = np.random.default_rng(3).standard_normal(2 * model.n_sites)
    x = con.circulant.solve(gp, rhs)
    exact = np.linalg.solve(con.jacobian(gp), rhs)
    assert np.abs(x - exact).max() < 1e-10 * np.abs(exact).max()


def test_fft_newton_equals_dense_newton_on_the_sheet():
    """The kinetic sheet (8 x 8) after three steps, Newton from a shifted start.

    Both routes reach the same root to the Newton tolerance (1e-12 on Phi, Jacobian norm
    ~2).
    """
    from mpi4py import MPI

    from fpsolver.kinetic.stepper import KineticStepper

    model = _sheet(8)
    stepper = KineticStepper(model, MPI.COMM_SELF)
    for _ in range(3):
        stepper.step(0.002)
    fast, dense = stepper.constraint, BalanceConstraint(model)
    dense.circulant = None
    assert fast.circulant is not None
    base = stepper.vbar + 0.05
    v_fast, info_fast = fast.solve(stepper.expect, base)
    v_dense, info_dense = dense.solve(stepper.expect, base)
    assert max(info_fast.residual, info_dense.residual) < 1e-12
    assert np.abs(v_fast - v_dense).max() < 1e-11


def test_fft_newton_reports_a_singular_jacobian():
    model = _sheet(6)
    con = BalanceConstraint(model)
    assert con.circulant is not None

    def flat(vbar):  # saturated gains: G' = 0, the Jacobian vanishes
        g = np.ones((2, 2, model.n_sites))
        return g, np.zeros_like(g)

    with pytest.raises(BalanceError, match="singular balance Jacobian"):
        con.solve(flat, np.zeros((model.n_sites, 2)))
