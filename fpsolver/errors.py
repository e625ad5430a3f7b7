"""Exceptions raised by fpsolver, one per domain, all in this module.

Each message names what went wrong (the field, step, time or site) and how to fix it.
The runtime modules re-export the ones they raise (``fpsolver.runtime.NumericalError``
is :class:`NumericalError`), so either import works.
"""

__all__ = ["FpsolverError", "ScenarioError", "BalanceError", "ConvergenceError", "MeshError",
           "NumericalError", "CheckpointError", "Interrupted", "RemoteError", "PreflightError",
           "RunFolderError"]


class FpsolverError(Exception):
    """Base class of every error fpsolver raises on purpose."""


class ScenarioError(FpsolverError, ValueError):
    """A scenario (TOML file, ``--set`` override or Python object) is invalid.

    Args:
        field: dotted path of the offending field, e.g. ``populations.e.tau``.
        problem: what is wrong with it.
        fix: how to repair it.
    """

    def __init__(self, field: str, problem: str, fix: str = ""):
        self.field = field
        message = f"scenario field '{field}': {problem}"
        if fix:
            message += f" -- fix: {fix}"
        super().__init__(message)


class BalanceError(FpsolverError, RuntimeError):
    """The balance constraint (MODEL §2a) has no solution or a singular Jacobian."""


class ConvergenceError(FpsolverError, RuntimeError):
    """A linear or nonlinear solve did not converge."""


class MeshError(FpsolverError, ValueError):
    """A state-space or physical-space mesh is missing or unusable."""


class NumericalError(FpsolverError, ArithmeticError):
    """The numerical state became invalid (NaN, Inf, negative mass).

    Attributes:
        step, time, site, quantity: where it happened (site may be None).
    """

    def __init__(self, problem: str, *, step: int, time: float, site=None,
                 quantity: str = "", saved=None, fix: str = ""):
        self.problem, self.step, self.time, self.site, self.quantity, self.saved = (
            problem, step, time, site, quantity, saved)
        self.fix = fix or ("reduce the time step (kinetic.dt / dt), refine the mesh, or "
                           "check the scenario with `fpsolver stability`")
        where = f" at site {site}" if site is not None else ""
        message = (f"{problem} in {quantity}{where} at step {step} (t = {time:.6g})")
        if saved:
            message += f"; the last good state is saved in {saved}"
        message += f" -- fix: {self.fix}"
        super().__init__(message)


class CheckpointError(FpsolverError, ValueError):
    """A checkpoint is missing, incomplete or does not match the run resuming from it."""


class Interrupted(FpsolverError, RuntimeError):
    """A run stopped on request (SIGTERM/SIGINT) after saving what it could.

    Attributes:
        step: last completed step.
        time: its time.
        checkpoint: directory of the checkpoint written, or None.
        signal_name: ``SIGTERM`` or ``SIGINT``.
        result: the partial result (a ``RunResult`` holding the records reached) of a
            solver that keeps one instead of a checkpoint (particles), or None.
    """

    def __init__(self, step: int, time: float, checkpoint, signal_name: str = "a signal",
                 command: str = "fpsolver kinetic SCENARIO", result=None):
        self.step, self.time, self.checkpoint = step, time, checkpoint
        self.signal_name, self.result = signal_name, result
        if checkpoint:
            where = (f"; checkpoint written to {checkpoint} -- resume with "
                     f"`{command} --resume {checkpoint}`")
        elif result is not None:
            where = f"; its .result holds the records up to t = {result.t[-1]:.6g}"
        else:
            where = " (no checkpoint directory: nothing saved)"
        super().__init__(f"interrupted by {signal_name} after step {step} (t = {time:.6g})"
                         + where)


class RemoteError(FpsolverError, RuntimeError):
    """Stands for a failure on another rank whose exception type could not be rebuilt."""


class PreflightError(FpsolverError, MemoryError):
    """A run refused before its work: too large for the machine, or too long."""


class RunFolderError(FpsolverError, OSError):
    """An output folder cannot take this run, or does not hold one complete run."""
