"""Test program: `fpsolver kinetic ...` whose density on the last rank becomes NaN.

After step FPSOLVER_TEST_NAN_STEP (a stand-in for a blow-up; the solver itself is
untouched: the step method is wrapped here).
"""

import os
import sys

import numpy as np

from fpsolver.cli import main
from fpsolver.kinetic import stepper

STEP = int(os.environ["FPSOLVER_TEST_NAN_STEP"])
_real = stepper.KineticStepper.step


def step(self, dt=None):
    _real(self, dt)
    if self.step_index == STEP and self.comm.rank == self.comm.size - 1:
        self.dens.q[0, 3] = np.nan


stepper.KineticStepper.step = step
sys.exit(main(sys.argv[1:]))
