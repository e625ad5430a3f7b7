"""The Gaussian reduction (MODEL §3) against the numbers and closed forms of MODEL §3, §5."""

import numpy as np
import pytest

from fpsolver.gaussian import lyapunov_covariance, run_gaussian
from fpsolver.scenario import load_scenario

# MODEL §5, `tanh` limit: t, K_e, K_i, vbar_e, vbar_i (6 decimals).
TANH_TABLE = [
    (0.0, 1.000000, 2.000000, 0.082605, 0.208881),
    (0.5, 0.683940, 1.051819, 0.074288, 0.168101),
    (1.0, 0.567668, 0.703003, 0.070934, 0.149953),
    (2.0, 0.509158, 0.527473, 0.069170, 0.139752),
    (5.0, 0.500023, 0.500068, 0.068889, 0.138075),
]


def test_tanh_reproduces_model_table():
    run = run_gaussian(load_scenario("tanh"))
    for t, Ke, Ki, ve, vi in TANH_TABLE:
        s = int(np.argmin(np.abs(run.t - t)))
        assert run.t[s] == pytest.approx(t)
        # The table is rounded to 6 decimals: agreement to 1e-5 covers the rounding
        # (5e-7) with room for the Gauss-Hermite error (80 nodes: < 1e-12 here).
        got = [run.cov[s, 0, 0, 0], run.cov[s, 0, 1, 1], run.vbar[s, 0, 0], run.vbar[s, 0, 1]]
        np.testing.assert_allclose(got, [Ke, Ki, ve, vi], atol=1e-5)


def test_linear_is_stationary_at_the_balanced_state():
    run = run_gaussian(load_scenario("linear"))
    np.testing.assert_allclose(run.vbar[:, 0], np.tile([0.5, 1.0], (len(run.t), 1)), atol=1e-12)
    np.testing.assert_allclose(run.cov[:, 0, 0, 0], 0.5, atol=1e-12)
    # lambda = -<F> = vbar / tau when vbar is constant (MODEL §2c).
    np.testing.assert_allclose(run.extra["lambda_"][1][:, 0], [[0.5, 1.0]] * len(run.t),
                               atol=1e-9)


def test_lyapunov_matches_closed_form_diagonal_case():
    tau, sigma, K0 = np.array([0.5, 2.0]), np.array([1.3, 0.4]), np.diag([0.2, 3.0])
    t = np.linspace(0, 3, 7)
    K = lyapunov_covariance(np.diag(1 / tau), np.diag(sigma**2), K0, t)
    for a in range(2):
        exact = tau[a] * sigma[a] ** 2 / 2 + (K0[a, a] - tau[a] * sigma[a] ** 2 / 2) * np.exp(
            -2 * t / tau[a])
        np.testing.assert_allclose(K[:, a, a], exact, rtol=1e-12)
    np.testing.assert_allclose(K[:, 0, 1], 0, atol=1e-14)


def test_lyapunov_with_coupling_solves_the_ode():
    Lam = np.array([[1.0, -0.4], [0.7, 2.0]])
    D = np.array([[1.0, 0.2], [0.2, 0.5]])
    K0 = np.array([[0.3, 0.1], [0.1, 0.8]])
    t = np.array([0.0, 0.7, 0.7 + 1e-6])
    K = lyapunov_covariance(Lam, D, K0, t)
    dK = (K[2] - K[1]) / 1e-6  # forward difference: error O(1e-6)
    np.testing.assert_allclose(dK, -Lam @ K[1] - K[1] @ Lam.T + D, atol=1e-5)


def test_ring_cosine_state_is_homogeneous_and_balanced():
    run = run_gaussian(load_scenario("ring-oscillation", ["t_end=0.5"]))
    # Mode 0 of the balance: 1 + 0.5 v - 4 v = 0 with v_e = v_i = v = 1 / 3.5.
    np.testing.assert_allclose(run.vbar[-1], 1 / 3.5, atol=1e-10)


def test_nonlinear_dynamics_are_refused_with_a_pointer():
    from fpsolver.errors import ScenarioError

    with pytest.raises(ScenarioError, match="fpsolver kinetic"):
        run_gaussian(load_scenario("bistable"))
