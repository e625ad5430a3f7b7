"""The balanced input sqrt(n) I_a(x_j) in low-rank form and its linearly implicit step.

Every kernel used here is written as

    J_ab(x, x') = sum_{r,q} Phi_r(x) K_ab[r, q] Psi_q(x'),      A_a(x) = sum_r Phi_r(x) A[a, r],

with two kinds of features:

- ``bins``: Phi_r = Psi_r = indicator of bin (site) r, K_ab = J_ab(x_r, x_q) the dense
  sites x sites matrix. Exact for ``grid`` positions (the pairs sit on the sites); for
  ``regular``/``iid`` positions with a non-cosine kernel it is the approximation
  J(x_j, x_k) ~ J(site(x_j), site(x_k)), A(x_j) ~ A(site(x_j)) (error O(site spacing)).
- ``cosine`` (ring): Phi = Psi = (1, cos x, sin x), K_ab = diag(c0, c1, c1), using
  c0 + c1 cos(x - x') = c0 + c1 (cos x cos x' + sin x sin x'): exact for any positions.

Then I_a(x_j) = sum_r Phi_r(x_j) [A[a, r] + sum_b s_b sum_q K_ab[r, q] m_ab[q]] with the
feature sums m_ab[q] = (1/n) sum_k Psi_q(x_k) G_ab(v_b^k).

Linearly implicit Euler-Maruyama. With e1 = dt F(v) + S(v) dW (explicit part) the step
v_new = v + e1 + dt sqrt(n) I(v_new), linearised as I(v_new) ~ I(v) + dI/dv (v_new - v),
gives v_new - v = e1 + sum_r Phi_r(x_j) Y[a, r], where Y (2 x rank) solves

    Y[a, r] = h (A[a, r] + sum_b s_b sum_q K_ab[r, q] (m_ab[q] + u_ab[q]
                                                       + sum_r' T_ab[q, r'] Y[b, r'])),

h = dt sqrt(n), u_ab[q] = (1/n) sum_k Psi_q G_ab'(v_b^k) e1_b^k and
T_ab[q, r'] = (1/n) sum_k Psi_q Phi_r' G_ab'(v_b^k). The stiff rate ~ sqrt(n) thus only
enters a (2 rank) x (2 rank) system: 2 x 2 for mean-field, 6 x 6 for the cosine ring,
2 sites x 2 sites for grid kernels. For large grid kernels (2 sites > ``DENSE_LIMIT``)
the matrix is factored only every ``refresh`` steps and reused in between (a W-method:
the Jacobian of the stiff term is slightly stale; the step stays linearly implicit and
first order, the input I(v) itself is always current). With ``implicit=False`` the
scheme is plain explicit Euler-Maruyama, Y = h (A + s K m), stable only if
dt sqrt(n) |eig(DPhi)| is small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

from fpsolver.model import SIGNS, Model

__all__ = ["LowRank", "make_lowrank", "DENSE_LIMIT"]

DENSE_LIMIT = 256  # 2 * rank above which the implicit matrix is refreshed every few steps
REFRESH = 25  # steps between refactorisations beyond DENSE_LIMIT (W-method)


@dataclass
class LowRank:
    """Features and coefficients of the balanced input (see the module docstring).

    Attributes:
        kind: ``bins`` or ``cosine``.
        A: input coefficients (2, rank).
        K: kernel coefficients (2, 2, rank, rank).
    """

    kind: str
    A: np.ndarray
    K: np.ndarray
    _lu: tuple | None = None
    _age: int = 0

    @property
    def rank(self) -> int:
        """Number of features (bins, or 3 for the cosine features)."""
        return self.A.shape[1]

    def _matrix(self, T: np.ndarray, h: float) -> np.ndarray:
        R = self.rank
        SK = SIGNS[None, :, None, None] * self.K  # s_b K_ab[r, q]
        if self.kind == "bins":  # T_ab diagonal: T[a, b, q]
            blocks = SK * T[:, :, None, :]
        else:
            blocks = np.einsum("abrq,abqs->abrs", SK, T)
        M = -h * blocks.transpose(0, 2, 1, 3).reshape(2 * R, 2 * R)
        M[np.diag_indices(2 * R)] += 1.0
        return M

    def solve(self, m: np.ndarray, u: np.ndarray, T: np.ndarray, h: float,
              implicit: bool = True) -> np.ndarray:
        """The shift coefficients Y (2, rank) of one step.

        Args:
            m: feature sums of G_ab, shape (2, 2, rank).
            u: feature sums of G_ab' e1, shape (2, 2, rank).
            T: feature sums of G_ab' times Phi: (2, 2, rank) for bins (diagonal),
                (2, 2, rank, rank) for cosine features.
            h: dt * sqrt(n).
            implicit: linearly implicit (True) or explicit Euler-Maruyama (False).
        """
        SK = SIGNS[None, :, None, None] * self.K
        if not implicit:
            return h * (self.A + np.einsum("abrq,abq->ar", SK, m))
        rhs = h * (self.A + np.einsum("abrq,abq->ar", SK, m + u)).ravel()
        R = self.rank
        if 2 * R <= DENSE_LIMIT:
            return np.linalg.solve(self._matrix(T, h), rhs).reshape(2, R)
        if self._lu is None or self._age >= REFRESH:
            self._lu = sla.lu_factor(self._matrix(T, h))
            self._age = 0
        self._age += 1
        return sla.lu_solve(self._lu, rhs).reshape(2, R)


def make_lowrank(model: Model, use_cosine: bool) -> LowRank:
    """The low-rank form of the model's input and kernel (cosine features if asked)."""
    if use_cosine:
        A = np.column_stack([model.input_modes, np.zeros(2)])  # A_a = A_a0 + A_a1 cos x
        K = np.zeros((2, 2, 3, 3))
        for a in range(2):
            for b in range(2):
                c0, c1 = model.kernel_modes["ei"[a] + "ei"[b]]
                K[a, b] = np.diag([c0, c1, c1])
        return LowRank("cosine", A, K)
    return LowRank("bins", np.ascontiguousarray(model.inputs.T), np.array(model.kernel))
