"""Exact marginals of a finite-element density, for expectations of functions of one axis.

The gains G_ab depend on y_b = ell_b z_b only, so <G_ab(vbar_b + ell_b z_b)> is a 1-d
integral against the marginal m_b(z_b) = integral q(z) dz_other. For a Lagrange density
of degree p on straight triangles, m_b is a polynomial of degree <= p + 1 between
consecutive vertex coordinates along axis b (the line z_b = s crosses each cell on a
segment whose length is linear in s). Each such interval carries p + 2 Gauss-Legendre
nodes; the marginal's values there are a fixed sparse linear map of the dofs, built once
by integrating the basis along the crossing segments (exact). An expectation is then
sum over intervals of a Gauss-Legendre rule of any size applied to G times the
interpolated marginal: the rule is refined with ell (a wide density seen in z makes
G(vbar + ell z) sharp), not with the mesh, so <G> stays accurate for any noise level.
The sums are partial (this rank's cells) and linear in the dofs.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MarginalRule"]


def _legendre(n: int):
    x, w = np.polynomial.legendre.leggauss(n)
    return 0.5 * (x + 1.0), 0.5 * w  # on [0, 1]


def _lagrange_matrix(nodes: np.ndarray, x: np.ndarray) -> np.ndarray:
    """L[i, k] = l_k(x_i): values at x of the Lagrange basis on ``nodes``."""
    L = np.ones((len(x), len(nodes)))
    for k, xk in enumerate(nodes):
        for m, xm in enumerate(nodes):
            if m != k:
                L[:, k] *= (x - xm) / (xk - xm)
    return L


class MarginalRule:
    """Marginals along both axes of densities on the owned cells of V's mesh.

    Args:
        V: the Lagrange space of the density (straight triangles).

    The interval breakpoints are the vertex coordinates of the whole mesh (gathered over
    its communicator), so the partial sums of all ranks line up.
    """

    def __init__(self, V):
        from scipy import sparse

        msh = V.mesh
        tdim = msh.topology.dim
        ncells = msh.topology.index_map(tdim).size_local
        element = V.element.basix_element
        p = element.degree
        self.npts = p + 2                       # nodes per interval (exact for deg p + 1)
        self._seg = _legendre(p + 1)            # segment rule, exact for degree p along it
        cell_dofs = V.dofmap.list[:ncells]
        geo = msh.geometry.x[msh.geometry.dofmaps[0][:ncells]][:, :3, :2]
        nlocal = V.dofmap.index_map.size_local + V.dofmap.index_map.num_ghosts
        xs = msh.geometry.x[:, :2]
        self.edges, self.T = [], []
        for b in range(2):
            c = 1 - b
            local = np.unique(np.round(xs[:, b], 12))
            edges = np.unique(np.concatenate(msh.comm.allgather(local)))
            self.edges.append(edges)
            ref_nodes, _ = _legendre(self.npts)
            lo, hi = edges[:-1], edges[1:]
            nodes = (lo[:, None] + (hi - lo)[:, None] * ref_nodes[None, :]).ravel()
            if ncells == 0:
                self.T.append(sparse.csr_matrix((len(nodes), nlocal)))
                continue
            self.T.append(self._line_integrals(element, geo, cell_dofs, nodes, b, c, nlocal))
        self._cache = {}

    def _line_integrals(self, element, geo, cell_dofs, nodes, b: int, c: int, nlocal: int):
        """Sparse map dofs -> integral of q along the lines z_b = node (all at once)."""
        from scipy import sparse

        cmin, cmax = geo[:, :, b].min(axis=1), geo[:, :, b].max(axis=1)
        order = np.argsort(nodes)
        sorted_nodes = nodes[order]
        i0 = np.searchsorted(sorted_nodes, cmin, side="right")
        i1 = np.searchsorted(sorted_nodes, cmax, side="left")
        counts = np.clip(i1 - i0, 0, None)
        cell = np.repeat(np.arange(len(geo)), counts)
        if not len(cell):
            return sparse.csr_matrix((len(nodes), nlocal))
        start = np.repeat(i0, counts)
        offset = np.arange(len(cell)) - np.repeat(np.cumsum(counts) - counts, counts)
        node = order[start + offset]
        s = nodes[node]
        tri = geo[cell]                                   # (pairs, 3, 2)
        lo = np.full(len(cell), np.inf)
        hi = np.full(len(cell), -np.inf)
        for i, j in ((0, 1), (1, 2), (2, 0)):
            a, e = tri[:, i], tri[:, j]
            d = e[:, b] - a[:, b]
            with np.errstate(divide="ignore", invalid="ignore"):
                t = (s - a[:, b]) / d
            inside = (d != 0) & (t >= -1e-14) & (t <= 1 + 1e-14)
            w = a[:, c] + t * (e[:, c] - a[:, c])
            lo = np.where(inside, np.minimum(lo, w), lo)
            hi = np.where(inside, np.maximum(hi, w), hi)
        ok = hi > lo
        cell, node, s, lo, hi, tri = cell[ok], node[ok], s[ok], lo[ok], hi[ok], tri[ok]
        sx, sw = self._seg
        pts = np.empty((len(cell), len(sx), 2))
        pts[..., b] = s[:, None]
        pts[..., c] = lo[:, None] + (hi - lo)[:, None] * sx[None, :]
        x0 = tri[:, 0]
        J = np.stack([tri[:, 1] - x0, tri[:, 2] - x0], axis=2)  # columns
        rel = pts - x0[:, None, :]
        ref = np.linalg.solve(J[:, None, :, :], rel[..., None])[..., 0]  # (pairs, seg, 2)
        basis = element.tabulate(0, ref.reshape(-1, 2))[0, :, :, 0]
        basis = basis.reshape(len(cell), len(sx), -1)
        weights = (hi - lo)[:, None] * sw[None, :]
        contrib = (basis * weights[..., None]).sum(axis=1)       # (pairs, ndof)
        ndof = contrib.shape[1]
        return sparse.csr_matrix((contrib.ravel(), (np.repeat(node, ndof),
                                                    cell_dofs[cell].ravel())),
                                 shape=(len(nodes), nlocal))

    def rule(self, b: int, points: int):
        """Abscissae z (intervals * points,) and the map from node values to weights.

        Returns (z, W) with W (intervals * points, intervals * npts) sparse block-diagonal:
        weights = W @ (T_b q) gives sum_i weights_i h(z_i) ~= integral h m_b.
        """
        key = (b, points)
        if key not in self._cache:
            from scipy import sparse

            edges = self.edges[b]
            lo, hi = edges[:-1], edges[1:]
            width = hi - lo
            ref_nodes, _ = _legendre(self.npts)
            x, w = _legendre(points)
            L = _lagrange_matrix(ref_nodes, x)  # (points, npts)
            z = (lo[:, None] + width[:, None] * x[None, :]).ravel()
            blocks = [sparse.csr_matrix(L * (wd * w)[:, None]) for wd in width]
            W = sparse.block_diag(blocks, format="csr") if blocks else sparse.csr_matrix((0, 0))
            self._cache[key] = (z, W)
        return self._cache[key]

    def weights(self, Q: np.ndarray, b: int, points: int) -> np.ndarray:
        """Partial weights (rows of Q, intervals * points) of the axis-b marginals."""
        z, W = self.rule(b, points)
        node_values = self.T[b] @ Q.T          # (intervals * npts, sites)
        return np.ascontiguousarray((W @ node_values).T)

    def node_values(self, Q: np.ndarray, b: int) -> np.ndarray:
        """Partial values of the axis-b marginals at the interval nodes, (rows, nodes)."""
        return np.ascontiguousarray((self.T[b] @ Q.T).T)

    def evaluate(self, values: np.ndarray, b: int, z: np.ndarray) -> np.ndarray:
        """The marginals (rows of node ``values``) at points z; 0 outside the mesh.

        Exact: the polynomial of each interval through its nodes.
        """
        edges = self.edges[b]
        idx = np.clip(np.searchsorted(edges, z, side="right") - 1, 0, len(edges) - 2)
        lo, width = edges[idx], np.diff(edges)[idx]
        ref_nodes, _ = _legendre(self.npts)
        out = np.zeros((len(values), len(z)))
        for k in range(len(z)):
            L = _lagrange_matrix(ref_nodes, np.array([(z[k] - lo[k]) / width[k]]))[0]
            out[:, k] = values[:, idx[k] * self.npts:(idx[k] + 1) * self.npts] @ L
        inside = (z >= edges[0]) & (z <= edges[-1])
        return out * inside[None, :]

    def max_width(self, b: int) -> float:
        """Widest interval of the mesh along axis ``b`` (in z; 0 without intervals)."""
        e = self.edges[b]
        return float(np.diff(e).max()) if len(e) > 1 else 0.0
