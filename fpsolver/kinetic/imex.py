"""The IMEX time step of every site's density, with one factorisation per cluster.

Site j's operator A(P_j) (:mod:`fpsolver.kinetic.operator`) is split into the operator
of its cluster's reference, A_r = A(P_r), taken implicitly, and the difference
E_j = (A(P_j) - A_r) q_j, taken explicitly and extrapolated to second order. With the
step dt_n = t_{n+1} - t_n and the ratio w = dt_n / dt_{n-1} (variable steps):

- ``bdf2`` (SBDF2): M [(1+2w)/(1+w) q^{n+1} - (1+w) q^n + w^2/(1+w) q^{n-1}] / dt_n
  = A_r q^{n+1} + (1+w) E^n - w E^{n-1}
- ``cn`` (CN/AB2):  M (q^{n+1} - q^n) / dt_n = A_r (q^{n+1} + q^n) / 2
  + (1 + w/2) E^n - (w/2) E^{n-1}
- ``euler``:        M (q^{n+1} - q^n) / dt_n = A_r q^{n+1} + E^n

(w = 1 gives the constant-step forms.) BDF2 starts with one backward-Euler step:
L-stable, so the stiff tails of the initial data are damped rather than flipped in sign
as a CN start would (measured on ``bistable``: a CN start left undershoots of 4e-5 x
peak), and one first-order step keeps the global error second order.

Which sites share a reference comes from the stability bound of
:mod:`fpsolver.kinetic.clusters`, checked before every step; a reference or step size
that changes costs one numeric factorisation of ``c M - theta A_r``. All the sites of a
cluster on a serial group are solved at once (``MatMatSolve``). The systems of released
references are refilled in place for new ones, so a new reference costs a numeric
factorisation only (the symbolic analysis of the sparsity pattern is kept).
"""

from __future__ import annotations

import numpy as np

from fpsolver.kinetic.linsolve import LinearSolver

__all__ = ["ImexScheme", "SCHEMES"]

SCHEMES = ("bdf2", "cn", "euler")
_MAX_SPARE = 8  # released systems kept for refilling


def _same_pattern():
    from petsc4py import PETSc
    return PETSc.Mat.Structure.SAME_NONZERO_PATTERN


def coefficients(kind: str, dt: float, w: float) -> tuple[float, float]:
    """(c, theta) of the implicit matrix c M - theta A_r of a step."""
    if kind == "bdf2":
        return (1 + 2 * w) / ((1 + w) * dt), 1.0
    if kind == "cn":
        return 1.0 / dt, 0.5
    return 1.0 / dt, 1.0


class ImexScheme:
    """The time scheme of one :class:`~fpsolver.kinetic.densities.SiteDensities`.

    Args:
        dens: the densities (their operator and q^n).
        scheme: ``bdf2``, ``cn`` or ``euler``.
        petsc_options: the user's options for the implicit solves.
    """

    def __init__(self, dens, scheme: str, petsc_options: dict):
        self.dens, self.scheme = dens, scheme
        self.petsc_options = dict(petsc_options)
        k, n = len(dens.sites), dens.n_owned
        self.q_old = dens.q.copy()
        self.E_old = np.zeros((k, n))
        self.E_old_refs = None     # the references E_old was taken against (k, 8)
        self.P_old = None          # site parameters at t^{n-1} (k, 8)
        self.dt_old = None         # the previous step
        self._systems: dict = {}   # (c, theta, reference bytes) -> (solver, K, A, A_csr)
        self._spare: list = []     # released systems, refilled for new references
        self.factorisations = 0

    @property
    def have_old(self) -> bool:
        """Whether a previous step exists (BDF2 and its extrapolation need one)."""
        return self.dt_old is not None

    def next_kind(self) -> str:
        """The scheme of the next step (BDF2 starts with one backward-Euler step)."""
        return "euler" if self.scheme == "bdf2" and not self.have_old else self.scheme

    # -- implicit systems -------------------------------------------------------------
    def _system(self, c: float, theta: float, ref: np.ndarray):
        """(solver, K, A, A_csr) of ``c M - theta A(ref)``.

        A released system is refilled when there is one (numeric refactorisation only).
        """
        key = (c, theta, np.asarray(ref, float).tobytes())
        if key in self._systems:
            return self._systems[key]
        op = self.dens.operator
        if self._spare:
            solver, K, A, _ = self._spare.pop()
            op.matrix(ref, out=A)
            op.M.copy(K, structure=_same_pattern())
            K.scale(c)
            K.axpy(-theta, A, structure=_same_pattern())
            solver.operator_changed()
        else:
            A = op.matrix(ref)
            K = op.M.copy()
            K.scale(c)
            K.axpy(-theta, A, structure=_same_pattern())
            solver = LinearSolver(K, self.petsc_options, name=self.scheme)
        A_csr = None
        if self.dens.serial and theta != 1.0:
            from fpsolver.kinetic.operator import _csr
            A_csr = _csr(A)
        self._systems[key] = (solver, K, A, A_csr)
        self.factorisations += 1
        return self._systems[key]

    def release(self, keep_refs: np.ndarray, dt: float) -> None:
        """Set aside the systems not used by the next step (kept for refilling)."""
        c, theta = coefficients(self.next_kind(), dt, dt / self.dt_old if self.dt_old else 1.0)
        keep = {(c, theta, np.asarray(r, float).tobytes()) for r in keep_refs}
        for key in [k for k in self._systems if k not in keep]:
            self._spare.append(self._systems.pop(key))
        while len(self._spare) > _MAX_SPARE:
            solver, K, A, _ = self._spare.pop(0)
            solver.destroy()
            K.destroy()
            A.destroy()

    def invalidate(self) -> None:
        """Set aside every system: the operator changed (new artificial diffusion)."""
        self._spare.extend(self._systems.values())
        self._systems.clear()
        while len(self._spare) > _MAX_SPARE:
            solver, K, A, _ = self._spare.pop(0)
            solver.destroy()
            K.destroy()
            A.destroy()

    # -- one step ----------------------------------------------------------------------
    def step(self, P: np.ndarray, refs: np.ndarray, dt: float, where: str = "") -> None:
        """Advance q of every local site by the step ``dt``.

        Args:
            P: the local sites' parameters at t^n (k, 8).
            refs: each local site's reference parameters (k, 8).
            dt: the step.
            where: text naming the time (and run) for error messages.
        """
        dens = self.dens
        op = dens.operator
        kind = self.next_kind()
        w = dt / self.dt_old if self.have_old else 1.0
        c, theta = coefficients(kind, dt, w)
        q = dens.owned(dens.q)
        E_new = op.difference(q, P, refs)
        if self.have_old and kind != "euler":
            stale = (np.any(self.E_old_refs != refs, axis=1) if self.E_old_refs is not None
                     else np.ones(len(P), bool))
            if stale.any():
                idx = np.flatnonzero(stale)
                self.E_old[idx] = op.difference(dens.owned(self.q_old)[idx], self.P_old[idx],
                                                refs[idx])
        q_old = dens.owned(self.q_old)
        if kind == "bdf2":
            rhs = (op.mass_times(((1 + w) * q - w * w / (1 + w) * q_old) / dt)
                   + ((1 + w) * E_new - w * self.E_old))
        elif kind == "cn":
            rhs = op.mass_times(q / dt) + ((1 + w / 2) * E_new - (w / 2) * self.E_old
                                           if self.have_old else E_new)
        else:
            rhs = op.mass_times(q / dt) + E_new
        sol = np.empty_like(rhs)
        keys, inverse = np.unique(refs, axis=0, return_inverse=True)
        for k, ref in enumerate(keys):
            rows = np.flatnonzero(inverse.ravel() == k)
            solver, K, A, A_csr = self._system(c, theta, ref)
            block = rhs[rows]
            if kind == "cn":
                block = block + 0.5 * self._apply(A, A_csr, q[rows])
            sol[rows] = self._solve(solver, block, where)
        self.q_old = dens.q
        dens.q = dens.with_ghosts(sol)
        self.E_old, self.E_old_refs = E_new, refs.copy()
        self.P_old = P.copy()
        self.dt_old = dt

    def _apply(self, A, A_csr, X: np.ndarray) -> np.ndarray:
        if A_csr is not None:
            return np.ascontiguousarray((A_csr @ X.T).T)
        x, y = self.dens.operator._x, self.dens.operator._y
        out = np.empty_like(X)
        for j in range(len(X)):
            x.array_w[:] = X[j]
            A.mult(x, y)
            out[j] = y.array_r
        return out

    def _solve(self, solver, rhs: np.ndarray, where: str) -> np.ndarray:
        from petsc4py import PETSc

        k, n = rhs.shape
        out = np.empty((k, n))
        if k > 1 and self.dens.serial and solver.direct:
            B = PETSc.Mat().createDense([n, k], array=np.asfortranarray(rhs.T).ravel(order="F"),
                                        comm=PETSc.COMM_SELF)
            X = PETSc.Mat().createDense([n, k], comm=PETSc.COMM_SELF)
            X.setUp()
            B.assemble()
            X.assemble()
            solver.mat_solve(B, X, where)
            out[:] = X.getDenseArray().T
            B.destroy()
            X.destroy()
            return out
        x, b = self.dens.operator._x, self.dens.operator._y
        for j in range(k):
            b.array_w[:] = rhs[j]
            solver.solve(b, x, where)
            out[j] = x.array_r
        return out

    # -- checkpoint support -----------------------------------------------------------
    def state(self) -> dict:
        """Arrays that restore the scheme: q^{n-1}, the last step, E^{n-1} and P^{n-1}."""
        s = {"q_old": self.q_old.copy(), "dt_old": np.array(self.dt_old or 0.0)}
        if self.have_old:
            refs = (self.E_old_refs if self.E_old_refs is not None   # None: stale, NaN
                    else np.full_like(self.P_old, np.nan))
            s.update({"E_old": self.E_old.copy(), "E_old_refs": refs.copy(),
                      "P_old": self.P_old.copy()})
        return s

    def restore(self, s: dict) -> None:
        """Set the scheme from :meth:`state`'s arrays."""
        self.q_old = np.array(s["q_old"], float)
        self.dt_old = float(s["dt_old"]) or None
        if self.have_old:
            self.E_old = np.array(s["E_old"], float)
            refs = np.array(s["E_old_refs"], float)
            self.E_old_refs = None if np.isnan(refs).any() else refs
            self.P_old = np.array(s["P_old"], float)
