"""The balance current and the first-order finite-n offset (MODEL §2c).

The O(1) input that the balanced term delivers is the balance current

    lambda_a(x, t) = d vbar_a(x, t)/dt - <F_a(vbar(x, t) + .)>_x     (voltage / time).

At finite n the network sits off the balance manifold, Phi(vbar_n) ~= lambda / sqrt(n),
so to first order, along the range U of the balanced input (the constraint fixes vbar
only there, :mod:`fpsolver.balance`),

    vbar_n - vbar = U (U^T DPhi U)^{-1} U^T lambda / sqrt(n)          (voltage).

Every solver takes lambda and the offset from here: the Gaussian reduction (d vbar/dt
on its recording grid, :func:`grid_derivative`), the kinetic solver (backward
differences of its steps, :func:`backward_derivative`) and the stability report.
Arrays of means are ordered ``(..., sites, population)``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fpsolver.balance import SINGULAR_COND, BalanceConstraint

__all__ = ["balance_current", "backward_derivative", "grid_derivative", "offset"]


def balance_current(dvdt: np.ndarray, mean_F: np.ndarray) -> np.ndarray:
    """Balance current lambda = d vbar/dt - <F(vbar + .)>; shapes (..., sites, 2)."""
    return dvdt - mean_F


def backward_derivative(history: Sequence[np.ndarray], dt) -> np.ndarray:
    """Backward difference d vbar/dt at the last of ``history`` (oldest first).

    Of the highest order the history allows, at most 2. ``dt``: the step, or the last two
    steps (h_1, h_2) when they differ:

    - two entries: (v_1 - v_0) / h_2 (first order);
    - three or more: variable-step BDF2 on the last three, w = h_2 / h_1:
      ((1 + 2w)/(1 + w) v_2 - (1 + w) v_1 + w^2/(1 + w) v_0) / h_2 (second order;
      (3 v_2 - 4 v_1 + v_0) / (2 h) for equal steps).
    """
    h1, h2 = (float(dt), float(dt)) if np.ndim(dt) == 0 else map(float, dt)
    if len(history) < 2:
        raise ValueError("backward_derivative needs at least two values of vbar")
    if len(history) == 2:
        return (history[1] - history[0]) / h2
    older, prev, new = history[-3:]
    w = h2 / h1
    return ((1 + 2 * w) / (1 + w) * new - (1 + w) * prev + w * w / (1 + w) * older) / h2


def grid_derivative(vbar: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Second-order d vbar/dt on a time grid ``t`` (axis 0 of ``vbar``).

    Central differences inside, one-sided at the ends; zero with fewer than three times.
    """
    if len(t) <= 2:
        return np.zeros_like(vbar)
    return np.gradient(vbar, t, axis=0, edge_order=2)


def offset(constraint: BalanceConstraint, gp: np.ndarray, lam: np.ndarray,
           n: int) -> np.ndarray | None:
    """vbar_n - vbar = U (U^T DPhi U)^{-1} U^T lambda / sqrt(n) at every site, (sites, 2).

    Args:
        constraint: the balance constraint of the model (gives U and DPhi).
        gp: <G_ab'(vbar_b + y_b)> at the balanced state, shape (2, 2, sites).
        lam: the balance current, shape (sites, 2).
        n: the number of pairs.

    Returns:
        The offset, or None when U^T DPhi U is singular (condition number above
        :data:`~fpsolver.balance.SINGULAR_COND`: no isolated balanced state).
    """
    Jr = constraint.reduced_jacobian(gp)
    if not np.linalg.cond(Jr) < SINGULAR_COND:
        return None
    U = constraint.U
    delta = U @ np.linalg.solve(Jr, U.T @ lam.T.ravel()) / np.sqrt(n)
    return delta.reshape(2, -1).T
