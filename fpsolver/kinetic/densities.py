"""The densities of this rank's sites: one state mesh in z, the operator, the dof arrays.

Every site of a layout group shares the mesh, the space, the operator's fixed matrices
and the quadrature; per site there is a row of dof values (owned + ghost) of q^n, the
density in the site's own frame (:mod:`fpsolver.kinetic.frame`). Initial data: the
centred Gaussian N(0, K0) seen in the frame ell0 = sqrt(diag K0), i.e. N(0, C0) in z with
C0 the correlation matrix of K0, L2-projected onto the space (the projection keeps the
mass, mean and covariance exactly, since z^mn with m + n <= 2 lie in the space), then
normalised to mass 1.
"""

from __future__ import annotations

import numpy as np

from fpsolver.kinetic.marginals import MarginalRule
from fpsolver.kinetic.operator import build_operator
from fpsolver.kinetic.quadrature import DensityQuadrature

__all__ = ["SiteDensities", "gaussian_projection"]


def _forms_degree(degree: int) -> int:
    """Quadrature degree of the operator's forms: exact for cubic drifts on P``degree``."""
    return 3 + 2 * degree - 1


def gaussian_projection(V, cov: np.ndarray, mean=(0.0, 0.0)) -> np.ndarray:
    """Dofs of the L2 projection of the density N(mean, cov) onto V (owned + ghosts)."""
    import dolfinx_solver  # noqa: F401
    import ufl
    from dolfinx import fem
    from dolfinx.fem import petsc
    from petsc4py import PETSc

    z = ufl.SpatialCoordinate(V.mesh)
    P = np.linalg.inv(cov)
    norm = 1.0 / (2 * np.pi * np.sqrt(np.linalg.det(cov)))
    u0, u1 = z[0] - mean[0], z[1] - mean[1]
    dens = norm * ufl.exp(-0.5 * (P[0, 0] * u0**2 + 2 * P[0, 1] * u0 * u1 + P[1, 1] * u1**2))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    degree = V.element.basix_element.degree
    dx = ufl.dx(metadata={"quadrature_degree": 2 * degree + 8})
    M = petsc.assemble_matrix(fem.form(u * v * dx))
    M.assemble()
    b = petsc.assemble_vector(fem.form(dens * v * dx))
    b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    f = fem.Function(V)
    ksp = PETSc.KSP().create(V.mesh.comm)
    ksp.setOperators(M)
    ksp.setType("cg")
    ksp.getPC().setType("jacobi")
    ksp.setTolerances(rtol=1e-14, atol=1e-300, max_it=2000)
    ksp.solve(b, f.x.petsc_vec)
    f.x.scatter_forward()
    ksp.destroy()
    M.destroy()
    b.destroy()
    return f.x.array.copy()


class SiteDensities:
    """Densities q_j (in z) of the sites ``sites`` on the group communicator ``comm``.

    Args:
        comm: the group's communicator (its mesh lives there).
        sites: global indices of the sites this group advances.
        model: the model (F, S, ...).
        smesh: the state mesh in z (:class:`~fpsolver.kinetic.meshing.StateMesh`).
        degree: Lagrange degree.
        corr0: the initial covariance of z (2x2; identity when K0 is diagonal).
        mean0: the initial mean of z (0 in the kinetic limit; the OU check problem moves).
    """

    def __init__(self, comm, sites: np.ndarray, model, smesh, degree: int, corr0: np.ndarray,
                 mean0=(0.0, 0.0)):
        import dolfinx_solver  # noqa: F401
        from dolfinx import fem

        self.comm, self.sites, self.smesh = comm, np.asarray(sites), smesh
        self.V = fem.functionspace(smesh.mesh, ("Lagrange", degree))
        self.degree = degree
        self.operator = build_operator(self.V, model, _forms_degree(degree))
        self.quad = DensityQuadrature(self.V)
        self.marginals = MarginalRule(self.V)
        self.n_owned = self.V.dofmap.index_map.size_local
        q0 = gaussian_projection(self.V, np.asarray(corr0, float), mean0)
        self.q = np.tile(q0, (len(self.sites), 1))   # q^n (owned + ghosts), per site
        self.work = fem.Function(self.V)              # ghost updates of solutions

    @property
    def serial(self) -> bool:
        """Whether the group's communicator has one rank (no ghosts to update)."""
        return self.comm.size == 1

    def owned(self, X: np.ndarray) -> np.ndarray:
        """The owned dof columns of rows ``X`` (ghosts dropped)."""
        return X[:, :self.n_owned]

    def with_ghosts(self, owned: np.ndarray) -> np.ndarray:
        """Rows of owned values completed with their ghost values (collective)."""
        n = self.n_owned
        out = np.empty((len(owned), len(self.work.x.array)))
        if self.serial:
            out[:, :n] = owned
            return out
        for j in range(len(owned)):
            self.work.x.array[:n] = owned[j]
            self.work.x.scatter_forward()
            out[j] = self.work.x.array
        return out

    def point_weights(self, j: int) -> np.ndarray:
        """Point weights q_j(z_q) |det J| w_q of local site ``j`` (its mass per point)."""
        return self.quad.weights(self.q[j])

    def min_density(self) -> np.ndarray:
        """Smallest owned dof value of every site (inf on a rank without dofs)."""
        n = self.n_owned
        return self.q[:, :n].min(axis=1) if n else np.full(len(self.sites), np.inf)

    def max_density(self) -> np.ndarray:
        """Largest owned dof value of every site (-inf on a rank without dofs)."""
        n = self.n_owned
        return self.q[:, :n].max(axis=1) if n else np.full(len(self.sites), -np.inf)
