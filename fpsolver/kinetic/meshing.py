"""State-space meshes for the fluctuation density: box, disk, or a gmsh file (MODEL §2e).

The fluctuation ``y = (y_e, y_i)`` lives in R^2, truncated to a bounded domain with a
zero-flux boundary. ``box`` is the generated square [-L, L]^2 with ``cells`` cells per
side (crossed-free right triangles); ``disk`` is a gmsh disk of radius L refined toward
the origin, where the density has its mass; any other value is a ``.msh`` file read
with :mod:`dolfinx.io.gmsh`. Every mesh is created on the caller's communicator.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fpsolver.errors import MeshError

__all__ = ["StateMesh", "state_mesh", "make_disk_model", "grade", "node_spacing"]


@dataclass
class StateMesh:
    """A state-space mesh and the size of its truncation.

    Attributes:
        mesh: the dolfinx mesh (on the site group's communicator).
        kind: ``box``, ``disk`` or ``file``.
        radius: half width of the box / radius of the disk (largest |y_a| on the mesh).
    """

    mesh: object
    kind: str
    radius: float

    def boundary_distance(self, y: np.ndarray) -> np.ndarray:
        """Distance of points ``y`` (shape (m, 2)) to the outer boundary (approximate)."""
        if self.kind == "box":
            return self.radius - np.abs(y).max(axis=1)
        return self.radius - np.sqrt((y**2).sum(axis=1))


def make_disk_model(gmsh, radius: float, cells: int, *, refine: float = 3.0) -> None:
    """Build a gmsh model of the disk of ``radius``, finer by ``refine`` at the origin.

    The element size is ``2 radius / cells`` on the boundary and ``refine`` times smaller
    at the centre (linear in the distance), so the mesh resolves the peak of the density.
    """
    gmsh.model.add("disk")
    disk = gmsh.model.occ.addDisk(0.0, 0.0, 0.0, radius, radius)
    gmsh.model.occ.synchronize()
    gmsh.model.addPhysicalGroup(2, [disk], 1)
    h = 2.0 * radius / cells
    field = gmsh.model.mesh.field
    dist = field.add("MathEval")
    field.setString(dist, "F", f"{h / refine} + {h - h / refine} * Sqrt(x*x + y*y) / {radius}")
    field.setAsBackgroundMesh(dist)
    gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 0)
    gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 0)
    gmsh.option.setNumber("Mesh.MeshSizeExtendFromBoundary", 0)
    gmsh.model.mesh.generate(2)


def _from_gmsh_model(comm, build) -> object:
    import gmsh
    from dolfinx.io import gmsh as gmshio

    initialised = gmsh.isInitialized()
    if not initialised:
        gmsh.initialize(interruptible=False)
    gmsh.option.setNumber("General.Terminal", 0)
    try:
        if comm.rank == 0:
            build(gmsh)
        return gmshio.model_to_mesh(gmsh.model, comm, 0, gdim=2).mesh
    finally:
        if comm.rank == 0:
            gmsh.model.remove()
        if not initialised:
            gmsh.finalize()


def grade(s: np.ndarray, half_width: float, grading: float) -> np.ndarray:
    """The box's coordinate map s in [-1, 1] -> y = L sinh(a s) / sinh(a) (a = 0: L s)."""
    if not grading:
        return half_width * s
    return half_width * np.sinh(grading * s) / np.sinh(grading)


def node_spacing(smesh: StateMesh, cells, grading: float, degree: int, X: np.ndarray,
                 min_cell: float) -> np.ndarray:
    """Node spacing along each axis at points X (m, 2) of a P``degree`` mesh, (m, 2).

    Box: from the (graded) grid of ``cells`` per axis; otherwise ``min_cell / degree``.
    """
    p = degree
    if smesh.kind != "box":
        return np.full_like(X, min_cell / p)
    W = smesh.radius
    out = np.empty_like(X)
    for g in range(2):
        ds = 2.0 / cells[g]
        if grading:
            a = grading
            s = np.arcsinh(X[:, g] / W * np.sinh(a)) / a
            out[:, g] = W * a * np.cosh(a * s) / np.sinh(a) * ds / p
        else:
            out[:, g] = W * ds / p
    return out


def state_mesh(comm, domain: str, half_width: float, cells: int,
               grading: float = 0.0) -> StateMesh:
    """The state-space mesh of ``kinetic.domain`` on ``comm``.

    ``cells``: cells per side, or (along z_e, along z_i) for the box. ``grading`` a > 0
    maps the box's uniform grid per axis by :func:`grade`, so cells are
    ``a / sinh(a)`` times smaller at the origin, where the density has its mass, and the
    box can be wide enough for the tails at no extra cost (the map is affine per cell, so
    the cells stay straight-sided triangles in rows of equal y_e and y_i).

    Raises:
        MeshError: the file is missing, unreadable or not a 2-d triangle mesh.
    """
    import dolfinx_solver  # noqa: F401  (must precede dolfinx)
    from dolfinx import mesh as dmesh

    nx, ny = (cells, cells) if np.ndim(cells) == 0 else (int(cells[0]), int(cells[1]))
    if domain == "box":
        msh = dmesh.create_rectangle(
            comm, [np.array([-half_width, -half_width]), np.array([half_width, half_width])],
            [nx, ny], dmesh.CellType.triangle, diagonal=dmesh.DiagonalType.right)
        if grading:
            x = msh.geometry.x
            x[:, :2] = grade(x[:, :2] / half_width, half_width, grading)
        return StateMesh(msh, "box", half_width)
    if domain == "disk":
        msh = _from_gmsh_model(comm, lambda g: make_disk_model(g, half_width, max(nx, ny)))
        return StateMesh(msh, "disk", half_width)
    path = Path(domain)
    if not path.is_file():
        raise MeshError(f"kinetic.domain: mesh file {path} not found -- fix: use 'box', "
                        "'disk' or the path of a .msh file (see meshes/make_meshes.py)")
    from fpsolver.meshcheck import check_mesh_file
    from fpsolver.runtime.parallel import run_shared
    run_shared(comm, lambda: comm.rank == 0 and check_mesh_file(  # 2-d, around the origin
        path, field="kinetic.domain", contains_origin=True))
    from dolfinx.io import gmsh as gmshio
    try:
        msh = gmshio.read_from_msh(str(path), comm, 0, gdim=2).mesh
    except Exception as exc:  # noqa: BLE001 - any reader failure is a mesh problem
        raise MeshError(f"kinetic.domain: cannot read {path} as a gmsh mesh: {exc}") from exc
    x = msh.geometry.x[:, :2]
    local = np.abs(x).max() if len(x) else 0.0
    radius_inf = comm.allreduce(local, op=_max())
    local_r = np.sqrt((x**2).sum(axis=1)).max() if len(x) else 0.0
    radius_2 = comm.allreduce(local_r, op=_max())
    # a square-ish mesh has corners at sqrt(2) times its half width
    kind = "box" if radius_2 > 1.2 * radius_inf else "disk"
    return StateMesh(msh, kind, radius_inf if kind == "box" else radius_2)


def _max():
    from mpi4py import MPI
    return MPI.MAX
