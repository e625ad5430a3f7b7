"""The terms F, S, G, J of the model (MODEL §1) as data: a family name and its parameters.

A :class:`Family` is one term. A built-in family carries its name and parameters, and
its callable is made from them; the solvers' fast paths read the parameters (compiled
particle kernels) or the exact polynomial coefficients (:func:`drift_coefficients`,
:func:`diffusion_coefficients`, kinetic explicit terms) from the family. A user callable
is the family ``user``: no parameters, no coefficients, and every solver evaluates the
callable (the generic path). :attr:`Family.builtin` is the one answer to "is this term
built in".

Built-in families (time in units of tau, voltages dimensionless; L is the 2x2 linear
e-i coupling, ``(L v)_a = sum_b L_ab v_b``):

- F ``linear``:      F_a = -v_a / tau_a + (L v)_a
- F ``double_well``: F_a = (u_a - u_a^3 / w_a^2) / tau_a + (L v)_a,  u_a = v_a - m_a
- F ``cubic``:       F_a = -v_a / tau_a - beta_a v_a^3 + (L v)_a
- S ``diagonal`` / ``multiplicative``: S = diag(S_ee, S_ii),
  S_aa = sigma_a sqrt(1 + kappa_a v_a^2) (``diagonal``: kappa = 0)
- G ``linear`` / ``tanh``: G_ab(z) = C_ab z or C_ab tanh(z), with G_ab'
- G ``tanh_linear``: G_ab(z) = C_ab tanh(z) + D_ab z (a different shape per pair, e.g. a
  saturating G_ee with linear G_ei, G_ie, G_ii: the balance can then have several roots)
- J ``mean_field``, ``cosine``, ``gaussian``, ``exponential``, ``matrix``: see
  :func:`kernel_matrix`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from fpsolver.errors import ScenarioError

__all__ = ["Family", "USER", "TERMS", "drift_family", "noise_family", "gain_family",
           "kernel_family", "user_family", "drift_coefficients", "diffusion_coefficients",
           "kernel_matrix", "monomials", "evaluate_polynomial", "DRIFT_DEGREE",
           "NOISE_DEGREE", "GAIN_FAMILIES", "COMPILED_GAINS"]

USER = "user"
TERMS = ("F", "S", "G", "J")
PAIRS = ("ee", "ei", "ie", "ii")
DRIFT_DEGREE = 3  # the built-in drifts are cubic polynomials of v
NOISE_DEGREE = 2  # the built-in D = S^2 are quadratic


@dataclass(frozen=True)
class Family:
    """One term of the model.

    Attributes:
        term: ``F`` (drift), ``S`` (diagonal noise), ``G`` (gains) or ``J`` (kernels).
        name: the built-in family's name, or ``user`` for a user callable.
        params: the family's parameters (floats and tuples); empty for ``user``.
        func: F, S: ``(v_e, v_i, xp) -> (out_e, out_i)``; G: ``{ab: (G_ab, G_ab')}``;
            J: ``(a, b, x, x') -> array`` for ``user``, None for the built-in kernels
            (evaluated by :func:`kernel_matrix`).
    """

    term: str
    name: str
    params: dict = field(default_factory=dict)
    func: object = None

    @property
    def builtin(self) -> bool:
        """True for a built-in family (name and parameters), False for a user callable."""
        return self.name != USER


def user_family(term: str, func) -> Family:
    """The term ``term`` given as a user callable (always the generic path)."""
    return Family(term, USER, {}, func)


# ---------------------------------------------------------------------------- drift F
def _pair(values) -> tuple[float, float]:
    return (float(values[0]), float(values[1]))


def drift_family(name: str, *, tau, coupling, center=(0.0, 0.0), width=(1.0, 1.0),
                 cubic=(0.0, 0.0)) -> Family:
    """The built-in drift ``name`` (module docstring) with its parameters."""
    params = {"tau": _pair(tau), "coupling": (_pair(coupling[0]), _pair(coupling[1]))}
    if name == "double_well":
        params.update(center=_pair(center), width=_pair(width))
    elif name == "cubic":
        params.update(cubic=_pair(cubic))
    elif name != "linear":
        raise ScenarioError("dynamics.family", f"unknown drift family '{name}'",
                            "use linear, double_well or cubic")
    return Family("F", name, params, _DRIFTS[name](params))


def _linear_drift(p: dict) -> Callable:
    tau, L = p["tau"], p["coupling"]

    def F(ve, vi, xp=np):
        return (-ve / tau[0] + L[0][0] * ve + L[0][1] * vi,
                -vi / tau[1] + L[1][0] * ve + L[1][1] * vi)
    return F


def _double_well_drift(p: dict) -> Callable:
    tau, L, m, w = p["tau"], p["coupling"], p["center"], p["width"]

    def F(ve, vi, xp=np):
        ue, ui = ve - m[0], vi - m[1]
        return ((ue - ue**3 / w[0] ** 2) / tau[0] + L[0][0] * ve + L[0][1] * vi,
                (ui - ui**3 / w[1] ** 2) / tau[1] + L[1][0] * ve + L[1][1] * vi)
    return F


def _cubic_drift(p: dict) -> Callable:
    tau, L, beta = p["tau"], p["coupling"], p["cubic"]

    def F(ve, vi, xp=np):
        return (-ve / tau[0] - beta[0] * ve**3 + L[0][0] * ve + L[0][1] * vi,
                -vi / tau[1] - beta[1] * vi**3 + L[1][0] * ve + L[1][1] * vi)
    return F


_DRIFTS = {"linear": _linear_drift, "double_well": _double_well_drift, "cubic": _cubic_drift}


def drift_coefficients(family: Family) -> np.ndarray | None:
    """Exact c[g, k, l] (shape (2, 4, 4)) with F_g(v) = sum c[g, k, l] v_e^k v_i^l.

    None for a user drift. Per population a (index g = a, own variable v_a):
    linear and cubic give -1/tau_a v_a (and -beta_a v_a^3); the double well expands
    (u - u^3/w^2)/tau with u = v - m into (m^3/w^2 - m)/tau + (1 - 3m^2/w^2)/tau v
    + 3m/(w^2 tau) v^2 - 1/(w^2 tau) v^3; L adds L_ab to the linear terms.
    """
    if not family.builtin:
        return None
    p = family.params
    c = np.zeros((2, DRIFT_DEGREE + 1, DRIFT_DEGREE + 1))
    for a in range(2):
        own = (slice(None), 0) if a == 0 else (0, slice(None))  # powers of v_a
        poly = np.zeros(DRIFT_DEGREE + 1)  # coefficients of v_a^k of the own-variable part
        tau = p["tau"][a]
        if family.name == "double_well":
            m, w2 = p["center"][a], p["width"][a] ** 2
            poly[:] = [(m**3 / w2 - m) / tau, (1 - 3 * m**2 / w2) / tau, 3 * m / (w2 * tau),
                       -1 / (w2 * tau)]
        else:
            poly[1] = -1 / tau
            if family.name == "cubic":
                poly[3] = -p["cubic"][a]
        c[a][own] += poly
        c[a, 1, 0] += p["coupling"][a][0]
        c[a, 0, 1] += p["coupling"][a][1]
    return c


# ---------------------------------------------------------------------------- noise S
def noise_family(name: str, *, sigma, kappa=(0.0, 0.0)) -> Family:
    """The built-in diagonal noise ``name``; ``diagonal`` ignores ``kappa`` (kappa = 0)."""
    if name not in ("diagonal", "multiplicative"):
        raise ScenarioError("noise.family", f"unknown noise family '{name}'",
                            "use diagonal or multiplicative")
    kap = _pair(kappa) if name == "multiplicative" else (0.0, 0.0)
    params = {"sigma": _pair(sigma), "kappa": kap}
    sig = params["sigma"]

    def S(ve, vi, xp=np):
        se = sig[0] * xp.sqrt(1.0 + kap[0] * ve**2) if kap[0] else sig[0] + 0.0 * ve
        si = sig[1] * xp.sqrt(1.0 + kap[1] * vi**2) if kap[1] else sig[1] + 0.0 * vi
        return se, si
    return Family("S", name, params, S)


def diffusion_coefficients(family: Family) -> np.ndarray | None:
    """Exact c[g, k, l] with D_gg(v) = S_gg(v)^2 = sum c[g, k, l] v_e^k v_i^l.

    Shape (2, 3, 3), i.e. D_aa = sigma_a^2 + sigma_a^2 kappa_a v_a^2; None for a user noise.
    """
    if not family.builtin:
        return None
    sig, kap = family.params["sigma"], family.params["kappa"]
    c = np.zeros((2, NOISE_DEGREE + 1, NOISE_DEGREE + 1))
    c[0, 0, 0], c[0, 2, 0] = sig[0] ** 2, sig[0] ** 2 * kap[0]
    c[1, 0, 0], c[1, 0, 2] = sig[1] ** 2, sig[1] ** 2 * kap[1]
    return c


# ---------------------------------------------------------------------------- gains G
GAIN_FAMILIES = ("linear", "tanh", "tanh_linear")
COMPILED_GAINS = ("linear", "tanh")  # one shape C_ab g(z) for all pairs (particle kernels)


def _gain(name: str, C: float, D: float = 0.0) -> tuple[Callable, Callable]:
    if name == "linear":
        return (lambda z, xp=np: C * z), (lambda z, xp=np: C + 0.0 * z)
    if name == "tanh":
        return (lambda z, xp=np: C * xp.tanh(z)), (lambda z, xp=np: C * (1.0 - xp.tanh(z) ** 2))
    return ((lambda z, xp=np: C * xp.tanh(z) + D * z),
            (lambda z, xp=np: C * (1.0 - xp.tanh(z) ** 2) + D))


def gain_family(name: str, C, slope=None) -> Family:
    """The built-in gains ``name`` with C = [[C_ee, C_ei], [C_ie, C_ii]] (all C_ab >= 0).

    ``tanh_linear`` also takes ``slope`` = [[D_ee, D_ei], [D_ie, D_ii]] (all >= 0):
    G_ab(z) = C_ab tanh(z) + D_ab z; the other families have no slope (None or zeros).
    """
    if name not in GAIN_FAMILIES:
        raise ScenarioError("gains.family", f"unknown gain family '{name}'",
                            f"use one of {list(GAIN_FAMILIES)}")
    C = (_pair(C[0]), _pair(C[1]))
    D = ((0.0, 0.0), (0.0, 0.0)) if slope is None else (_pair(slope[0]), _pair(slope[1]))
    if name != "tanh_linear" and any(any(row) for row in D):
        raise ScenarioError("gains.slope", f"a linear part {[list(r) for r in D]} is only "
                            f"used by the tanh_linear family, not by '{name}'",
                            "set gains.family = \"tanh_linear\" or leave gains.slope at zero")
    params = {"C": C} if name != "tanh_linear" else {"C": C, "slope": D}
    return Family("G", name, params,
                  {ab: _gain(name, C[idx // 2][idx % 2], D[idx // 2][idx % 2])
                   for idx, ab in enumerate(PAIRS)})


# ---------------------------------------------------------------------------- kernels J
def kernel_family(name: str, *, coefficients: dict, width: float = 1.0,
                  file: str = "") -> Family:
    """The built-in kernels ``name``; ``coefficients[ab]`` is the scenario's list for ab."""
    params = {ab: tuple(float(x) for x in coefficients[ab]) for ab in PAIRS}
    params.update(width=float(width), file=str(file))
    return Family("J", name, params, None)


def _read_matrix(file: str, B: int) -> np.ndarray:
    from fpsolver.paths import load_matrix  # a regular file, size-limited, no pickle

    M = load_matrix(file, "kernel.file", (B, B))
    if (M < 0).any() or not np.isfinite(M).all():
        raise ScenarioError("kernel.file", "matrix has negative or non-finite entries",
                            "kernels must be finite and >= 0")
    return M


def kernel_matrix(family: Family, sites, rows=None) -> np.ndarray:
    """J_ab(x_j, x_k) on the sites, shape (2, 2, len(rows), sites); all rows by default.

    With d the (periodic) distance of the sites and c = the pair's coefficients:
    ``mean_field`` c0; ``cosine`` c0 + c1 cos d; ``gaussian`` c0 exp(-d^2 / (2 width^2));
    ``exponential`` c0 exp(-d / width); ``matrix`` c0 M (M read from ``file``);
    ``user`` the callable evaluated on the site grid.
    """
    B = sites.count
    rows = np.arange(B) if rows is None else np.asarray(rows, dtype=np.int64)
    if not family.builtin:
        X = sites.points
        return np.array([[np.broadcast_to(family.func(a, b, X[rows, None, :], X[None, :, :]),
                                          (len(rows), B)) for b in range(2)]
                         for a in range(2)], dtype=float)
    p, name = family.params, family.name
    M = _read_matrix(p["file"], B)[rows] if name == "matrix" else None
    d = sites.distances(rows)
    J = np.empty((2, 2, len(rows), B))
    for idx, ab in enumerate(PAIRS):
        a, b = divmod(idx, 2)
        c = p[ab]
        if name == "mean_field":
            J[a, b] = c[0]
        elif name == "cosine":
            J[a, b] = c[0] + c[1] * np.cos(d)
        elif name == "gaussian":
            J[a, b] = c[0] * np.exp(-(d**2) / (2 * p["width"] ** 2))
        elif name == "exponential":
            J[a, b] = c[0] * np.exp(-d / p["width"])
        else:
            J[a, b] = c[0] * M
    return J


def monomials(degree: int) -> list[tuple[int, int]]:
    """Exponents (k, l) of v_e^k v_i^l with k + l <= degree."""
    return [(k, total - k) for total in range(degree + 1) for k in range(total, -1, -1)]


def evaluate_polynomial(c: np.ndarray, ve, vi) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate sum c[g, k, l] v_e^k v_i^l for g = e, i (tests and checks)."""
    d = c.shape[1] - 1
    out = [0.0 * ve + 0.0 * vi, 0.0 * ve + 0.0 * vi]
    for g in range(2):
        for ke, ki in monomials(d):
            if c[g, ke, ki]:
                out[g] = out[g] + c[g, ke, ki] * ve**ke * vi**ki
    return out[0], out[1]

