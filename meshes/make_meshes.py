"""Write the state-space meshes shipped in meshes/: a box and a disk refined at the origin.

    .venv/bin/python meshes/make_meshes.py

Use one with ``kinetic.domain = "meshes/disk.msh"`` (the box/disk generated in memory by
``kinetic.domain = "box" | "disk"`` are the same constructions with the scenario's size).
"""

from pathlib import Path

import gmsh

from fpsolver.kinetic.meshing import make_disk_model

HERE = Path(__file__).parent
RADIUS, CELLS = 6.0, 32


def box(g, half_width: float, cells: int) -> None:
    g.model.add("box")
    s = g.model.occ.addRectangle(-half_width, -half_width, 0, 2 * half_width, 2 * half_width)
    g.model.occ.synchronize()
    g.model.addPhysicalGroup(2, [s], 1)
    g.option.setNumber("Mesh.MeshSizeMax", 2 * half_width / cells)
    g.model.mesh.generate(2)


def main() -> None:
    gmsh.initialize()
    gmsh.option.setNumber("General.Terminal", 0)
    for name, build in (("box", lambda g: box(g, RADIUS, CELLS)),
                        ("disk", lambda g: make_disk_model(g, RADIUS, CELLS))):
        build(gmsh)
        gmsh.option.setNumber("Mesh.MshFileVersion", 4.1)
        gmsh.write(str(HERE / f"{name}.msh"))
        gmsh.model.remove()
        print(f"wrote {HERE / f'{name}.msh'}")
    gmsh.finalize()


if __name__ == "__main__":
    main()
