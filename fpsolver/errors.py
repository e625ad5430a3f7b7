"""Exceptions raised by fpsolver, one per domain.

Each message names what went wrong (the field, step, time or site) and how to fix it.
"""

__all__ = ["FpsolverError", "ScenarioError", "BalanceError", "ConvergenceError", "MeshError"]


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
