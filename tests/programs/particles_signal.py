"""Test program: `fpsolver particles ...` with a hook at the end of step FPSOLVER_TEST_STEP.

With FPSOLVER_TEST_SIGNAL (``SIGTERM`` or ``SIGINT``) it sends itself that signal
FPSOLVER_TEST_SIGNAL_COUNT times (default 1) -- a real signal through the real handler at
a known step. Without it, it prints ``in the loop`` on stdout (flushed) so a test can
signal it from outside. The simulator is untouched: the hook wraps the stepper's step.
"""

import os
import signal
import sys

import fpsolver.particles.run as run
from fpsolver.cli import main

STEP = int(os.environ.get("FPSOLVER_TEST_STEP", "1"))
SIGNAL = os.environ.get("FPSOLVER_TEST_SIGNAL")
COUNT = int(os.environ.get("FPSOLVER_TEST_SIGNAL_COUNT", "1"))


def hooked(Stepper):
    class Hooked(Stepper):
        steps_done = 0

        def step(self):
            super().step()
            self.steps_done += 1
            if self.steps_done != STEP:
                return
            if SIGNAL is None:
                print("in the loop", flush=True)
                return
            for _ in range(COUNT):
                os.kill(os.getpid(), signal.Signals[SIGNAL])
    return Hooked


run.NumbaStepper = hooked(run.NumbaStepper)
run.NumpyStepper = hooked(run.NumpyStepper)
sys.exit(main(sys.argv[1:]))
