"""The Fokker-Planck operator of one site in its own frame, as data (MODEL §2b).

Every site j carries a diagonal *frame* ``ell_j = (ell_e, ell_i)``: its fluctuation is
written y = ell_j * z (componentwise) and its density is solved for in z, where it stays
of unit size whatever the noise scale. With q(z) = ell_e ell_i p(ell * z) the equation of
MODEL §2b becomes, in conservative form,

    d_t q = -div_z J,   J_g = bt_g q - 1/2 d_g(Dt_g q),
    bt_g(z) = [F_g(vbar + ell * z) - <F_g> - elld_g z_g] / ell_g,
    Dt_g(z) = D_g(vbar + ell * z) / ell_g^2,

with D = diag(S^2) and ``elld`` the time derivative of the frame (its motion is an extra
drift). The weak form (d_t q, v) = a(q, v) = integral J . grad v dz has the zero-flux
boundary built in. A site enters only through its *parameters*

    P = (vbar_e, vbar_i, <F_e>, <F_i>, ell_e, ell_i, elld_e, elld_i)   (array of 8).

Two implementations share one interface:

- :class:`PolynomialOperator` for the built-in families (F a cubic and D a quadratic
  polynomial of v): a(q, v) = sum_k s_k(P) a_k(q, v) with fixed matrices a_k (monomial
  advection and diffusion) and per-site scalars s_k(P); products for many sites at once
  are one sparse-times-dense product.
- :class:`FormOperator` for user callables: the UFL form with the parameters as
  :class:`dolfinx.fem.Constant` values (any model, any communicator, slower).

Both give :meth:`matrix` (A(P_r) at a reference, for the implicit part),
:meth:`difference` ((A(P_j) - A(P_r)) q_j for every site, the explicit part),
:meth:`coefficients` (bt and Dt at points, for the stability bound) and
:meth:`expectations` (<F>, <F_g y_g>, <D_g> of every site, for the means and the frame).
"""

from __future__ import annotations

from math import comb

import numpy as np

from fpsolver.families import DRIFT_DEGREE, NOISE_DEGREE, monomials

__all__ = ["PolynomialOperator", "FormOperator", "build_operator", "PARAMS",
           "shifted"]

PARAMS = 8  # vbar (2), <F> (2), ell (2), elld (2)
_BLOCK_BYTES = 8 << 20  # work block of the explicit products: a few sites at a time


def shifted(c: np.ndarray, vbar: np.ndarray, m: int, n: int, g: int) -> np.ndarray:
    """Coefficient of y_e^m y_i^n in f_g(vbar + y) for f_g = sum c[g,k,l] v_e^k v_i^l.

    One value for every row of ``vbar`` (sites, 2).
    """
    d = c.shape[1] - 1
    out = np.zeros(len(vbar))
    for k in range(m, d + 1):
        for l in range(n, d + 1):
            if c[g, k, l]:
                out += (c[g, k, l] * comb(k, m) * comb(l, n) * vbar[:, 0] ** (k - m)
                        * vbar[:, 1] ** (l - n))
    return out


def _split(P: np.ndarray):
    P = np.atleast_2d(P)
    return P[:, 0:2], P[:, 2:4], P[:, 4:6], P[:, 6:8]


def _active(c: np.ndarray, g: int, degree: int) -> list[tuple[int, int]]:
    """Monomials (m, n) whose coefficient in f_g(vbar + y) can be nonzero."""
    d = c.shape[1] - 1
    return [(m, n) for m, n in monomials(degree)
            if any(c[g, k, l] for k in range(m, d + 1) for l in range(n, d + 1))]


def _csr(mat):
    """A serial PETSc AIJ matrix as a scipy CSR matrix (a copy)."""
    from scipy import sparse

    indptr, indices, data = mat.getValuesCSR()
    return sparse.csr_matrix((data.copy(), indices.copy(), indptr.copy()), shape=mat.getSize())


class _Base:
    """What both operators share: the space, the mass matrix, the work vectors."""

    def __init__(self, V, qdeg: int):
        import dolfinx_solver  # noqa: F401
        import ufl
        from dolfinx import fem
        from dolfinx.fem import petsc

        self.V, self.qdeg = V, qdeg
        self.serial = V.mesh.comm.size == 1
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        self.dx = ufl.dx(metadata={"quadrature_degree": qdeg})
        self.M = petsc.assemble_matrix(fem.form(u * v * self.dx))
        self.M.assemble()
        self.M_csr = _csr(self.M) if self.serial else None
        self.n_owned = V.dofmap.index_map.size_local
        self._x = petsc.create_vector(V)
        self._y = petsc.create_vector(V)
        self.kappa = np.zeros(4)   # artificial diffusion (alpha_e, alpha_i, beta_e, beta_i)
        self._kappa_mats = None

    def stabilisation_matrices(self) -> list:
        """-integral z_g^(2k) d_g phi_j d_g phi_i for (k, g) = (0, e), (0, i), (1, e), (1, i).

        The Fickian artificial diffusion kappa_g(z) = alpha_g + beta_g z_g^2 (flux
        -kappa_g d_g q: mass conserved, no drift added) that carries a transient the mesh
        cannot resolve (:mod:`fpsolver.kinetic.stepper`).
        """
        if self._kappa_mats is None:
            import ufl
            from dolfinx import fem
            from dolfinx.fem import petsc

            u, v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)
            z = ufl.SpatialCoordinate(self.V.mesh)
            self._kappa_mats = []
            for k in range(2):
                for g in range(2):
                    weight = z[g] ** 2 if k else 1.0
                    A = petsc.assemble_matrix(fem.form(-weight * u.dx(g) * v.dx(g) * self.dx))
                    A.assemble()
                    self._kappa_mats.append(A)
        return self._kappa_mats

    def _add_stabilisation(self, A) -> None:
        """A += the artificial diffusion of :attr:`kappa` (same sparsity pattern)."""
        if not self.kappa.any():
            return
        from petsc4py import PETSc

        for coef, mat in zip(self.kappa, self.stabilisation_matrices()):
            if coef:
                A.axpy(float(coef), mat, structure=PETSc.Mat.Structure.SAME_NONZERO_PATTERN)

    def mass_times(self, X: np.ndarray) -> np.ndarray:
        """M times every row of X (owned values), as rows."""
        if self.serial:
            return np.ascontiguousarray((self.M_csr @ X.T).T)
        out = np.empty_like(X)
        for j in range(len(X)):
            self._x.array_w[:] = X[j]
            self.M.mult(self._x, self._y)
            out[j] = self._y.array_r
        return out


class PolynomialOperator(_Base):
    """a(q, v) = sum_k s_k(P) a_k(q, v) for polynomial drift and noise.

    Args:
        V: the density space (z-coordinates).
        drift: c[g, k, l] with F_g(v) = sum c v_e^k v_i^l (degree <= 3).
        noise: d[g, k, l] with D_g(v) = S_gg(v)^2 = sum d v_e^k v_i^l (degree <= 2).
        qdeg: quadrature degree (exact for the monomial matrices).

    The terms are ("drift", g, m, n) with scalar beta = (f_g,mn(vbar) ell^mn - [mn = 00]
    <F_g> - [mn = e_g] elld_g) / ell_g and matrix integral z^mn phi_j d_g phi_i, and
    ("noise", g, m, n) with scalar d_g,mn(vbar) ell^mn / ell_g^2 and matrix
    -1/2 integral d_g(z^mn phi_j) d_g phi_i.
    """

    def __init__(self, V, drift: np.ndarray, noise: np.ndarray, qdeg: int):
        super().__init__(V, qdeg)
        import ufl
        from dolfinx import fem
        from dolfinx.fem import petsc

        self.drift, self.noise = np.asarray(drift, float), np.asarray(noise, float)
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        z = ufl.SpatialCoordinate(V.mesh)
        dx = self.dx

        def mono(m, n):
            return z[0] ** m * z[1] ** n if m + n else 1.0

        self.terms = []
        mats = []
        for g in range(2):
            unit = (1, 0) if g == 0 else (0, 1)
            for m, n in sorted(set(_active(self.drift, g, DRIFT_DEGREE)) | {(0, 0), unit}):
                mats.append(fem.form(mono(m, n) * u * v.dx(g) * dx))
                self.terms.append(("drift", g, m, n))
        for g in range(2):
            for m, n in _active(self.noise, g, NOISE_DEGREE):
                mats.append(fem.form(-0.5 * (mono(m, n) * u).dx(g) * v.dx(g) * dx))
                self.terms.append(("noise", g, m, n))
        self.mats = []
        for form in mats:
            A = petsc.assemble_matrix(form)
            A.assemble()
            self.mats.append(A)
        self._work = self.mats[0].duplicate()
        if self.serial:
            from scipy import sparse

            self.csr = [_csr(A) for A in self.mats]
            self.stack = sparse.hstack(self.csr).tocsr()  # (dofs, terms * dofs)
        self._stacks = {}
        self._drift_mono = monomials(DRIFT_DEGREE)

    # -- scalars ----------------------------------------------------------------------
    def scalars(self, P: np.ndarray) -> np.ndarray:
        """s_k(P_j) of every term k and site j, shape (terms, sites)."""
        vbar, mF, ell, elld = _split(P)
        out = np.empty((len(self.terms), len(vbar)))
        for r, (kind, g, m, n) in enumerate(self.terms):
            scale = ell[:, 0] ** m * ell[:, 1] ** n
            if kind == "drift":
                s = shifted(self.drift, vbar, m, n, g) * scale
                if m + n == 0:
                    s = s - mF[:, g]
                if (m, n) == ((1, 0) if g == 0 else (0, 1)):
                    s = s - elld[:, g]
                out[r] = s / ell[:, g]
            else:
                out[r] = shifted(self.noise, vbar, m, n, g) * scale / ell[:, g] ** 2
        return out

    # -- the interface ----------------------------------------------------------------
    def matrix(self, ref: np.ndarray, out=None):
        """The PETSc matrix of A(P_r) at reference parameters ``ref`` (8,)."""
        from petsc4py import PETSc

        s = self.scalars(np.asarray(ref, float))[:, 0]
        A = out if out is not None else self.mats[0].duplicate()
        A.zeroEntries()
        for coef, mat in zip(s, self.mats):
            if coef:
                A.axpy(float(coef), mat, structure=PETSc.Mat.Structure.SAME_NONZERO_PATTERN)
        self._add_stabilisation(A)
        return A

    def difference(self, Q: np.ndarray, P: np.ndarray, refs: np.ndarray) -> np.ndarray:
        """(A(P_j) - A(P_r)) q_j for every row j of Q (owned values), shape like Q.

        ``refs`` (sites, 8): each row's reference parameters.
        """
        ds = self.scalars(P) - self.scalars(np.atleast_2d(refs))
        k, n = Q.shape
        out = np.zeros_like(Q)
        used = [r for r in range(len(self.terms)) if np.any(ds[r])]
        if not used or not k:
            return out
        if self.serial:
            stack = self.stack if len(used) == len(self.terms) else self._stack_of(used)
            chunk = max(1, _BLOCK_BYTES // (8 * len(used) * n))
            block = np.empty((len(used) * n, min(chunk, k)))
            for lo in range(0, k, chunk):  # a block of sites that stays in memory's cache
                Qc, dc = Q[lo:lo + chunk], ds[:, lo:lo + chunk]
                b = block[:, :len(Qc)]
                for i, r in enumerate(used):
                    np.multiply(Qc.T, dc[r][None, :], out=b[i * n:(i + 1) * n])
                out[lo:lo + chunk] = (stack @ b).T
            return out
        for j in range(k):
            self._x.array_w[:] = Q[j]
            for r in used:
                self.mats[r].mult(self._x, self._y)
                out[j] += ds[r, j] * self._y.array_r
        return out

    def _stack_of(self, used: list[int]):
        from scipy import sparse

        key = tuple(used)
        if key not in self._stacks:
            self._stacks[key] = sparse.hstack([self.csr[r] for r in used]).tocsr()
        return self._stacks[key]

    def coefficients(self, P: np.ndarray, points: np.ndarray):
        """bt_g and Dt_g at ``points`` (m, 2) for every site: two arrays (sites, m, 2)."""
        s = self.scalars(np.atleast_2d(P))
        z0, z1 = points[:, 0], points[:, 1]
        b = np.zeros((s.shape[1], len(points), 2))
        D = np.zeros_like(b)
        for r, (kind, g, m, n) in enumerate(self.terms):
            term = s[r][:, None] * (z0**m * z1**n)[None, :]
            (b if kind == "drift" else D)[:, :, g] += term
        return b, D

    def expectations(self, quad, Q: np.ndarray, P: np.ndarray) -> np.ndarray:
        """Partial sums of F_g, F_g y_g and D_g of every row of Q, shape (sites, 6).

        Over this rank's cells, not normalised: [F_e, F_i, F_e y_e, F_i y_i, D_e, D_i].

        Exact: F and D are polynomials, so these are combinations of raw z-moments.
        """
        vbar, _, ell, _ = _split(P)
        raw = Q @ quad.C.T  # (sites, 15): partial sums of z_e^m z_i^n q
        index = {mn: r for r, mn in enumerate(quad.monomials)}
        out = np.zeros((len(Q), 6))
        for g in range(2):
            unit = (1, 0) if g == 0 else (0, 1)
            for m, n in self._drift_mono:
                f = shifted(self.drift, vbar, m, n, g) * ell[:, 0] ** m * ell[:, 1] ** n
                if not np.any(f):
                    continue
                out[:, g] += f * raw[:, index[(m, n)]]
                out[:, 2 + g] += f * ell[:, g] * raw[:, index[(m + unit[0], n + unit[1])]]
            for m, n in monomials(NOISE_DEGREE):
                d = shifted(self.noise, vbar, m, n, g)
                if np.any(d):
                    out[:, 4 + g] += d * ell[:, 0] ** m * ell[:, 1] ** n * raw[:, index[(m, n)]]
        return out


class FormOperator(_Base):
    """The same operator from the model's callables through UFL (any F and S)."""

    def __init__(self, V, model, qdeg: int):
        super().__init__(V, qdeg)
        import ufl
        from dolfinx import default_scalar_type, fem

        self.model = model
        msh = V.mesh
        zero = np.zeros(PARAMS, dtype=default_scalar_type)
        self.c_ref, self.c_site = fem.Constant(msh, zero.copy()), fem.Constant(msh, zero.copy())
        self.q_work = fem.Function(V)
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        self._a = fem.form(ufl.inner(self._flux(u, self.c_ref), ufl.grad(v)) * self.dx)
        diff = self._flux(self.q_work, self.c_site) - self._flux(self.q_work, self.c_ref)
        self._E = fem.form(ufl.inner(diff, ufl.grad(v)) * self.dx)

    def _flux(self, u, c):
        import ufl

        z = ufl.SpatialCoordinate(self.V.mesh)
        v = [c[0] + c[4] * z[0], c[1] + c[5] * z[1]]
        F = self.model.F(v[0], v[1], xp=ufl)
        S = self.model.S_diag(v[0], v[1], xp=ufl)
        comps = []
        for g in range(2):
            ell = c[4 + g]
            b = (F[g] - c[2 + g] - c[6 + g] * z[g]) / ell
            comps.append(b * u - 0.5 * (S[g] ** 2 / ell**2 * u).dx(g))
        return ufl.as_vector(comps)

    def matrix(self, ref: np.ndarray, out=None):
        """The PETSc matrix of A(P_r) at reference parameters ``ref`` (8,)."""
        from dolfinx.fem import petsc

        self.c_ref.value[:] = ref
        if out is None:
            A = petsc.assemble_matrix(self._a)
        else:
            A = out
            A.zeroEntries()
            petsc.assemble_matrix(A, self._a)
        A.assemble()
        self._add_stabilisation(A)
        return A

    def difference(self, Q: np.ndarray, P: np.ndarray, refs: np.ndarray) -> np.ndarray:
        """As :meth:`PolynomialOperator.difference`, assembled from the UFL forms."""
        from dolfinx.fem import petsc
        from petsc4py import PETSc

        P = np.atleast_2d(P)
        P_ref = np.broadcast_to(refs, P.shape)
        out = np.empty_like(Q)
        n = self.n_owned
        for j in range(len(Q)):
            self.c_ref.value[:] = P_ref[j]
            self.c_site.value[:] = P[j]
            self.q_work.x.array[:n] = Q[j]
            self.q_work.x.scatter_forward()
            with self._y.localForm() as loc:
                loc.set(0.0)
            petsc.assemble_vector(self._y, self._E)
            self._y.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
            out[j] = self._y.array_r
        return out

    def _pointwise(self, P: np.ndarray, z: np.ndarray):
        """bt, Dt (sites, m, 2) from the callables at points z (m, 2)."""
        vbar, mF, ell, elld = _split(P)
        ve = vbar[:, 0:1] + ell[:, 0:1] * z[None, :, 0]
        vi = vbar[:, 1:2] + ell[:, 1:2] * z[None, :, 1]
        F = [np.broadcast_to(f, ve.shape) for f in self.model.F(ve, vi, xp=np)]
        S = [np.broadcast_to(s, ve.shape) for s in self.model.S_diag(ve, vi, xp=np)]
        b = np.stack([(F[g] - mF[:, g:g + 1] - elld[:, g:g + 1] * z[None, :, g])
                      / ell[:, g:g + 1] for g in range(2)], axis=-1)
        D = np.stack([S[g] ** 2 / ell[:, g:g + 1] ** 2 for g in range(2)], axis=-1)
        return b, D

    def coefficients(self, P: np.ndarray, points: np.ndarray):
        """bt_g and Dt_g at ``points`` (m, 2) for every site: two arrays (sites, m, 2)."""
        return self._pointwise(P, points)

    def expectations(self, quad, Q: np.ndarray, P: np.ndarray) -> np.ndarray:
        """As :meth:`PolynomialOperator.expectations`, by quadrature of the callables."""
        vbar, _, ell, _ = _split(P)
        points = quad.points
        out = np.zeros((len(Q), 6))
        for j in range(len(Q)):
            w = quad.weights(Q[j])
            ye, yi = ell[j, 0] * points[:, 0], ell[j, 1] * points[:, 1]
            F = [np.broadcast_to(f, ye.shape) for f in
                 self.model.F(vbar[j, 0] + ye, vbar[j, 1] + yi, xp=np)]
            S = [np.broadcast_to(s, ye.shape) for s in
                 self.model.S_diag(vbar[j, 0] + ye, vbar[j, 1] + yi, xp=np)]
            out[j] = [F[0] @ w, F[1] @ w, (F[0] * ye) @ w, (F[1] * yi) @ w,
                      (S[0] ** 2) @ w, (S[1] ** 2) @ w]
        return out


def build_operator(V, model, qdeg: int):
    """The operator for a model: polynomial when F and S are built in, else UFL forms.

    The fast :class:`PolynomialOperator` takes exact polynomial coefficients from the
    model; any other F or S gets the generic :class:`FormOperator`.
    """
    if not model.builtin("F", "S"):
        return FormOperator(V, model, qdeg)
    return PolynomialOperator(V, model.drift_coefficients(), model.diffusion_coefficients(),
                              qdeg)
