"""Expectations under a finite-element density by quadrature (MODEL §2a needs <G>, <G'>).

For a density p_h on the owned cells of a mesh, every expectation is a sum over the
quadrature points y_q of the cells, <h> ~= sum_q h(y_q) p_h(y_q) |det J| w_q. The points,
the basis values and |det J| w_q are tabulated once; evaluating p_h at the points is one
small dense contraction per step. Since the gains G_ab depend on y_b only, the weights
are summed over points sharing the same coordinate y_b (few distinct values on the
structured box: ~cells x points per cell), so each Newton evaluation of <G_ab(vbar_b+y_b)>
costs a few thousand gain evaluations. The sums are partial (this rank's cells); the
caller reduces them over the group's ranks.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DensityQuadrature"]

MOMENT_DEGREE = 4  # raw moments E[z_e^m z_i^n], m + n <= 4: up to kurtosis and <F y>


def quadrature_degree(degree: int) -> int:
    """Quadrature degree for expectations under a P``degree`` density.

    Exact for z^4 q_h, and a few orders more for the smooth gains (tanh) whose expectations
    fix vbar.
    """
    return max(MOMENT_DEGREE + degree, 2 * degree + 4)


class DensityQuadrature:
    """Quadrature of a Lagrange density on the owned cells of its mesh.

    Args:
        V: the scalar Lagrange function space of the density.
        degree: quadrature degree (default :func:`quadrature_degree` of the space).
    """

    def __init__(self, V, degree: int | None = None):
        import basix

        from fpsolver.families import monomials

        if degree is None:
            degree = quadrature_degree(V.element.basix_element.degree)

        msh = V.mesh
        tdim = msh.topology.dim
        ncells = msh.topology.index_map(tdim).size_local
        ref_pts, ref_w = basix.make_quadrature(basix.CellType.triangle, degree)
        self.phi = V.element.basix_element.tabulate(0, ref_pts)[0, :, :, 0]  # (nq, ndof)
        self.cell_dofs = V.dofmap.list[:ncells]
        geo = msh.geometry.x[msh.geometry.dofmaps[0][:ncells]][:, :3, :2]  # vertices (c, 3, 2)
        x0 = geo[:, 0]
        J = np.stack([geo[:, 1] - x0, geo[:, 2] - x0], axis=2)  # (c, 2, 2): columns
        det = np.abs(J[:, 0, 0] * J[:, 1, 1] - J[:, 0, 1] * J[:, 1, 0])
        self.cell_sizes = np.sqrt(2 * det) if len(det) else np.zeros(0)  # leg of a right triangle
        self.points = (x0[:, None, :] + np.einsum("cij,qj->cqi", J, ref_pts)).reshape(-1, 2)
        self.dx = (det[:, None] * ref_w[None, :]).ravel()
        self.nq = len(ref_w)
        # every quantity below is linear in the dofs: precompute the maps once
        from scipy import sparse

        ncell, ndof = self.cell_dofs.shape
        nlocal = V.dofmap.index_map.size_local + V.dofmap.index_map.num_ghosts
        rows = np.repeat(np.arange(ncell * self.nq), ndof)
        cols = np.repeat(self.cell_dofs, self.nq, axis=0).ravel()
        vals = (np.tile(self.phi, (ncell, 1)) * self.dx[:, None]).ravel()
        Q = sparse.csr_matrix((vals, (rows, cols)), shape=(ncell * self.nq, nlocal))
        self.Q = Q  # point weights = Q @ p
        ye, yi = self.points[:, 0].copy(), self.points[:, 1].copy()
        self.monomials = monomials(MOMENT_DEGREE)
        mono = np.column_stack([ye**m * yi**n for m, n in self.monomials])
        self.C = np.ascontiguousarray((Q.T @ mono).T)  # (15, nlocal): raw moment sums = C p
        # distinct coordinates per population: marginal weights = P_b @ p
        self.axis_values, self.axis_index, self.P = [], [], []
        for b in range(2):
            vals, inv = np.unique(np.round(self.points[:, b], 12), return_inverse=True)
            self.axis_values.append(vals)
            self.axis_index.append(inv)
            A = sparse.csr_matrix((np.ones(len(inv)), (inv, np.arange(len(inv)))),
                                  shape=(len(vals), len(inv)))
            self.P.append((A @ Q).tocsr())

    def cell_size_min(self) -> float:
        """Smallest cell size on this rank (inf without cells)."""
        return float(self.cell_sizes.min()) if len(self.cell_sizes) else np.inf

    def weights(self, p: np.ndarray) -> np.ndarray:
        """p_h(y_q) |det J| w_q at every point, from the dof values ``p`` (local array)."""
        return self.Q @ p

    def marginal_weights(self, p: np.ndarray) -> list[np.ndarray]:
        """Point weights summed over points with equal y_b, for b = e, i (from dofs)."""
        return [P @ p for P in self.P]

    def moments(self, p: np.ndarray) -> np.ndarray:
        """Partial raw sums of z_e^m z_i^n p over this rank's cells (not normalised).

        For ``monomials(4)`` (first the mass), from the dofs ``p``.
        """
        return self.C @ p

    def functional(self, f: np.ndarray) -> np.ndarray:
        """The dof vector c with c . p = sum_q f(y_q) p_h(y_q) |det J| w_q."""
        return self.Q.T @ f

    def histogram(self, w: np.ndarray, edges: np.ndarray, b: int) -> np.ndarray:
        """Partial mass of the bins ``edges`` along y_b (points binned by coordinate)."""
        return np.histogram(self.points[:, b], bins=edges, weights=w)[0]
