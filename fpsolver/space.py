"""The space E of positions: sites, quadrature weights rho and distances (MODEL §1).

The balance integral over E (MODEL §2a) becomes a weighted sum over sites,
``integral f(x') rho(dx') ~= sum_k w_k f(x_k)`` with ``sum_k w_k = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fpsolver.errors import MeshError, ScenarioError
from fpsolver.scenario import Space

__all__ = ["Sites", "make_sites"]

TWO_PI = 2 * np.pi


@dataclass(frozen=True)
class Sites:
    """Sites of E.

    Attributes:
        kind: ``point``, ``ring``, ``torus`` or ``mesh``.
        points: coordinates, shape ``(count, dim)`` (angles in [0, 2 pi) on ring/torus).
        weights: quadrature weights of the normalised measure rho, shape ``(count,)``.
    """

    kind: str
    points: np.ndarray
    weights: np.ndarray

    @property
    def count(self) -> int:
        """Number of sites."""
        return len(self.weights)

    @property
    def periodic(self) -> bool:
        """Whether the coordinates are angles (ring, torus)."""
        return self.kind in ("ring", "torus")

    def displacement(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Displacement x - y, wrapped to [-pi, pi) on periodic spaces; last axis = dim."""
        d = x - y
        return (d + np.pi) % TWO_PI - np.pi if self.periodic else d

    def distances(self, rows=None) -> np.ndarray:
        """(Periodic) distances from the sites ``rows`` (default all) to every site.

        Shape ``(len(rows), count)``.
        """
        x = self.points if rows is None else self.points[np.asarray(rows, dtype=np.int64)]
        d = self.displacement(x[:, None, :], self.points[None, :, :])
        return np.sqrt((d**2).sum(axis=-1))

    def nearest(self, x: np.ndarray) -> np.ndarray:
        """Index of the site nearest to each position in ``x`` (shape ``(m, dim)``)."""
        if self.kind == "ring":
            B = self.count
            return np.rint(np.mod(x[:, 0], TWO_PI) / TWO_PI * B).astype(np.int64) % B
        if self.kind == "torus":
            m = int(round(np.sqrt(self.count)))
            ij = np.rint(np.mod(x, TWO_PI) / TWO_PI * m).astype(np.int64) % m
            return ij[:, 0] * m + ij[:, 1]
        if self.count == 1:
            return np.zeros(len(x), dtype=np.int64)
        from scipy.spatial import cKDTree
        return cKDTree(self.points).query(x)[1]


def _mesh_sites(path: str) -> Sites:
    import meshio

    from fpsolver.paths import check_input_file

    file = Path(path)
    if not file.exists():
        raise MeshError(f"space.mesh: file {file} not found -- give an existing mesh file")
    check_input_file(file, "space.mesh")  # a regular file below the size limit
    try:
        mesh = meshio.read(file)
    except (Exception, SystemExit) as exc:  # meshio raises many types, even SystemExit
        raise MeshError(f"space.mesh: cannot read {file}: {exc}") from exc
    tri = [c.data for c in mesh.cells if c.type == "triangle"]
    if not tri:
        raise MeshError(f"space.mesh: {file} has no triangles -- a 2-d triangle mesh is needed")
    cells = np.concatenate(tri)
    pts = mesh.points[:, :2]
    p0, p1, p2 = pts[cells[:, 0]], pts[cells[:, 1]], pts[cells[:, 2]]
    area = 0.5 * np.abs((p1[:, 0] - p0[:, 0]) * (p2[:, 1] - p0[:, 1])
                        - (p2[:, 0] - p0[:, 0]) * (p1[:, 1] - p0[:, 1]))
    used = np.unique(cells)
    lumped = np.zeros(len(pts))
    for c in range(3):  # lumped P1 mass: a third of each triangle to each vertex
        np.add.at(lumped, cells[:, c], area / 3)
    return Sites("mesh", pts[used], lumped[used] / lumped[used].sum())


def make_sites(space: Space) -> Sites:
    """Sites of the space described by ``space`` (see :class:`fpsolver.scenario.Space`)."""
    B = space.sites
    if space.kind == "point":
        return Sites("point", np.zeros((1, 1)), np.ones(1))
    if space.kind == "ring":
        return Sites("ring", (TWO_PI * np.arange(B) / B)[:, None], np.full(B, 1.0 / B))
    if space.kind == "torus":
        g = TWO_PI * np.arange(B) / B
        X, Y = np.meshgrid(g, g, indexing="ij")
        return Sites("torus", np.column_stack([X.ravel(), Y.ravel()]), np.full(B * B, 1 / B**2))
    if space.kind == "mesh":
        return _mesh_sites(space.mesh)
    raise ScenarioError("space.kind", f"unknown kind {space.kind}", "see Space")
