"""The kinetic limit's own dynamics: stationary states, their spectra and branches."""

from fpsolver.steady.newton import SteadyState, solve_steady

__all__ = ["SteadyState", "solve_steady"]
