"""The balance constraint of MODEL §2(a) and its Newton solver.

For every site x_j and population a,

    Phi_a(x_j) = A_a(x_j) + sum_b s_b sum_k J_ab(x_j, x_k) w_k <G_ab(vbar_b(x_k) + y_b)>_k = 0,

with Jacobian dPhi_a(x_j)/dvbar_b(x_k) = s_b J_ab(x_j, x_k) w_k <G_ab'(vbar_b(x_k) + y_b)>_k.
The expectations come from the caller (normal quadrature for the Gaussian limit, quadrature
of the finite-element density for the kinetic solver) as a function

    expect(vbar) -> (g, gp),   g[a, b, k] = <G_ab(vbar_b(x_k) + y_b)>_k,  gp likewise with G'.

Low-rank kernels. The balanced input lambda_a(x) = sqrt(n) I_a(x) can only take values in
the range R_a = span{A_a, J_ae(., x_k), J_ai(., x_k)}; for the cosine kernel that is
span{1, cos x, sin x}. So the constraint fixes vbar only along R = R_e x R_i: the solver
looks for ``vbar = base + U c`` with U an orthonormal basis of R and solves U^T Phi = 0
(rank-many equations); the rest of vbar moves with the slow dynamics d vbar/dt = <F>.
For full-rank kernels (mean-field, exponential) U = I and this is plain Newton on Phi.

Several roots. Phi can have several roots (a saturating G_ee with linear G_ei, G_ie, G_ii:
an S-shaped branch, ``bistable-balance``); Newton finds the one its start leads to. Every
solver makes a fresh constraint for the consistent start at t = 0 (MODEL §2d), so the
*first* solve of a constraint starts at ``initial.vbar`` when the scenario gives it (its
part in the range of the balanced input; the free part stays the caller's ``base``); the
later solves start at the caller's predictor and follow the root chosen.

Unknowns and residuals are ordered ``(population, site)``: index ``a * sites + j``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from fpsolver.circulant import circulant_coupling
from fpsolver.errors import BalanceError
from fpsolver.model import Model

__all__ = ["BalanceConstraint", "BalanceInfo", "SINGULAR_COND", "coupling_jacobian",
           "fft_coupling"]

Expect = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
_RANK_TOL = 1e-9  # relative singular value below which a kernel direction is dropped
SINGULAR_COND = 1e13  # condition number of U^T DPhi U above which it counts as singular
_SVD_LIMIT = 4096     # unknowns up to which a singular Jacobian's error gives its SVD
_DENSE_LIMIT = 8192   # unknowns up to which a stalled GMRES falls back to a dense LU


@dataclass
class BalanceInfo:
    """Outcome of one balance solve: Newton iterations and the final max-norm residual."""

    iterations: int
    residual: float


def coupling_jacobian(W: np.ndarray, gp: np.ndarray) -> np.ndarray:
    """dPhi/dvbar = W[a, b, j, k] gp[a, b, k], shape ``(2 sites, 2 sites)`` (population, site)."""
    B = W.shape[2]
    return (W * gp[:, :, None, :]).transpose(0, 2, 1, 3).reshape(2 * B, 2 * B)


def _range_basis(model: Model) -> np.ndarray:
    """Orthonormal basis U (2 sites x rank) of the range R of the balanced input."""
    B = model.n_sites
    w = model.sites.weights
    blocks = []
    for a in range(2):
        cols = np.column_stack([model.inputs[:, a], model.kernel[a, 0] * w, model.kernel[a, 1] * w])
        u, s, _ = np.linalg.svd(cols, full_matrices=False)
        keep = s > _RANK_TOL * max(s.max(), 1e-300)
        # a full range gets the identity: Newton then works on Phi itself (no rotation)
        blocks.append(np.eye(B) if keep.sum() == B else u[:, keep])
    U = np.zeros((2 * B, blocks[0].shape[1] + blocks[1].shape[1]))
    U[:B, : blocks[0].shape[1]] = blocks[0]
    U[B:, blocks[0].shape[1]:] = blocks[1]
    return U


def fft_coupling(model):
    """The coupling in FFT form when the constraint runs by FFT, else None.

    That is: sites on a lattice, a translation-invariant kernel and a full range.
    """
    circulant = circulant_coupling(model)
    return circulant if circulant is not None and circulant.full_range(_RANK_TOL) else None


def _newton_step(J: np.ndarray, r: np.ndarray) -> np.ndarray | None:
    """Solve J step = -r by LU; None when J is singular (condition above SINGULAR_COND).

    The condition number is LAPACK's 1-norm estimate from the factors (``gecon``, O(n^2)),
    not an SVD (O(n^3), ten times the solve: 73% of the sheet's Newton time).
    """
    from scipy.linalg import lapack, lu_factor, lu_solve

    if not np.isfinite(J).all():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an exactly singular J: reported through rcond
        lu, piv = lu_factor(J, check_finite=False)
    rcond, info = lapack.dgecon(lu, np.abs(J).sum(axis=0).max(), norm="1")
    if info != 0 or not rcond > 1.0 / SINGULAR_COND:
        return None
    step = lu_solve((lu, piv), -r, check_finite=False)
    return step if np.isfinite(step).all() else None


class BalanceConstraint:
    """Phi(vbar) = 0 on the sites of a model, solved by damped Newton along its range."""

    def __init__(self, model: Model):
        self.model = model
        self._W = None
        # a full-rank circulant coupling is applied and inverted by FFT (no dense W, no LU,
        # no dense kernel): U = I is then known without an SVD
        self.circulant = fft_coupling(model)
        self._U = None if self.circulant is not None else _range_basis(model)
        self.full_rank = self._U is None or self._U.shape[1] == 2 * model.n_sites
        guess = getattr(getattr(model.scenario, "initial", None), "vbar", None)
        # the start of the first solve (t = 0) when initial.vbar is given; None: base
        self._first = (np.tile(np.asarray(guess, dtype=float), (model.n_sites, 1))
                       if guess else None)

    @property
    def W(self) -> np.ndarray:
        """W[a, b, j, k] = s_b J_ab(x_j, x_k) w_k, dense (built on first use)."""
        if self._W is None:
            self._W = self.model.coupling()
        return self._W

    def apply(self, x: np.ndarray, absolute: bool = False) -> np.ndarray:
        """sum_b sum_k W[a, b, j, k] x[a, b, k], shape ``(sites, 2)``; |W| if ``absolute``."""
        if self.circulant is not None:
            return self.circulant.apply(x, absolute).T
        return np.einsum("abjk,abk->ja", np.abs(self.W) if absolute else self.W, x)

    def linear_solve(self, gp: np.ndarray, rhs: np.ndarray) -> np.ndarray | None:
        """U (U^T DPhi U)^-1 U^T rhs, shape (2 sites,); None if the Jacobian is singular.

        ``rhs`` is ordered (population, site). FFT-preconditioned GMRES for a circulant
        coupling (:mod:`fpsolver.circulant`), else (or if GMRES stalls, up to
        _DENSE_LIMIT unknowns) an LU of the reduced Jacobian.
        """
        if self.circulant is not None:
            x = self.circulant.solve(gp, rhs)
            if x is not None or self.rank > _DENSE_LIMIT:
                return x  # else GMRES stalled (ill-conditioned): the dense LU decides
        x = _newton_step(self.reduced_jacobian(gp), -(self.U.T @ rhs))  # Jr x = U^T rhs
        return None if x is None else self.U @ x

    @property
    def U(self) -> np.ndarray:
        """Orthonormal basis (2 sites, rank) of the range; the identity for a full range."""
        if self._U is None:
            self._U = np.eye(2 * self.model.n_sites)
        return self._U

    @property
    def rank(self) -> int:
        """Dimension of the range of the balanced input (the columns of U)."""
        return 2 * self.model.n_sites if self.full_rank else self._U.shape[1]

    def residual(self, g: np.ndarray) -> np.ndarray:
        """Phi of MODEL §2(a), shape ``(sites, 2)``, from expectations ``g`` (2, 2, sites)."""
        return self.model.inputs + self.apply(g)

    def jacobian(self, gp: np.ndarray) -> np.ndarray:
        """dPhi/dvbar, shape ``(2 sites, 2 sites)``, ordered ``(population, site)``."""
        return coupling_jacobian(self.W, gp)

    def reduced_jacobian(self, gp: np.ndarray) -> np.ndarray:
        """Newton's matrix U^T DPhi U, shape (rank, rank).

        The Jacobian restricted to the range of the balanced input (the fast Jacobian of
        MODEL §4). For a full-rank kernel U = I and this is DPhi itself.
        """
        if self.full_rank:
            return self.jacobian(gp)
        return self.U.T @ self.jacobian(gp) @ self.U

    def project(self, phi: np.ndarray) -> np.ndarray:
        """Coordinates U^T phi of a residual ``phi`` of shape ``(sites, 2)`` in the range."""
        flat = phi.T.ravel()
        return flat if self.full_rank else self.U.T @ flat

    def solve(self, expect: Expect, base: np.ndarray, *, tol: float = 1e-12,
              max_iter: int = 60, where: str = "") -> tuple[np.ndarray, BalanceInfo]:
        """Solve U^T Phi(base + U c) = 0 for c by damped Newton, starting at c = 0.

        The first solve of a constraint whose scenario gives ``initial.vbar`` starts at
        c = U^T (initial.vbar - base) instead (module docstring: the root chosen at t = 0).

        Args:
            expect: ``vbar -> (g, gp)`` expectations of the gains and their derivatives.
            base: ``(sites, 2)``; the free part of vbar and the initial guess.
            tol: absolute tolerance on max |U^T Phi|.
            max_iter: Newton iterations before giving up.
            where: text naming the time (and run) for error messages.

        Raises:
            BalanceError: singular Jacobian or no convergence (no balanced state).
        """
        B = self.model.n_sites
        vbar = np.array(base, dtype=float)
        if self._first is not None:
            shift = (self._first - vbar).T.ravel()
            if not self.full_rank:
                shift = self.U @ (self.U.T @ shift)
            vbar = vbar + shift.reshape(2, B).T
            self._first = None
        g, gp = expect(vbar)
        if not (np.isfinite(g).all() and np.isfinite(gp).all()):
            raise BalanceError(
                f"the gains' expectations are not finite{where}: the densities or the means "
                "hold NaN/Inf, a numerical failure before the balance solve (not a property "
                "of the scenario) -- fix: reduce kinetic.dt")
        phi = self.residual(g)
        r = self.project(phi)
        norm = np.abs(r).max()
        tol = max(tol, self.roundoff(g))
        for it in range(max_iter):
            if norm <= tol:
                return vbar, BalanceInfo(it, norm)
            step = self.linear_solve(gp, -phi.T.ravel())
            if step is None:
                raise BalanceError(self._singular(gp, where))
            dv = step.reshape(2, B).T
            damping = 1.0
            while True:  # backtracking on max |U^T Phi|
                trial = vbar + damping * dv
                g_t, gp_t = expect(trial)
                phi_t = self.residual(g_t)
                r_t = self.project(phi_t)
                norm_t = np.abs(r_t).max()
                if norm_t < (1 - 1e-4 * damping) * norm or damping < 1e-3 or norm_t <= tol:
                    break
                damping /= 2
            vbar, gp, phi, r, norm = trial, gp_t, phi_t, r_t, norm_t
        if norm <= self.roundoff(g):
            return vbar, BalanceInfo(max_iter, norm)  # converged to round-off
        worst = int(np.unravel_index(np.abs(phi).argmax(), phi.shape)[0])
        raise BalanceError(
            f"no balanced state{where}: Newton stopped after {max_iter} iterations with "
            f"|Phi| = {norm:.3e} (largest at site {worst}, x = "
            f"{self.model.sites.points[worst].round(4).tolist()}); the inputs cannot be "
            "cancelled by the recurrent gains (e.g. A_e >= C_ei with tanh gains). "
            "Check the scenario with `fpsolver stability SCENARIO`.")

    def roundoff(self, g: np.ndarray) -> float:
        """Level of |U^T Phi| that round-off alone leaves.

        1000 eps times the largest term of the sum Phi (inputs, and each s_b J_ab w_k
        <G_ab>).
        """
        terms = self.apply(np.abs(g), absolute=True)
        scale = 1 + np.abs(self.model.inputs).max() + terms.max()
        return 1e3 * np.finfo(float).eps * scale * np.sqrt(2 * self.model.n_sites)

    def _singular(self, gp: np.ndarray, where: str) -> str:
        if not np.isfinite(gp).all():
            return (f"non-finite balance Jacobian{where}: the expectations overflowed (the "
                    "fluctuations or the means are huge). Check the scenario with "
                    "`fpsolver stability SCENARIO`.")
        if self.rank > _SVD_LIMIT:
            size = f"{self.rank} unknowns"
        else:
            s = np.linalg.svd(self.reduced_jacobian(gp), compute_uv=False)
            size = f"smallest singular value {s[-1]:.2e}, largest {s[0]:.2e}"
        return (f"singular balance Jacobian{where} ({size}); the balanced state is not "
                "isolated (the index-1 condition of MODEL §2 fails: saturated gains or "
                "degenerate kernel weights). "
                "Check the scenario with `fpsolver stability SCENARIO`.")
