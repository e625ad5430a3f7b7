"""Checks of mesh files and meshes before a solver uses them, with clear :class:`MeshError`.

- :func:`check_mesh_file`: a file read with meshio (rank-local; wrap it in
  :func:`fpsolver.runtime.run_shared` under MPI): it exists, is readable, has 2-d cells of
  positive area, lies in a plane, and, for the state-space domain ``kinetic.domain``,
  contains the origin (the fluctuations y are centred at 0) with some room around it.
- :func:`check_state_domain`: the same origin test on a distributed DOLFINx mesh;
  collective over ``msh.comm``, so every rank raises together.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fpsolver.errors import MeshError

__all__ = ["check_mesh_file", "check_state_domain", "MeshSummary"]

_CELLS_2D = {"triangle": 3, "triangle6": 3, "quad": 4, "quad8": 4, "quad9": 4}


class MeshSummary(dict):
    """What :func:`check_mesh_file` found.

    Keys ``points``, ``cells``, ``cell_type``, ``bounds`` and ``area``.
    """


def _triangles(cell_type: str, data: np.ndarray) -> np.ndarray:
    corners = data[:, :_CELLS_2D[cell_type]]
    if corners.shape[1] == 4:  # split quads into two triangles
        return np.concatenate([corners[:, [0, 1, 2]], corners[:, [0, 2, 3]]])
    return corners


def _contains(points: np.ndarray, tri: np.ndarray, x: np.ndarray, tol: float) -> bool:
    p0, p1, p2 = points[tri[:, 0]], points[tri[:, 1]], points[tri[:, 2]]
    d = ((p1[:, 1] - p2[:, 1]) * (p0[:, 0] - p2[:, 0])
         + (p2[:, 0] - p1[:, 0]) * (p0[:, 1] - p2[:, 1]))
    ok = np.abs(d) > 0
    a = ((p1[:, 1] - p2[:, 1]) * (x[0] - p2[:, 0]) + (p2[:, 0] - p1[:, 0]) * (x[1] - p2[:, 1]))
    b = ((p2[:, 1] - p0[:, 1]) * (x[0] - p2[:, 0]) + (p0[:, 0] - p2[:, 0]) * (x[1] - p2[:, 1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        a, b = a[ok] / d[ok], b[ok] / d[ok]
    c = 1 - a - b
    return bool(np.any((a >= -tol) & (b >= -tol) & (c >= -tol)))


def check_mesh_file(path, *, field: str, contains_origin: bool = False,
                    margin: float = 0.0) -> MeshSummary:
    """Read ``path`` with meshio and check it is a usable 2-d mesh; rank-local.

    Args:
        path: the mesh file (any meshio format: .msh, .xdmf, .vtu, ...).
        field: the scenario field naming it, for messages (``kinetic.domain``).
        contains_origin: require the point (0, 0) inside the mesh (state-space domains).
        margin: require the disk of this radius around the origin inside the bounding box.

    Raises:
        MeshError: naming the field, the file and the fix.
    """
    from fpsolver.paths import check_input_file

    file = Path(path)
    if file.exists():
        check_input_file(file, field)  # a regular file below the size limit
    if not file.exists():
        raise MeshError(f"{field}: mesh file {file} not found -- give an existing mesh file "
                        "(or 'box' / 'disk' for a generated state domain)")
    try:
        import meshio
        mesh = meshio.read(file)
    except (Exception, SystemExit) as exc:  # meshio raises many types, even SystemExit
        raise MeshError(f"{field}: cannot read {file} as a mesh: {type(exc).__name__}: "
                        f"{exc} -- give a .msh/.xdmf/.vtu file meshio can read") from exc
    points = np.asarray(mesh.points, dtype=float)
    if points.ndim != 2 or len(points) == 0:
        raise MeshError(f"{field}: {file} has no points -- the mesh is empty")
    if not np.isfinite(points).all():
        raise MeshError(f"{field}: {file} has non-finite point coordinates")
    if points.shape[1] > 2 and np.abs(points[:, 2:]).max() > 1e-12 * max(1.0, np.abs(points).max()):
        raise MeshError(f"{field}: {file} is not planar (points have z != 0) -- a 2-d mesh "
                        "is needed")
    blocks = [(c.type, np.asarray(c.data)) for c in mesh.cells if c.type in _CELLS_2D]
    if not blocks:
        found = sorted({c.type for c in mesh.cells}) or ["none"]
        raise MeshError(f"{field}: {file} has no 2-d cells (found {', '.join(found)}) -- "
                        "a 2-d triangle or quadrilateral mesh is needed")
    if len({t for t, _ in blocks}) > 1:
        raise MeshError(f"{field}: {file} mixes cell types {sorted({t for t, _ in blocks})} "
                        "-- use one cell type")
    cell_type = blocks[0][0]
    tri = np.concatenate([_triangles(t, d) for t, d in blocks])
    if tri.min() < 0 or tri.max() >= len(points):
        raise MeshError(f"{field}: {file} has cells referring to missing points")
    xy = points[:, :2]
    p0, p1, p2 = xy[tri[:, 0]], xy[tri[:, 1]], xy[tri[:, 2]]
    area = 0.5 * np.abs((p1[:, 0] - p0[:, 0]) * (p2[:, 1] - p0[:, 1])
                        - (p2[:, 0] - p0[:, 0]) * (p1[:, 1] - p0[:, 1]))
    scale = max(np.ptp(xy[:, 0]), np.ptp(xy[:, 1]), 1e-300)
    if (area <= 1e-14 * scale**2).any():
        k = int(np.argmin(area))
        raise MeshError(f"{field}: {file} has {int((area <= 1e-14 * scale**2).sum())} "
                        f"degenerate cell(s) of zero area (e.g. cell {k}) -- remesh")
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    if contains_origin:
        if not _contains(xy, tri, np.zeros(2), 1e-12):
            raise MeshError(f"{field}: the state domain {file} (x in [{lo[0]:g}, {hi[0]:g}], "
                            f"y in [{lo[1]:g}, {hi[1]:g}]) does not contain the origin; the "
                            "fluctuations y are centred at 0 -- centre the mesh on (0, 0)")
        room = min(-lo[0], hi[0], -lo[1], hi[1])
        if room < margin:
            raise MeshError(f"{field}: the state domain {file} reaches only {room:g} from the "
                            f"origin, less than {margin:g} -- use a larger domain")
    return MeshSummary(points=len(points), cells=len(blocks[0][1]) if len(blocks) == 1 else
                       sum(len(d) for _, d in blocks), cell_type=cell_type,
                       bounds=(lo.tolist(), hi.tolist()), area=float(area.sum()))


def check_state_domain(msh, *, field: str = "kinetic.domain") -> None:
    """Raise :class:`MeshError` on every rank if the DOLFINx mesh ``msh`` misses (0, 0).

    Collective over ``msh.comm``. Import ``dolfinx_solver`` before calling (as every
    DOLFINx user in fpsolver does).
    """
    from dolfinx import geometry
    from mpi4py import MPI

    tdim = msh.topology.dim
    tree = geometry.bb_tree(msh, tdim)
    origin = np.zeros((1, 3), dtype=msh.geometry.x.dtype)
    candidates = geometry.compute_collisions_points(tree, origin)
    found = geometry.compute_colliding_cells(msh, candidates, origin)
    here = int(len(found.links(0)) > 0)
    if not msh.comm.allreduce(here, op=MPI.MAX):
        x = msh.geometry.x
        lo = msh.comm.allreduce(x[:, :2].min(axis=0) if len(x) else np.full(2, np.inf),
                                op=MPI.MIN)
        hi = msh.comm.allreduce(x[:, :2].max(axis=0) if len(x) else np.full(2, -np.inf),
                                op=MPI.MAX)
        raise MeshError(f"{field}: the state domain (x in [{lo[0]:g}, {hi[0]:g}], y in "
                        f"[{lo[1]:g}, {hi[1]:g}]) does not contain the origin; the "
                        "fluctuations y are centred at 0 -- centre the mesh on (0, 0)")
