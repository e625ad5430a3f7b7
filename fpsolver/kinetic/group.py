"""The densities of one site group: mesh, forms, factored operator, IMEX time steps.

A group owns some sites of E and one state-space mesh on its own communicator (every
site of the group shares the mesh and the factorisation). Per site it keeps the dof
values of p^n and p^{n-1} and the explicit terms of the IMEX scheme. The implicit
operator is the Fokker-Planck operator a_ref at a shared reference (vbar_r, mF_r); each
site's difference a_site - a_ref is explicit, extrapolated to second order:

- ``bdf2`` (SBDF2): (3 p^{n+1} - 4 p^n + p^{n-1}) / (2 dt) = A p^{n+1} + 2 E^n - E^{n-1}
- ``cn`` (CN/AB2):  (p^{n+1} - p^n) / dt = A (p^{n+1} + p^n) / 2 + 3/2 E^n - 1/2 E^{n-1}
- ``euler`` (IMEX backward Euler): (p^{n+1} - p^n) / dt = A p^{n+1} + E^n

BDF2 starts with one CN step. For linear F with additive noise E = 0 and the operator is
constant: it is factored once. Otherwise the reference moves to the group mean when a
group mean drifts more than ``ref_tol`` from it (one numeric refactorisation).

On a serial group (whole mesh on one rank) every site is advanced at once: E and <F>
come from the fixed matrices of :mod:`fpsolver.kinetic.polynomial` for the built-in
drift/noise families, and M p, A p are sparse products with all sites as columns. A
distributed mesh or user callables use per-site form assembly and PETSc products.
"""

from __future__ import annotations

import numpy as np

from fpsolver.kinetic.forms import fp_forms
from fpsolver.kinetic.linsolve import LinearSolver
from fpsolver.kinetic.polynomial import polynomial_terms
from fpsolver.kinetic.quadrature import DensityQuadrature

__all__ = ["SiteGroup"]


def _csr(mat):
    """A serial PETSc AIJ matrix as a scipy CSR matrix (a copy)."""
    from scipy import sparse

    indptr, indices, data = mat.getValuesCSR()
    return sparse.csr_matrix((data.copy(), indices.copy(), indptr.copy()), shape=mat.getSize())


def _gaussian_dofs(V, cov: np.ndarray, mean=(0.0, 0.0)) -> np.ndarray:
    import dolfinx_solver  # noqa: F401
    from dolfinx import fem

    P = np.linalg.inv(cov)
    norm = 1.0 / (2 * np.pi * np.sqrt(np.linalg.det(cov)))
    f = fem.Function(V)
    m0, m1 = mean

    def gauss(x):
        u, v = x[0] - m0, x[1] - m1
        return norm * np.exp(-0.5 * (P[0, 0] * u**2 + 2 * P[0, 1] * u * v + P[1, 1] * v**2))
    f.interpolate(gauss)
    return f.x.array.copy()


class SiteGroup:
    """Fokker-Planck densities of the sites ``sites`` on the communicator ``comm``.

    Args:
        comm: the group's communicator (its mesh lives there).
        sites: global indices of the sites this group advances.
        model: the model (F, S, ...).
        smesh: the state mesh (:class:`~fpsolver.kinetic.meshing.StateMesh`) on ``comm``.
        ref_tol: largest |vbar - vbar_r| or |mF - mF_r| before the reference moves.
        initial_mean: mean of the initial Gaussian (0 in the kinetic limit; tests use others).
    """

    def __init__(self, comm, sites: np.ndarray, model, smesh, *, ref_tol: float = 0.05,
                 initial_mean=(0.0, 0.0)):
        import dolfinx_solver  # noqa: F401
        from dolfinx import fem
        from dolfinx.fem import petsc

        kin = model.scenario.kinetic
        self.comm, self.sites, self.model, self.smesh = comm, np.asarray(sites), model, smesh
        self.dt, self.scheme = kin.dt, kin.scheme
        self.constant = model.linear_drift is not None and model.additive_noise is not None
        self.ref_tol = ref_tol
        self.forms = fp_forms(smesh.mesh, model, kin.degree, site_dependent=not self.constant)
        V = self.forms.V
        self.V = V
        self.quad = DensityQuadrature(V)
        self.M = petsc.assemble_matrix(self.forms.mass)
        self.M.assemble()
        self.A = petsc.assemble_matrix(self.forms.operator)
        self.A.assemble()
        self.fast = polynomial_terms(V, model, self.forms.qdeg)
        self.serial = comm.size == 1
        self.M_csr = _csr(self.M) if self.serial else None
        self.A_csr = _csr(self.A) if self.serial else None
        self.vbar_r = np.zeros(2)
        self.mF_r = np.zeros(2)
        self.ref_version = 0
        self.refactorisations = 0
        self._systems: dict[str, tuple] = {}
        self.petsc_options = dict(kin.petsc_options)
        self.n_local = V.dofmap.index_map.size_local
        self.x = fem.Function(V)          # solution work vector
        self.b = petsc.create_vector(V)   # right-hand side
        self.e = petsc.create_vector(V)   # explicit term work vector
        self.tmp = fem.Function(V)
        k = len(self.sites)
        size = len(self.x.x.array)
        p0 = _gaussian_dofs(V, np.array(model.scenario.initial.cov), initial_mean)
        self.p = np.tile(p0, (k, 1))            # p^n (owned + ghost values), per site
        self.p_old = self.p.copy()              # p^{n-1}
        self.E_old = np.zeros((k, self.n_local))  # E^{n-1} (owned), w.r.t. ref_version
        self.E_old_version = -1
        self.have_old = False
        self.vbar = np.zeros((k, 2))
        self.mF = np.zeros((k, 2))
        self.vbar_old = np.zeros((k, 2))
        self.mF_old = np.zeros((k, 2))
        assert self.p.shape[1] == size

    # -- the implicit systems ------------------------------------------------------------
    def _system(self, kind: str):
        """(solver, matrix, rhs-matrix) for ``kind`` in bdf2 / cn / euler, built lazily."""
        if kind not in self._systems:
            c, theta = {"bdf2": (1.5 / self.dt, 1.0), "cn": (1.0 / self.dt, 0.5),
                        "euler": (1.0 / self.dt, 1.0)}[kind]
            K = self.M.copy()
            K.scale(c)
            K.axpy(-theta, self.A)
            solver = LinearSolver(K, self.petsc_options, name=kind)
            self._systems[kind] = (solver, K, c, theta)
        return self._systems[kind]

    def _rebuild_systems(self) -> None:
        for solver, K, c, theta in self._systems.values():
            self.M.copy(K)
            K.scale(c)
            K.axpy(-theta, self.A)
            solver.operator_changed()

    def set_reference(self, vbar_r: np.ndarray, mF_r: np.ndarray) -> None:
        """Move the reference drift; reassemble A and refactor (numeric) the systems."""
        from dolfinx.fem import petsc

        self.vbar_r, self.mF_r = np.array(vbar_r, float), np.array(mF_r, float)
        self.forms.vbar_r.value[:] = self.vbar_r
        self.forms.mF_r.value[:] = self.mF_r
        self.A.zeroEntries()
        petsc.assemble_matrix(self.A, self.forms.operator)
        self.A.assemble()
        if self.serial:
            self.A_csr = _csr(self.A)
        self._rebuild_systems()
        self.ref_version += 1
        self.refactorisations += 1

    def maybe_move_reference(self, vm: np.ndarray, fm: np.ndarray) -> None:
        """Move the reference to (vm, fm) (the mean over all sites of E, so that the
        split does not depend on the layout) if it drifted more than ``ref_tol``."""
        if self.constant or not len(self.sites):
            return
        # the sites' spread around their mean is fixed by the model; only the drift of
        # the mean from the reference can be removed by refactoring
        drift = max(np.abs(vm - self.vbar_r).max(), np.abs(fm - self.mF_r).max())
        if drift > self.ref_tol or self.ref_version == 0:
            self.set_reference(vm, fm)

    # -- explicit terms ------------------------------------------------------------------
    def explicit(self, p: np.ndarray, vbar: np.ndarray, mF: np.ndarray) -> np.ndarray:
        """E = (a_site - a_ref)(p_j, .) for every row j of p, owned values (sites, owned)."""
        if self.fast is not None:
            return self.fast.explicit(p, vbar, mF, self.vbar_r, self.mF_r)
        out = np.empty((len(p), self.n_local))
        for j in range(len(p)):
            out[j] = self._explicit_form(p[j], vbar[j], mF[j])
        return out

    def _explicit_form(self, p: np.ndarray, vbar: np.ndarray, mF: np.ndarray) -> np.ndarray:
        """E of one site by assembling the UFL form (any model, any communicator)."""
        from dolfinx.fem import petsc
        from petsc4py import PETSc

        f = self.forms
        f.vbar_s.value[:] = vbar
        f.mF_s.value[:] = mF
        f.p_work.x.array[:] = p
        with self.e.localForm() as loc:
            loc.set(0.0)
        petsc.assemble_vector(self.e, f.explicit)
        self.e.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        return self.e.array_r.copy()

    def _apply(self, which: str, X: np.ndarray) -> np.ndarray:
        """M or A (``which``) times every row of X (owned values), as rows."""
        if self.serial:
            mat = self.M_csr if which == "M" else self.A_csr
            return np.ascontiguousarray((mat @ X.T).T)
        mat = self.M if which == "M" else self.A
        out = np.empty_like(X)
        for j in range(len(X)):
            self.tmp.x.petsc_vec.array_w[:] = X[j]
            mat.mult(self.tmp.x.petsc_vec, self.b)
            out[j] = self.b.array_r
        return out

    # -- one time step -------------------------------------------------------------------
    def step(self, where: str = "", reference=None) -> None:
        """Advance every site's density by one step with the current vbar and mF.

        ``reference``: (vbar, mF) to move the shared reference to (default: group mean).
        """
        kind = self.scheme
        if kind == "bdf2" and not self.have_old:
            kind = "cn"
        solver, K, c, theta = self._system(kind)
        if reference is None:
            reference = (self.vbar.mean(axis=0), self.mF.mean(axis=0))
        self.maybe_move_reference(*reference)
        k, n = len(self.sites), self.n_local
        E_new = np.zeros((k, n))
        if not self.constant and k:
            E_new = self.explicit(self.p, self.vbar, self.mF)
            if self.have_old and self.E_old_version != self.ref_version:
                self.E_old = self.explicit(self.p_old, self.vbar_old, self.mF_old)
        p, p_old = self.p[:, :n], self.p_old[:, :n]
        if kind == "bdf2":
            rhs = self._apply("M", (4 * p - p_old) / (2 * self.dt)) + (2 * E_new - self.E_old)
        elif kind == "cn":
            rhs = self._apply("M", p / self.dt) + self._apply("A", 0.5 * p)
            rhs += (1.5 * E_new - 0.5 * self.E_old) if self.have_old else E_new
        else:
            rhs = self._apply("M", p / self.dt) + E_new
        sol = self._solve(solver, rhs, where)
        self.p_old, self.E_old = self.p, E_new
        self.E_old_version = self.ref_version
        self.p = sol
        self.vbar_old, self.mF_old = self.vbar.copy(), self.mF.copy()
        self.have_old = True

    def _solve(self, solver, rhs: np.ndarray, where: str) -> np.ndarray:
        from petsc4py import PETSc

        k, n = rhs.shape
        out = np.empty((k, len(self.x.x.array)))
        if k > 1 and self.comm.size == 1 and solver.direct:
            B = PETSc.Mat().createDense([n, k], array=np.asfortranarray(rhs.T).ravel(order="F"),
                                        comm=PETSc.COMM_SELF)
            X = PETSc.Mat().createDense([n, k], comm=PETSc.COMM_SELF)
            X.setUp()
            B.assemble()
            X.assemble()
            solver.mat_solve(B, X, where)
            out[:, :n] = X.getDenseArray().T
            B.destroy()
            X.destroy()
            return out
        for j in range(k):
            self.b.array_w[:] = rhs[j]
            solver.solve(self.b, self.x.x.petsc_vec, where)
            self.x.x.scatter_forward()
            out[j] = self.x.x.array
        return out

    # -- quadrature ----------------------------------------------------------------------
    def point_weights(self, j: int) -> np.ndarray:
        return self.quad.weights(self.p[j])

    def mean_F(self, vbar: np.ndarray) -> np.ndarray:
        """This rank's part of integral F(vbar_j + y) p_j dy for every site, shape (sites, 2)."""
        if self.fast is not None:
            return self.fast.mean_F(self.p, vbar)
        from dolfinx import fem

        f = self.forms
        out = np.empty((len(self.p), 2))
        for j in range(len(self.p)):
            f.vbar_s.value[:] = vbar[j]
            f.p_work.x.array[:] = self.p[j]
            out[j] = [fem.assemble_scalar(f.mean_F[a]) for a in range(2)]
        return out

    def min_density(self) -> np.ndarray:
        n = self.n_local
        return self.p[:, :n].min(axis=1) if n else np.full(len(self.sites), np.inf)

    # -- checkpointing -------------------------------------------------------------------
    def state(self) -> dict:
        """Arrays that restart the group exactly (this rank's part)."""
        return {"p": self.p.copy(), "p_old": self.p_old.copy(), "E_old": self.E_old.copy(),
                "vbar": self.vbar.copy(), "mF": self.mF.copy(), "vbar_old": self.vbar_old.copy(),
                "mF_old": self.mF_old.copy(), "vbar_r": self.vbar_r.copy(),
                "mF_r": self.mF_r.copy(), "have_old": np.array(self.have_old)}

    def restore(self, state: dict) -> None:
        for name in ("p", "p_old", "E_old", "vbar", "mF", "vbar_old", "mF_old"):
            setattr(self, name, np.array(state[name], float))
        self.have_old = bool(state["have_old"])
        if not self.constant:
            self.set_reference(state["vbar_r"], state["mF_r"])
            self.E_old_version = self.ref_version
