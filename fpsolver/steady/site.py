"""One site's stationary Fokker-Planck pieces as sparse matrices and functionals.

A site's density lives in its frame y = ell * z (:mod:`fpsolver.kinetic.operator`) on the
kinetic solver's state mesh, so the stationary problem uses exactly the kinetic
discretisation: with parameters P = (vbar, m, ell, 0) (m standing for <F>), the weak
form is M dq/dt = A(P) q, and a stationary density solves A(P) q = 0. Everything here is
serial (the mesh lives on ``MPI.COMM_SELF``); one :class:`SiteSpace` serves every site
of a rank, since the frames make all sites share one mesh in z.

Functionals (dof vectors c with c . q = integral h q dz):

- ``mass`` (h = 1) and ``mean`` (h = z_e, z_i): the stationary problem fixes mass 1 and
  mean 0, and they span the neutral directions of the linearised operator;
- ``gains(vbar, ell)``: h = G_ab(vbar_b + ell_b z_b), exact marginal rule (as the
  kinetic solver's balance constraint);
- ``drift(vbar, ell)``: h = F_g(vbar + ell z) (<F> from a density).
"""

from __future__ import annotations

import numpy as np

from fpsolver.scenario import PAIRS

__all__ = ["SiteSpace", "params"]

_H_VBAR = 1e-4   # central 4-point differences in vbar (error ~h^4 |A^(5)|: 0 for cubic F)


def params(vbar, m, ell) -> np.ndarray:
    """P = (vbar, m, ell, 0, 0) of one site (a stationary frame does not move)."""
    return np.concatenate([np.asarray(vbar, float), np.asarray(m, float),
                           np.asarray(ell, float), np.zeros(2)])


class SiteSpace:
    """The state mesh, space, operator and quadratures of one rank's sites (serial).

    Args:
        model: the model.
        numerics: resolved kinetic numerics (:func:`fpsolver.kinetic.numerics.resolve_numerics`):
            domain, half width, cells, grading and degree are used as the kinetic solver
            uses them.
    """

    def __init__(self, model, numerics):
        import dolfinx_solver  # noqa: F401
        from mpi4py import MPI

        from fpsolver.kinetic.densities import SiteDensities
        from fpsolver.kinetic.meshing import state_mesh
        from fpsolver.kinetic.operator import _csr

        self.model, self.numerics = model, numerics
        smesh = state_mesh(MPI.COMM_SELF, numerics.domain, numerics.half_width,
                           numerics.cells, numerics.grading)
        self.smesh = smesh
        self.dens = SiteDensities(MPI.COMM_SELF, np.arange(1), model, smesh, numerics.degree,
                                  np.eye(2))
        self.V, self.operator = self.dens.V, self.dens.operator
        self.quad, self.marginals = self.dens.quad, self.dens.marginals
        self.M = _csr(self.operator.M)
        self.n = self.M.shape[0]
        C = self.quad.C  # raw moment functionals: 1, z_e, z_i, z_e^2, z_e z_i, z_i^2, ...
        self.mass = C[0].copy()
        self.mean = C[1:3].T.copy()          # (n, 2)
        self.moments = C
        self.gaussian = self.dens.q[0].copy()  # N(0, I) projected: a first guess
        self._csr = _csr
        self._stack = self._term_stack()

    def _term_stack(self):
        """(indptr, indices, data (terms, nnz)) when A(P) = sum_k s_k(P) a_k on one pattern.

        The polynomial operator's matrices share the space's sparsity pattern, so A(P) and
        its parameter derivatives are one product of the scalars with the stacked values.
        None for the generic (UFL) operator.
        """
        csr = getattr(self.operator, "csr", None)
        if csr is None or not hasattr(self.operator, "scalars"):
            return None
        first = csr[0]
        for c in csr:
            c.sort_indices()
            if not (np.array_equal(c.indptr, first.indptr)
                    and np.array_equal(c.indices, first.indices)):
                return None
        return first.indptr, first.indices, np.vstack([c.data for c in csr])

    def _combine(self, s: np.ndarray):
        from scipy import sparse

        indptr, indices, data = self._stack
        return sparse.csr_matrix((s @ data, indices, indptr), shape=self.M.shape)

    def _scalars(self, P: np.ndarray) -> np.ndarray:
        return self.operator.scalars(np.asarray(P, float)[None, :])[:, 0]

    def for_model(self, model) -> "SiteSpace":
        """This space for another model (a parameter moved): mesh and quadratures shared.

        The operator is rebuilt only if F or S differ (its matrices are fixed by their
        polynomial coefficients); gains, inputs and kernels are read from the model.
        """
        import copy

        from fpsolver.kinetic.operator import build_operator

        other = copy.copy(self)
        other.model = model
        same = (model.builtin("F", "S") and self.model.builtin("F", "S")
                and np.array_equal(model.drift_coefficients(), self.model.drift_coefficients())
                and np.array_equal(model.diffusion_coefficients(),
                                   self.model.diffusion_coefficients()))
        if not same:
            other.operator = build_operator(self.V, model, self.operator.qdeg)
            other._stack = other._term_stack()
        return other

    # -- the operator -------------------------------------------------------------------
    def matrix(self, P: np.ndarray):
        """A(P) as a scipy CSR matrix (weak form a(q, v) = integral J . grad v)."""
        if self._stack is not None:
            return self._combine(self._scalars(P))
        return self._csr(self.operator.matrix(np.asarray(P, float)))

    def d_mean_drift(self, P: np.ndarray) -> list:
        """dA/dm_g for g = e, i (A is affine in m = <F>: exact differences)."""
        if self._stack is not None:
            s0 = self._scalars(P)
            out = []
            for g in range(2):
                Pg = np.array(P, float)
                Pg[2 + g] += 1.0
                out.append(self._combine(self._scalars(Pg) - s0))
            return out
        A0 = self.matrix(P)
        out = []
        for g in range(2):
            Pg = np.array(P, float)
            Pg[2 + g] += 1.0
            out.append(self.matrix(Pg) - A0)
        return out

    def d_vbar(self, P: np.ndarray) -> list:
        """dA/dvbar_c for c = e, i by a 4-point central difference."""
        out = []
        h = _H_VBAR * (1.0 + np.abs(P[:2]).max())
        at_P = self._scalars if self._stack is not None else self.matrix
        for c in range(2):
            def at(k):
                Pk = np.array(P, float)
                Pk[c] += k * h
                return at_P(Pk)
            d = (8 * (at(1) - at(-1)) - (at(2) - at(-2))) / (12 * h)
            out.append(self._combine(d) if self._stack is not None else d)
        return out

    # -- functionals --------------------------------------------------------------------
    def _rule(self, b: int, ell: float):
        """Abscissae z and the map q -> weights of the axis-b marginal rule (cached)."""
        mr = self.marginals
        points = mr.npts + int(np.ceil(4 * ell * mr.max_width(b)))
        key = (b, points)
        cache = self.__dict__.setdefault("_rules", {})
        if key not in cache:
            z, W = mr.rule(b, points)
            cache[key] = (z, (W @ mr.T[b]).T.tocsr())  # weights = T^T-form: vals -> functional
        return cache[key]

    def gain_functionals(self, vbar, ell):
        """Functionals of G_ab(vbar_b + ell_b z_b) and G_ab' for ab in PAIRS.

        Returns (g, gp), each (4, n): <G_ab> = g[k] . q for k = PAIRS.index(ab).
        """
        g = np.empty((4, self.n))
        gp = np.empty((4, self.n))
        for k, ab in enumerate(PAIRS):
            b = "ei".index(ab[1])
            z, T = self._rule(b, float(ell[b]))
            v = vbar[b] + ell[b] * z
            for out, fun in ((g, self.model.G[ab]), (gp, self.model.G_prime[ab])):
                vals = np.broadcast_to(fun(v, np), v.shape)
                out[k] = T @ vals
        return g, gp

    def drift(self, vbar, ell):
        """Functionals of F_g(vbar + ell z), shape (n, 2), and of DF (n, 2, 2).

        DF by central differences of F (exact enough for a Jacobian: h^2 |F'''|).
        """
        pts = self.quad.points
        ve = vbar[0] + ell[0] * pts[:, 0]
        vi = vbar[1] + ell[1] * pts[:, 1]
        F = [np.broadcast_to(f, ve.shape) for f in self.model.F(ve, vi, np)]
        f = np.column_stack([self.quad.functional(F[0]), self.quad.functional(F[1])])
        h = 1e-6 * (1.0 + np.abs(vbar).max())
        dF = np.empty((self.n, 2, 2))
        for c, (de, di) in enumerate(((h, 0.0), (0.0, h))):
            Fp = self.model.F(ve + de, vi + di, np)
            Fm = self.model.F(ve - de, vi - di, np)
            for g in range(2):
                diff = (np.broadcast_to(Fp[g], ve.shape) - np.broadcast_to(Fm[g], ve.shape))
                dF[:, g, c] = self.quad.functional(diff / (2 * h))
        return f, dF

    def variances(self, q: np.ndarray) -> np.ndarray:
        """Var(z_e), Var(z_i) of a density with mass 1 and mean 0 (in its frame)."""
        raw = self.moments @ q
        return np.array([raw[3] - raw[1] ** 2, raw[5] - raw[2] ** 2]) / raw[0]
