#!/bin/sh
# Check the Docker image's install steps without a Docker engine: copy the build context
# (tracked files, as .dockerignore leaves them) to a temp dir, run docker/install.sh there
# into a fresh temp venv, then smoke-test the installed CLI, a DOLFINx JIT compile (needs
# the C compiler the image installs) and a short Gaussian run.
# Usage: docker/check-install.sh          (exit 0 = the install works)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fpsolver-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

# The Dockerfile must install through docker/install.sh, or this check checks nothing.
grep -q '^RUN docker/install.sh$' "$root/docker/Dockerfile" || {
    echo "check-install: docker/Dockerfile does not 'RUN docker/install.sh'" >&2; exit 1; }
grep -q '^FROM python:3.12-slim' "$root/docker/Dockerfile" || {
    echo "check-install: docker/Dockerfile is not based on python:3.12-slim" >&2; exit 1; }

mkdir "$tmp/src"
if git -C "$root" rev-parse >/dev/null 2>&1; then
    (cd "$root" && git ls-files -z --cached --others --exclude-standard \
        | xargs -0 tar cf - 2>/dev/null) | tar xf - -C "$tmp/src"
else
    (cd "$root" && tar cf - --exclude=.venv --exclude='out*' --exclude=.git .) \
        | tar xf - -C "$tmp/src"
fi

echo "check-install: installing into $tmp/venv"
(cd "$tmp/src" && VENV="$tmp/venv" sh docker/install.sh)

cd "$tmp"
"$tmp/venv/bin/fpsolver" scenarios >/dev/null
"$tmp/venv/bin/fpsolver" gaussian tanh --set t_end=0.5 --out "$tmp/run" >/dev/null
"$tmp/venv/bin/fpsolver" plot "$tmp/run" >/dev/null
test -s "$tmp/run/figures/means_variances.png"
"$tmp/venv/bin/python" - <<'PY'
import dolfinx_solver  # noqa: F401  (before dolfinx: loads the bundled MPI)
import dolfinx, ufl
from dolfinx import fem, mesh
from mpi4py import MPI

msh = mesh.create_unit_square(MPI.COMM_SELF, 4, 4)
V = fem.functionspace(msh, ("Lagrange", 1))
u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
fem.form(ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx)  # JIT: needs the C compiler
print(f"check-install: DOLFINx {dolfinx.__version__} JIT ok")
PY
echo "check-install: ok"
