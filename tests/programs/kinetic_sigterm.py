"""Test program: `fpsolver kinetic ...` that sends itself SIGTERM on rank 0.

After step FPSOLVER_TEST_SIGTERM_STEP (0: never).

A real signal through the real handler, at a chosen step: only rank 0 receives it, so the
ranks must agree (StopRequest) to stop at the same step. The solver is untouched: the
hook is the progress callback the CLI passes to run_kinetic.
"""

import os
import signal
import sys

import fpsolver.kinetic as kinetic
from fpsolver.cli import main

STOP = int(os.environ.get("FPSOLVER_TEST_SIGTERM_STEP", "0"))
_real = kinetic.run_kinetic


def run_kinetic(scenario, **kwargs):
    comm = kwargs["comm"]

    def progress(n, t, t_end):
        if n == STOP and comm.rank == 0:
            os.kill(os.getpid(), signal.SIGTERM)
    return _real(scenario, **{**kwargs, "progress": progress})


kinetic.run_kinetic = run_kinetic
sys.exit(main(sys.argv[1:]))
