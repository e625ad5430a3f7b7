"""Fast explicit terms for polynomial drift and noise: fixed matrices, per-site scalars.

The built-in drift families (linear, double_well, cubic) are cubic polynomials of v and
the built-in noises give a quadratic D = S^2, so for a site with mean ``vbar``

    F_g(vbar + y) = sum_mn f_g,mn(vbar) y_e^m y_i^n,   D_gg(vbar + y) = sum_mn d_g,mn(vbar) y^mn

with coefficients that are polynomials of vbar. The explicit IMEX term of
:mod:`fpsolver.kinetic.group`, ``E(p)(q) = (a_site - a_ref)(p, q)`` with the flux of
:mod:`fpsolver.kinetic.forms`, is then a sum of *fixed* matrices times per-site scalars:

    E = sum_(g,mn) [f_g,mn(vbar) - f_g,mn(vbar_r) - delta_mn0 (mF_g - mF_r,g)] Adv_g,mn p
        - 1/2 sum_(g,mn) [d_g,mn(vbar) - d_g,mn(vbar_r)] Dif_g,mn p,
    Adv_g,mn[i, j] = integral y^mn phi_j d_g phi_i,
    Dif_g,mn[i, j] = integral d_g(y^mn phi_j) d_g phi_i,

over the monomials whose coefficient depends on vbar (the others cancel). They are
assembled once with the forms' quadrature, so E agrees with the UFL form to round-off;
a step applies them to all sites at once (sparse times dense block), and
<F(vbar + .)>_p = sum_mn f_g,mn(vbar) (integral y^mn p) is a product with moment vectors.
The coefficients are read off the model's own F and S by a least-squares fit on a grid
that must be exact to round-off. Only serial site groups (whole mesh on one rank) with
the built-in families use this; anything else keeps the generic form assembly.
"""

from __future__ import annotations

from math import comb

import numpy as np

__all__ = ["PolynomialTerms", "fit_polynomial", "polynomial_terms"]

DRIFT_DEGREE = 3
NOISE_DEGREE = 2


def _monomials(degree: int) -> list[tuple[int, int]]:
    """Exponents (m, n) of y_e^m y_i^n with m + n <= degree."""
    return [(m, total - m) for total in range(degree + 1) for m in range(total, -1, -1)]


def fit_polynomial(f, degree: int, scale: float = 2.0):
    """Coefficients c[g, k, l] with f_g(v) = sum c[g, k, l] v_e^k v_i^l, or None.

    ``f(ve, vi, xp) -> (f_e, f_i)`` is sampled on a (degree + 3)^2 grid of [-scale, scale]^2;
    None when the least-squares residual is above round-off (not such a polynomial).
    """
    s = np.linspace(-scale, scale, degree + 3)
    ve, vi = (a.ravel() for a in np.meshgrid(s, s, indexing="ij"))
    mons = _monomials(degree)
    V = np.column_stack([ve**k * vi**l for k, l in mons])
    c = np.zeros((2, degree + 1, degree + 1))
    try:
        vals = f(ve, vi, xp=np)
    except Exception:  # noqa: BLE001 - any failure means: use the generic path
        return None
    for g in range(2):
        y = np.broadcast_to(np.asarray(vals[g], float), ve.shape)
        if not np.all(np.isfinite(y)):
            return None
        sol, *_ = np.linalg.lstsq(V, y, rcond=None)
        if np.abs(V @ sol - y).max() > 1e-9 * (1 + np.abs(y).max()):
            return None
        for (k, l), value in zip(mons, sol):
            c[g, k, l] = 0.0 if abs(value) < 1e-13 * (1 + np.abs(sol).max()) else value
    return c


def _shifted(c: np.ndarray, vbar: np.ndarray, m: int, n: int, g: int) -> np.ndarray:
    """Coefficient of y_e^m y_i^n in f_g(vbar + y), for every row of vbar (k, 2)."""
    d = c.shape[1] - 1
    out = np.zeros(len(vbar))
    for k in range(m, d + 1):
        for l in range(n, d + 1):
            if c[g, k, l]:
                out += (c[g, k, l] * comb(k, m) * comb(l, n) * vbar[:, 0] ** (k - m)
                        * vbar[:, 1] ** (l - n))
    return out


def _varying(c: np.ndarray, g: int) -> list[tuple[int, int]]:
    """Monomials (m, n) whose coefficient in f_g(vbar + y) depends on vbar."""
    d = c.shape[1] - 1
    return [(m, n) for m, n in _monomials(d)
            if any(c[g, k, l] for k in range(m, d + 1) for l in range(n, d + 1)
                   if (k, l) != (m, n))]


class PolynomialTerms:
    """The fixed matrices of the explicit term and the moment vectors of <F>.

    Args:
        V: the density space on a one-rank communicator (serial site group).
        drift: coefficients of F (:func:`fit_polynomial`, degree 3).
        noise: coefficients of D = S^2 (degree 2), or None for additive noise (no term).
        qdeg: quadrature degree of the forms (the same rule makes E agree to round-off).
    """

    def __init__(self, V, drift: np.ndarray, noise: np.ndarray | None, qdeg: int):
        import dolfinx_solver  # noqa: F401
        import ufl
        from dolfinx import fem
        from scipy import sparse

        self.drift, self.noise = drift, noise
        u, q = ufl.TrialFunction(V), ufl.TestFunction(V)
        y = ufl.SpatialCoordinate(V.mesh)
        dx = ufl.dx(metadata={"quadrature_degree": qdeg})

        def mono(m, n):
            return y[0] ** m * y[1] ** n if m + n else 1.0

        def matrix(form):
            return fem.assemble_matrix(fem.form(form)).to_scipy().tocsr()

        self.terms = []  # (kind, g, m, n), in the column-block order of self.stack
        blocks = []
        for g in range(2):
            # the (0, 0) term carries the mF difference even for a constant F_g
            for m, n in sorted(set(_varying(drift, g)) | {(0, 0)}):
                blocks.append(matrix(mono(m, n) * u * q.dx(g) * dx))
                self.terms.append(("drift", g, m, n))
        if noise is not None:
            for g in range(2):
                for m, n in _varying(noise, g):
                    blocks.append(matrix(-0.5 * (mono(m, n) * u).dx(g) * q.dx(g) * dx))
                    self.terms.append(("noise", g, m, n))
        self.stack = sparse.hstack(blocks).tocsr()  # (dofs, terms * dofs)
        # <F>: integral y^mn p = mom_matrix[r] . p for the monomials of F(vbar + y)
        self.mom_keys = [(m, n) for m, n in _monomials(DRIFT_DEGREE) if drift[:, m:, n:].any()]
        self.mom_matrix = np.array([fem.assemble_vector(fem.form(mono(m, n) * q * dx)).array
                                    for m, n in self.mom_keys])

    def scalars(self, vbar: np.ndarray, mF: np.ndarray) -> np.ndarray:
        """Per-site factor of every term, shape (terms, sites); vbar, mF of shape (sites, 2)."""
        out = np.empty((len(self.terms), len(vbar)))
        for r, (kind, g, m, n) in enumerate(self.terms):
            if kind == "drift":
                out[r] = _shifted(self.drift, vbar, m, n, g) - (mF[:, g] if m + n == 0 else 0)
            else:
                out[r] = _shifted(self.noise, vbar, m, n, g)
        return out

    def explicit(self, p: np.ndarray, vbar, mF, vbar_r, mF_r) -> np.ndarray:
        """E for every site: p (sites, dofs) -> (sites, dofs)."""
        k, n = p.shape
        s = self.scalars(vbar, mF) - self.scalars(vbar_r[None, :], mF_r[None, :])
        block = np.empty((len(self.terms) * n, k))
        for r in range(len(self.terms)):
            np.multiply(p.T, s[r][None, :], out=block[r * n:(r + 1) * n])
        return np.ascontiguousarray((self.stack @ block).T)

    def mean_F(self, p: np.ndarray, vbar: np.ndarray) -> np.ndarray:
        """integral F(vbar + y) p dy for every site, shape (sites, 2)."""
        mom = p @ self.mom_matrix.T  # (sites, monomials)
        out = np.zeros((len(p), 2))
        for g in range(2):
            for col, (m, n) in enumerate(self.mom_keys):
                out[:, g] += _shifted(self.drift, vbar, m, n, g) * mom[:, col]
        return out


def polynomial_terms(V, model, qdeg: int) -> PolynomialTerms | None:
    """The fast terms of ``model`` on V, or None (user callables, a distributed mesh)."""
    if V.mesh.comm.size != 1 or not getattr(model, "builtin_terms", False):
        return None
    drift = fit_polynomial(model.F, DRIFT_DEGREE)
    if drift is None:
        return None
    noise = None
    if model.additive_noise is None:
        def D(ve, vi, xp=np):
            s = model.S_diag(ve, vi, xp=np)
            return s[0] ** 2, s[1] ** 2
        noise = fit_polynomial(D, NOISE_DEGREE)
        if noise is None:
            return None
    return PolynomialTerms(V, drift, noise, qdeg)
