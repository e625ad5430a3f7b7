"""The Gaussian reduction of MODEL §3 (linear F, additive noise).

If F(v) = -Lambda v + f0 and S is constant, every fluctuation density is the centred
Gaussian N(0, K(t)), the same at every site, with the Lyapunov ODE

    dK/dt = -Lambda K - K Lambda^T + S S^T,

solved exactly through the eigen-decomposition of the Lyapunov operator. The means follow
from the balance constraint (MODEL §2a) with (composite Gauss-Legendre) expectations
<G_ab(vbar_b + y_b)>, y_b ~ N(0, K_bb), and the balance current (MODEL §2c) is
lambda = d vbar/dt - <F(vbar + y)> = d vbar/dt + Lambda vbar - f0 (:mod:`fpsolver.finite_n`).
"""

from __future__ import annotations

import time

import numpy as np
from scipy.linalg import expm

from fpsolver import finite_n
from fpsolver.balance import BalanceConstraint
from fpsolver.errors import ScenarioError
from fpsolver.model import Model, build_model
from fpsolver.output import RunResult
from fpsolver.scenario import PAIRS, Scenario
from fpsolver.timegrid import record_times

__all__ = ["lyapunov_covariance", "gaussian_expectations", "run_gaussian"]

_TAIL = 12.0  # standard deviations integrated (the normal mass beyond is 4e-33)
_GAUSS_LEGENDRE = np.polynomial.legendre.leggauss(8)


def normal_rule(sd: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes x and weights w with sum w f(x) ~= E f(X), X ~ N(0, 1).

    Accurate to ~1e-15 for the gains G(vbar + sd X).

    A composite 8-point Gauss-Legendre rule on [-12, 12] with panels of width
    min(0.5, 0.5 / sd): G(vbar + sd x) has its complex poles (tanh: Im = pi/2) at
    distance ~1.6 / sd from the real axis, which Gauss-Hermite rules resolve only for
    sd of order 1 (80 Hermite nodes err by 3e-3 at sd = 5).
    """
    panels = int(np.ceil(2 * _TAIL / min(0.5, 0.5 / max(sd, 1e-300))))
    x, w = _GAUSS_LEGENDRE
    edges = np.linspace(-_TAIL, _TAIL, panels + 1)
    half = 0.5 * np.diff(edges)
    nodes = (0.5 * (edges[:-1] + edges[1:])[:, None] + half[:, None] * x[None, :]).ravel()
    weights = (half[:, None] * w[None, :]).ravel() * np.exp(-0.5 * nodes**2) / np.sqrt(2 * np.pi)
    return nodes, weights


def lyapunov_covariance(Lambda: np.ndarray, D: np.ndarray, K0: np.ndarray,
                        t: np.ndarray) -> np.ndarray:
    """Exact solution of dK/dt = -Lambda K - K Lambda^T + D at times ``t``, shape (T, 2, 2).

    With vec(K) the operator is L = -(I kron Lambda + Lambda kron I); K(t) = K_inf +
    expm(L t) (K0 - K_inf), K_inf = -L^{-1} vec(D).
    """
    eye = np.eye(2)
    L = -(np.kron(eye, Lambda) + np.kron(Lambda, eye))
    k_inf = np.linalg.solve(L, -D.ravel())
    out = np.array([k_inf + expm(L * s) @ (K0.ravel() - k_inf) for s in t])
    return out.reshape(len(t), 2, 2)


def gaussian_expectations(model: Model, vbar: np.ndarray, K: np.ndarray):
    """<G_ab(vbar_b + y_b)> and <G_ab'> for y ~ N(0, K) at every site.

    Args:
        model: gives the gains G_ab and their derivatives G_ab'.
        vbar: means, shape ``(sites, 2)``.
        K: covariance, shape ``(2, 2)`` (the same at every site).

    Returns:
        ``(g, gp)``, each of shape ``(2, 2, sites)``.
    """
    B = len(vbar)
    g = np.empty((2, 2, B))
    gp = np.empty((2, 2, B))
    for idx, ab in enumerate(PAIRS):
        a, b = divmod(idx, 2)
        sd = np.sqrt(K[b, b])
        x, w = normal_rule(sd)
        z = vbar[:, b, None] + sd * x[None, :]
        g[a, b] = model.G[ab](z) @ w
        gp[a, b] = model.G_prime[ab](z) @ w
    return g, gp


def _require_gaussian(model: Model) -> None:
    if model.linear_drift is None:
        raise ScenarioError("dynamics.family", f"the Gaussian reduction needs the built-in "
                            f"linear F, got '{model.family('F').name}'",
                            "use `fpsolver kinetic` for nonlinear dynamics")
    if model.additive_noise is None:
        raise ScenarioError("noise.family", "the Gaussian reduction needs additive noise",
                            "set noise.family = 'diagonal' or use `fpsolver kinetic`")
    eig = np.linalg.eigvals(model.linear_drift[0])
    if eig.real.min() <= 0:
        raise ScenarioError("dynamics.coupling", "the linear drift F(v) = -Lambda v is not "
                            "contracting (Lambda = diag(1/tau) - coupling has eigenvalues "
                            f"{np.round(eig, 6).tolist()}): the covariance has no bounded "
                            "Gaussian limit", "make diag(1/tau) - coupling have eigenvalues "
                            "with positive real part")


def _balanced_means(scenario: Scenario, model: Model, constraint: BalanceConstraint,
                    Lambda: np.ndarray, f0: np.ndarray, D: np.ndarray,
                    t: np.ndarray) -> np.ndarray:
    """Means vbar at the times ``t`` from the constraint (MODEL §2a) with K(t) of §3.

    Full-rank kernels fix vbar at each time. Otherwise the part of vbar outside the range
    of the balanced input follows d vbar/dt = -Lambda vbar + f0 (explicit Euler with
    ``kinetic.dt``, or with 1% of the fastest relaxation time 1/|eig Lambda| when
    ``kinetic.dt`` is automatic) and the constraint fixes the rest, starting from the
    minimum-norm consistent vbar(0).
    """
    K0 = np.array(scenario.initial.cov)
    step = scenario.kinetic.dt or 0.01 / max(1.0, float(np.abs(np.linalg.eigvals(Lambda)).max()))
    substeps = 1 if constraint.full_rank or len(t) < 2 else max(
        1, int(np.ceil((t[1] - t[0]) / step - 1e-9)))
    vbar = np.empty((len(t), model.n_sites, 2))
    current = np.zeros((model.n_sites, 2))
    for s, ts in enumerate(t):
        t_prev = t[s - 1] if s else 0.0
        for k in range(1 if s == 0 else substeps):
            tk = ts if s == 0 else t_prev + (ts - t_prev) * (k + 1) / substeps
            Kk = lyapunov_covariance(Lambda, D, K0, np.array([tk]))[0]
            if s and not constraint.full_rank:
                current = current + (tk - t_prev - (ts - t_prev) * k / substeps) * (
                    f0 - current @ Lambda.T)
            current, _ = constraint.solve(
                lambda v, Kk=Kk: gaussian_expectations(model, v, Kk), current,
                where=f" at t = {tk:g}")
        vbar[s] = current
    return vbar


def run_gaussian(scenario: Scenario, model: Model | None = None) -> RunResult:
    """The Gaussian limit on the recording grid: K(t), vbar(x, t) and lambda(x, t)."""
    start = time.perf_counter()
    model = model or build_model(scenario)
    _require_gaussian(model)
    Lambda, f0 = model.linear_drift
    S = model.additive_noise
    t = record_times(scenario.t_end, scenario.record.every)
    K = lyapunov_covariance(Lambda, S @ S.T, np.array(scenario.initial.cov), t)
    constraint = BalanceConstraint(model)
    vbar = _balanced_means(scenario, model, constraint, Lambda, f0, S @ S.T, t)
    B = model.n_sites
    # <F(vbar + y)> = -Lambda vbar + f0 for linear F and centred y
    lam = finite_n.balance_current(finite_n.grid_derivative(vbar, t), f0 - vbar @ Lambda.T)
    cov = np.broadcast_to(K[:, None], (len(t), B, 2, 2)).copy()
    return RunResult(
        kind="gaussian", t=t, vbar=vbar, cov=cov, sites=model.sites,
        extra={"lambda_": (("time", "site", "population"), lam,
                           {"long_name": "balance current lambda (MODEL 2c)",
                            "units": "voltage / time"})},
        info={"wall_time": time.perf_counter() - start,
              "balance_rank": constraint.rank})
