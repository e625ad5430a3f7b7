"""Test program: `fpsolver kinetic` whose solver fails on one rank (FPSOLVER_FAIL_ON_RANK).

The real solver is replaced by a stand-in (no numerics touched): the failing rank raises
while the others wait in a collective, as a rank-local read or solve failing would.
FPSOLVER_FAIL_KIND: ``fpsolver`` (an FpsolverError), ``python`` (a bare ZeroDivisionError)
or ``shared`` (the failure is shared with run_shared, so every rank raises and exits 2).
"""

import os
import sys

import fpsolver.kinetic
from fpsolver.cli import main
from fpsolver.errors import MeshError
from fpsolver.runtime import run_shared

FAIL_RANK = int(os.environ["FPSOLVER_FAIL_ON_RANK"])
KIND = os.environ.get("FPSOLVER_FAIL_KIND", "fpsolver")


def run_kinetic(scenario, comm=None, **kwargs):
    def local():
        if comm.rank == FAIL_RANK:
            if KIND == "python":
                return 1 / 0
            raise MeshError(f"kinetic.domain: test failure on rank {comm.rank}")
    if KIND == "shared":
        run_shared(comm, local)
    else:
        local()
    comm.Barrier()  # the other ranks would hang here without the guard
    raise AssertionError("not reached")


fpsolver.kinetic.run_kinetic = run_kinetic  # the CLI imports it at call time
sys.exit(main(sys.argv[1:]))
