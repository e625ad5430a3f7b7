"""The balance current and the finite-n offset (MODEL §2c), fpsolver.finite_n."""

import numpy as np
import pytest

from fpsolver import finite_n, load_scenario
from fpsolver.balance import BalanceConstraint
from fpsolver.gaussian import gaussian_expectations, run_gaussian
from fpsolver.model import build_model


def test_backward_derivative_is_exact_for_its_order():
    # first order is exact for lines, BDF2 for parabolas (round-off only)
    dt, t = 0.1, np.array([0.3, 0.4, 0.5])
    line = [2 * s + 1 for s in t]
    parabola = [np.array([[s**2, -3 * s**2 + s]]) for s in t]
    assert finite_n.backward_derivative(line[-2:], dt) == pytest.approx(2, abs=1e-12)
    np.testing.assert_allclose(finite_n.backward_derivative(parabola, dt),
                               [[2 * 0.5, -6 * 0.5 + 1]], atol=1e-12)
    with pytest.raises(ValueError):
        finite_n.backward_derivative(line[:1], dt)
    # variable steps (the kinetic solver's adaptive BDF2): steps 0.1 then 0.25
    t = np.array([0.3, 0.4, 0.65])
    parabola = [np.array([[s**2, -3 * s**2 + s]]) for s in t]
    np.testing.assert_allclose(finite_n.backward_derivative(parabola, (0.1, 0.25)),
                               [[2 * 0.65, -6 * 0.65 + 1]], atol=1e-12)


def test_grid_derivative_is_second_order():
    t = np.linspace(0, 1, 11)
    v = np.stack([t**2, np.sin(t)], -1)[:, None, :]  # (time, site, population)
    d = finite_n.grid_derivative(v, t)
    assert np.abs(d[:, 0, 0] - 2 * t).max() < 1e-12
    # O(h^2): h^2/6 |f'''| inside, h^2/3 |f'''| at the ends (h = 0.1, |f'''| <= 1)
    assert np.abs(d[:, 0, 1] - np.cos(t)).max() < 0.1**2 / 3
    assert not finite_n.grid_derivative(v[:2], t[:2]).any()


def test_gaussian_lambda_is_the_balance_current():
    # linear scenario: vbar is constant, <F(vbar + y)> = -vbar, so lambda = vbar = (0.5, 1)
    run = run_gaussian(load_scenario("linear", ["t_end=1.0"]))
    mean_F = -run.vbar
    lam = finite_n.balance_current(finite_n.grid_derivative(run.vbar, run.t), mean_F)
    np.testing.assert_array_equal(run.extra["lambda_"][1], lam)
    np.testing.assert_allclose(lam[:, 0], [[0.5, 1.0]] * len(run.t), atol=1e-12)


def test_offset_full_rank_is_dphi_inverse_lambda():
    # mean-field: U spans everything, so the offset is DPhi^{-1} lambda / sqrt(n); MODEL §5
    # gives (0.75, -0.5) / sqrt(n) for the linear scenario
    sc = load_scenario("linear")
    model = build_model(sc)
    run = run_gaussian(sc.replace(t_end=1.0))
    constraint = BalanceConstraint(model)
    _, gp = gaussian_expectations(model, run.vbar[-1], run.cov[-1, 0])
    lam = run.extra["lambda_"][1][-1]
    off = finite_n.offset(constraint, gp, lam, sc.n)
    direct = np.linalg.solve(constraint.jacobian(gp), lam.T.ravel()) / np.sqrt(sc.n)
    np.testing.assert_allclose(off.T.ravel(), direct, rtol=1e-12)
    np.testing.assert_allclose(off[0] * np.sqrt(sc.n), [0.75, -0.5], atol=1e-12)


def test_offset_stays_in_the_range_of_the_balanced_input():
    # cosine ring: the constraint fixes vbar only along span{1, cos x, sin x} per
    # population; the offset lies there whatever lambda is
    model = build_model(load_scenario("ring-bump", ["space.sites=16"]))
    constraint = BalanceConstraint(model)
    K = np.eye(2) * 0.5
    vbar, _ = constraint.solve(lambda v: gaussian_expectations(model, v, K),
                               np.zeros((16, 2)))
    _, gp = gaussian_expectations(model, vbar, K)
    lam = np.random.default_rng(0).normal(size=(16, 2))
    off = finite_n.offset(constraint, gp, lam, 10_000)
    flat = off.T.ravel()
    U = constraint.U
    assert U.shape[1] == 6
    np.testing.assert_allclose(U @ (U.T @ flat), flat, atol=1e-14)
    # and it solves the reduced linearised constraint U^T DPhi delta = U^T lambda / sqrt(n)
    np.testing.assert_allclose(constraint.reduced_jacobian(gp) @ (U.T @ flat),
                               U.T @ lam.T.ravel() / 100, atol=1e-12)


def test_singular_reduced_jacobian_gives_no_offset():
    sc = load_scenario("linear", ["gains.ie=0.0", "gains.ii=0.0", "populations.e.input=0.0",
                                  "populations.i.input=0.0"])
    model = build_model(sc)
    gp = np.zeros((2, 2, 1))
    assert finite_n.offset(BalanceConstraint(model), gp, np.ones((1, 2)), sc.n) is None
