"""Bad meshes give a clear MeshError: missing, unreadable, 1-d/3-d, degenerate, off-origin."""

import meshio
import numpy as np
import pytest

from fpsolver.errors import MeshError
from fpsolver.meshcheck import check_mesh_file

SQUARE = np.array([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]])
TRIS = np.array([[0, 1, 2], [0, 2, 3]])


def _write(path, points, cells):
    meshio.write_points_cells(path, points, cells)
    return path


def _junk(path):
    path.write_text("not a mesh")
    return path


def test_good_state_mesh_passes(tmp_path):
    path = _write(tmp_path / "square.vtu", SQUARE, [("triangle", TRIS)])
    summary = check_mesh_file(path, field="kinetic.domain", contains_origin=True, margin=0.5)
    assert summary["cells"] == 2 and summary["area"] == pytest.approx(4.0)


@pytest.mark.parametrize("make, pattern", [
    (lambda d: d / "missing.msh", "not found"),
    (lambda d: _junk(d / "junk.msh"), "cannot read"),
    (lambda d: _write(d / "line.vtu", SQUARE, [("line", np.array([[0, 1], [1, 2]]))]),
     "no 2-d cells \\(found line\\)"),
    (lambda d: _write(d / "tet.vtu", np.vstack([SQUARE, [[0.0, 0.0, 1.0]]]),
                      [("tetra", np.array([[0, 1, 2, 4]]))]), "not planar"),
    (lambda d: _write(d / "shifted.vtu", SQUARE + [3.0, 0.0, 0.0], [("triangle", TRIS)]),
     "x in \\[2, 4\\].*does not contain the origin"),
    (lambda d: _write(d / "flat.vtu", SQUARE, [("triangle", np.array([[0, 1, 1]]))]),
     "degenerate"),
    (lambda d: _write(d / "small.vtu", SQUARE * 0.1, [("triangle", TRIS)]),
     "reaches only 0.1 from the origin"),
])
def test_bad_state_mesh_is_a_clear_error(tmp_path, make, pattern):
    with pytest.raises(MeshError, match="kinetic.domain: .*" + pattern):
        check_mesh_file(make(tmp_path), field="kinetic.domain", contains_origin=True,
                        margin=0.5)
