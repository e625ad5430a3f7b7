"""The factored implicit operator: one PETSc KSP per system, options prefix per solve.

The user's ``kinetic.petsc_options`` are merged over the defaults: direct LU, with
PETSc's own sparse LU (nested-dissection ordering) on one rank and MUMPS on several.
Measured on the state meshes here (5-10k dofs): PETSc's LU refactors in 7-13 ms and
solves one right-hand side in 0.4-0.7 ms, MUMPS in 8-18 ms and 0.9-1.6 ms (its many-
right-hand-side solve is on a par). Each KSP gets a unique options prefix so solves
never read each other's options.
Convergence is checked after every solve and a failure raises
:class:`~fpsolver.errors.ConvergenceError` naming the step and time.
"""

from __future__ import annotations

import itertools

from fpsolver.errors import ConvergenceError, ScenarioError

__all__ = ["LinearSolver", "DEFAULT_PETSC_OPTIONS"]

DEFAULT_PETSC_OPTIONS = {"ksp_type": "preonly", "pc_type": "lu",
                         "pc_factor_mat_solver_type": "mumps"}
SERIAL_LU = {"pc_factor_mat_solver_type": "petsc", "pc_factor_mat_ordering_type": "nd"}
_COUNTER = itertools.count()
_DIRECT = ("lu", "cholesky")


def _petsc_reason(exc) -> str:
    """The last line of a petsc4py error (PETSc's own message), else its text."""
    lines = [line.split("] ", 1)[-1] for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else f"error code {getattr(exc, 'ierr', '?')}"


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
        user = dict(petsc_options or {})
        defaults = dict(DEFAULT_PETSC_OPTIONS)
        if A.getComm().getSize() == 1:
            defaults.update(SERIAL_LU)
        if user.get("pc_type", "lu") != "lu":  # the LU package is a default for LU only
            defaults.pop("pc_factor_mat_solver_type")
            defaults.pop("pc_factor_mat_ordering_type", None)
        self.options = {**defaults, **user}
        if self.options["ksp_type"] == "preonly" and self.options["pc_type"] not in _DIRECT:
            raise ScenarioError(
                "kinetic.petsc_options", f"ksp_type 'preonly' applies pc_type "
                f"'{self.options['pc_type']}' once, which does not solve the system",
                "keep pc_type 'lu', or choose an iterative solver, e.g. "
                "{ksp_type = 'gmres', pc_type = 'ilu', ksp_rtol = 1e-12}")
        opts = PETSc.Options()
        for key, value in self.options.items():
            opts[self.prefix + key] = value
        self.ksp = PETSc.KSP().create(A.getComm())
        self.ksp.setOptionsPrefix(self.prefix)
        self.ksp.setOperators(A)
        try:
            self.ksp.setFromOptions()
        except PETSc.Error as exc:  # same options on every rank: all raise together
            raise ScenarioError("kinetic.petsc_options", f"PETSc rejected {petsc_options}: "
                                f"{_petsc_reason(exc)}", "use valid PETSc option names and "
                                "values (without the leading '-')") from exc
        finally:
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
        self._petsc(self.ksp.solve, b, x, where=where)
        self._check(where)

    def mat_solve(self, B, X, where: str = "") -> None:
        """Solve A X = B for dense matrices of right-hand sides (one factorisation)."""
        self._petsc(self.ksp.matSolve, B, X, where=where)
        self._check(where)

    def _petsc(self, call, *args, where: str) -> None:
        from petsc4py import PETSc

        try:
            call(*args)
        except PETSc.Error as exc:
            raise ConvergenceError(
                f"linear solve of the Fokker-Planck step failed{where}: PETSc: "
                f"{_petsc_reason(exc)} (options {self.options}) -- fix: check "
                "kinetic.petsc_options") from exc

    def destroy(self) -> None:
        """Free the PETSc KSP (and with it the factorisation)."""
        self.ksp.destroy()
