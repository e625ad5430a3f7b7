"""The factored implicit operator: one PETSc KSP per scheme, options prefix per solve.

The user's ``kinetic.petsc_options`` are merged over the defaults (direct LU with
MUMPS); each KSP gets a unique options prefix so solves never read each other's options.
Convergence is checked after every solve and a failure raises
:class:`~fpsolver.errors.ConvergenceError` naming the step and time.
"""

from __future__ import annotations

import itertools

from fpsolver.errors import ConvergenceError

__all__ = ["LinearSolver", "DEFAULT_PETSC_OPTIONS"]

DEFAULT_PETSC_OPTIONS = {"ksp_type": "preonly", "pc_type": "lu",
                         "pc_factor_mat_solver_type": "mumps"}
_COUNTER = itertools.count()


class LinearSolver:
    """A KSP for ``A x = b`` on ``A``'s communicator, factored once per :meth:`set_operator`.

    Args:
        A: the PETSc matrix (kept; refactored when :meth:`operator_changed` is called).
        petsc_options: user options merged over :data:`DEFAULT_PETSC_OPTIONS`.
        name: readable part of the options prefix.
    """

    def __init__(self, A, petsc_options: dict | None = None, name: str = "fp"):
        from petsc4py import PETSc

        self.prefix = f"fpsolver_kinetic_{name}_{next(_COUNTER)}_"
        self.options = {**DEFAULT_PETSC_OPTIONS, **(petsc_options or {})}
        opts = PETSc.Options()
        for key, value in self.options.items():
            opts[self.prefix + key] = value
        self.ksp = PETSc.KSP().create(A.getComm())
        self.ksp.setOptionsPrefix(self.prefix)
        self.ksp.setOperators(A)
        self.ksp.setFromOptions()
        for key in self.options:
            opts.delValue(self.prefix + key)
        self.A = A
        self.direct = self.options["ksp_type"] == "preonly"

    def operator_changed(self) -> None:
        """The values of A changed (same pattern): refactor at the next solve."""
        self.ksp.setOperators(self.A)

    def _check(self, where: str) -> None:
        reason = self.ksp.getConvergedReason()
        if reason <= 0:
            raise ConvergenceError(
                f"linear solve of the Fokker-Planck step failed{where} (PETSc reason "
                f"{reason}, {self.ksp.getIterationNumber()} iterations, options "
                f"{self.options}) -- fix: reduce kinetic.dt or change kinetic.petsc_options")

    def solve(self, b, x, where: str = "") -> None:
        """Solve A x = b (PETSc Vecs); raises ConvergenceError on failure."""
        self.ksp.solve(b, x)
        self._check(where)

    def mat_solve(self, B, X, where: str = "") -> None:
        """Solve A X = B for dense matrices of right-hand sides (one factorisation)."""
        self.ksp.matSolve(B, X)
        self._check(where)

    def destroy(self) -> None:
        self.ksp.destroy()
