#!/bin/sh
# Smoke test of an installed fpsolver, run in the image at build time (docker/Dockerfile)
# and by docker/check-install.sh on a fresh venv: the CLI, a Gaussian run and its plot, a
# DOLFINx JIT compile (needs the C compiler) and a kinetic run on the `disk` state domain,
# whose mesh comes from gmsh (needs the X/GL libraries libgmsh links). 24 cells: on 8 the
# cell Peclet number is ~95 and the solver stops, rightly, on a negative density.
# Usage: docker/smoke.sh VENV          (exit 0 = the install works)
set -eu
venv=$(cd "$1" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fpsolver-smoke.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
cd "$tmp"

"$venv/bin/fpsolver" scenarios >/dev/null
"$venv/bin/fpsolver" gaussian tanh --set t_end=0.5 --out "$tmp/run" >/dev/null
"$venv/bin/fpsolver" plot "$tmp/run" >/dev/null
test -s "$tmp/run/figures/means_variances.png"
"$venv/bin/python" - <<'PY'
import dolfinx_solver  # noqa: F401  (before dolfinx: loads the bundled MPI)
import dolfinx, ufl
from dolfinx import fem, mesh
from mpi4py import MPI

msh = mesh.create_unit_square(MPI.COMM_SELF, 4, 4)
V = fem.functionspace(msh, ("Lagrange", 1))
u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
fem.form(ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx)  # JIT: needs the C compiler
print(f"smoke: DOLFINx {dolfinx.__version__} JIT ok")
PY
# the disk state domain: gmsh meshes it (import gmsh loads libgmsh and its X/GL libraries)
"$venv/bin/fpsolver" kinetic bistable --set kinetic.domain=disk --set t_end=0.02 \
    --set kinetic.dt=0.01 --set kinetic.cells=24 --set kinetic.degree=1 --quiet \
    --out "$tmp/disk" >/dev/null
grep -q '^domain = "disk"' "$tmp/disk/scenario.toml"
test -s "$tmp/disk/observables.nc"
echo "smoke: disk domain (gmsh) ok"
