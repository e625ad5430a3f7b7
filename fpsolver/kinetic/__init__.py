"""The kinetic solver (MODEL §2): finite-element Fokker-Planck densities per site.

The sites are coupled through the balance constraint and run in parallel with MPI/PETSc.

- :func:`run_kinetic`: scenario -> :class:`~fpsolver.output.RunResult` (all ranks).
- :class:`KineticStepper`: the one-step map with ``state()`` / ``restore()``.
"""

from fpsolver.kinetic.driver import run_kinetic
from fpsolver.kinetic.stepper import KineticStepper

__all__ = ["run_kinetic", "KineticStepper"]
