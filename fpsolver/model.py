"""The model of MODEL §1 as callables: F, S, G, G', A(x), J(x, x'), sites and weights.

Built from a :class:`~fpsolver.scenario.Scenario` by :func:`build_model`; the Python API
can replace any family by a user callable. The pointwise maps take the two components
``(v_e, v_i)`` separately and an array namespace ``xp`` (``numpy`` by default, ``ufl``
for the finite-element forms), so one definition serves the particle simulator, the
quadratures and the weak forms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from fpsolver.errors import ScenarioError
from fpsolver.scenario import PAIRS, Scenario
from fpsolver.space import Sites, make_sites

__all__ = ["Model", "build_model", "SIGNS"]

SIGNS = np.array([1.0, -1.0])  # s_e = +1, s_i = -1

Pointwise = Callable  # (v_e, v_i, xp) -> (out_e, out_i)


def _linear_drift(sc: Scenario) -> Pointwise:
    tau = (sc.populations.e.tau, sc.populations.i.tau)
    L = sc.dynamics.coupling

    def F(ve, vi, xp=np):
        return (-ve / tau[0] + L[0][0] * ve + L[0][1] * vi,
                -vi / tau[1] + L[1][0] * ve + L[1][1] * vi)
    return F


def _double_well_drift(sc: Scenario) -> Pointwise:
    tau = (sc.populations.e.tau, sc.populations.i.tau)
    m, w, L = sc.dynamics.center, sc.dynamics.width, sc.dynamics.coupling

    def F(ve, vi, xp=np):
        ue, ui = ve - m[0], vi - m[1]
        return ((ue - ue**3 / w[0] ** 2) / tau[0] + L[0][0] * ve + L[0][1] * vi,
                (ui - ui**3 / w[1] ** 2) / tau[1] + L[1][0] * ve + L[1][1] * vi)
    return F


def _cubic_drift(sc: Scenario) -> Pointwise:
    tau = (sc.populations.e.tau, sc.populations.i.tau)
    beta, L = sc.dynamics.cubic, sc.dynamics.coupling

    def F(ve, vi, xp=np):
        return (-ve / tau[0] - beta[0] * ve**3 + L[0][0] * ve + L[0][1] * vi,
                -vi / tau[1] - beta[1] * vi**3 + L[1][0] * ve + L[1][1] * vi)
    return F


_DRIFTS = {"linear": _linear_drift, "double_well": _double_well_drift, "cubic": _cubic_drift}


def _noise_diagonal(sc: Scenario) -> Pointwise:
    """S = diag(s_e(v), s_i(v)) returned as its diagonal."""
    sig = (sc.populations.e.sigma, sc.populations.i.sigma)
    kap = sc.noise.kappa if sc.noise.family == "multiplicative" else (0.0, 0.0)

    def S(ve, vi, xp=np):
        se = sig[0] * xp.sqrt(1.0 + kap[0] * ve**2) if kap[0] else sig[0] + 0.0 * ve
        si = sig[1] * xp.sqrt(1.0 + kap[1] * vi**2) if kap[1] else sig[1] + 0.0 * vi
        return se, si
    return S


def _gain(family: str, C: float) -> tuple[Callable, Callable]:
    if family == "linear":
        return (lambda z, xp=np: C * z), (lambda z, xp=np: C + 0.0 * z)
    return (lambda z, xp=np: C * xp.tanh(z)), (lambda z, xp=np: C * (1.0 - xp.tanh(z) ** 2))


@dataclass
class Model:
    """Everything the solvers need to evaluate the model of MODEL §1.

    Attributes:
        F: intrinsic drift, ``F(v_e, v_i, xp) -> (F_e, F_i)``.
        S_diag: diagonal noise, ``S_diag(v_e, v_i, xp) -> (S_ee, S_ii)``; D = diag(S^2).
        G, G_prime: ``G[ab](z, xp)`` and its derivative, keys ``"ee", "ei", "ie", "ii"``.
        sites: positions, quadrature weights and geometry of E.
        inputs: A_a(x_j), shape ``(sites, 2)``.
        kernel: J_ab(x_j, x_k), shape ``(2, 2, sites, sites)``.
        linear_drift: ``(Lambda, f0)`` if F(v) = -Lambda v + f0 exactly, else ``None``.
        additive_noise: the constant S (2x2) if S does not depend on v, else ``None``.
        scenario: the scenario it was built from.
        builtin_terms: F and S are the scenario's named families (polynomials of v), not
            user callables; the kinetic solver then uses its fast explicit terms.
    """

    F: Pointwise
    S_diag: Pointwise
    G: dict
    G_prime: dict
    sites: Sites
    inputs: np.ndarray
    kernel: np.ndarray
    linear_drift: tuple | None
    additive_noise: np.ndarray | None
    scenario: Scenario
    kernel_modes: dict | None = field(default=None)
    builtin_terms: bool = False

    @property
    def n_sites(self) -> int:
        return self.sites.count

    def coupling(self) -> np.ndarray:
        """W[a, b, j, k] = s_b J_ab(x_j, x_k) rho_k: the balance sum is W @ <G>."""
        return SIGNS[None, :, None, None] * self.kernel * self.sites.weights[None, None, None, :]


def _kernel_matrix(sc: Scenario, sites: Sites) -> np.ndarray:
    k = sc.kernel
    B = sites.count
    J = np.empty((2, 2, B, B))
    if k.family == "matrix":
        try:
            M = np.load(Path(k.file))
        except (OSError, ValueError) as exc:
            raise ScenarioError("kernel.file", f"cannot read {k.file}: {exc}",
                                "give a .npy file saved with numpy.save") from exc
        if M.shape != (B, B):
            raise ScenarioError("kernel.file", f"matrix has shape {M.shape}, the space has "
                                f"{B} sites", f"give a ({B}, {B}) matrix or change space.sites")
        if (M < 0).any() or not np.isfinite(M).all():
            raise ScenarioError("kernel.file", "matrix has negative or non-finite entries",
                                "kernels must be finite and >= 0")
    d = sites.distances()
    for idx, ab in enumerate(PAIRS):
        a, b = divmod(idx, 2)
        p = getattr(k, ab)
        if k.family == "mean_field":
            J[a, b] = p[0]
        elif k.family == "cosine":
            J[a, b] = p[0] + p[1] * np.cos(d)
        elif k.family == "gaussian":
            J[a, b] = p[0] * np.exp(-(d**2) / (2 * k.width**2))
        elif k.family == "exponential":
            J[a, b] = p[0] * np.exp(-d / k.width)
        else:
            J[a, b] = p[0] * M
    return J


MAX_SITES = 4096  # dense kernels and balance Jacobians are (2 sites)^2 doubles


def _check_size(kind: str, count: int) -> None:
    if count > MAX_SITES:
        raise ScenarioError("space.sites", f"{count} sites on the {kind}: the dense kernel "
                            f"alone would need {32 * count**2 / 2**30:.3g} GiB (limit "
                            f"{MAX_SITES} sites)", f"use at most {MAX_SITES} sites")


def build_model(sc: Scenario, *, F: Pointwise | None = None, S_diag: Pointwise | None = None,
                G: dict | None = None, J: Callable | None = None) -> Model:
    """Build the :class:`Model` of a scenario; any family may be replaced by a callable.

    Args:
        sc: the scenario.
        F: user drift ``F(v_e, v_i, xp) -> (F_e, F_i)``; disables the Gaussian reduction.
        S_diag: user diagonal noise ``S(v_e, v_i, xp) -> (S_ee, S_ii)``.
        G: user gains ``{ab: (G, G_prime)}`` for some or all pairs ``ab``.
        J: user kernel ``J(a, b, x, x') -> array``, evaluated on the site grid.
    """
    _check_size(sc.space.kind, sc.space.sites ** (2 if sc.space.kind == "torus" else 1))
    sites = make_sites(sc.space)
    _check_size(sc.space.kind, sites.count)
    pops = (sc.populations.e, sc.populations.i)
    x1 = sites.points[:, 0]
    inputs = np.stack([p.input + p.input_cos * np.cos(x1) for p in pops], axis=1)
    gains = {ab: _gain(sc.gains.family, getattr(sc.gains, ab)) for ab in PAIRS}
    gains.update(G or {})
    if J is None:
        kernel = _kernel_matrix(sc, sites)
    else:
        X = sites.points
        kernel = np.array([[np.broadcast_to(J(a, b, X[:, None, :], X[None, :, :]),
                                            (sites.count, sites.count))
                            for b in range(2)] for a in range(2)], dtype=float)
    linear = None
    if F is None and sc.dynamics.family == "linear":
        tau = np.array([pops[0].tau, pops[1].tau])
        linear = (np.diag(1.0 / tau) - np.array(sc.dynamics.coupling), np.zeros(2))
    additive = None
    if S_diag is None and (sc.noise.family == "diagonal" or not any(sc.noise.kappa)):
        additive = np.diag([pops[0].sigma, pops[1].sigma])
    modes = None
    if sc.kernel.family == "cosine" and J is None:
        modes = {ab: tuple(getattr(sc.kernel, ab)) for ab in PAIRS}
    return Model(F=F or _DRIFTS[sc.dynamics.family](sc), S_diag=S_diag or _noise_diagonal(sc),
                 G={ab: g[0] for ab, g in gains.items()},
                 G_prime={ab: g[1] for ab, g in gains.items()},
                 sites=sites, inputs=inputs, kernel=kernel, linear_drift=linear,
                 additive_noise=additive, scenario=sc, kernel_modes=modes,
                 builtin_terms=F is None and S_diag is None)

