"""Leading eigenvalues of the kinetic limit linearised at a stationary state (slow time).

Perturb a stationary state (q_x, vbar, m) by (dq_x, dvbar, dm). Linearising MODEL §2 in
each site's (fixed) frame gives, on the O(1) time scale,

    M d(dq_x)/dt = A_x dq_x + B_x dm_x + D_x dvbar_x
    dm_x   = F_x^T dq_x + <DF>_x dvbar_x                   (<F> of the perturbed density)
    0      = U^T (H dvbar + Gamma dq)                      (balance along the range U, §2a)
    d xi/dt = U_f^T dm,   dvbar = U c + U_f xi             (the free part of vbar)

with A_x = A(P_x), B_x = dA/dm q_x, D_x = dA/dvbar q_x, F_x the functionals of F,
H = dPhi/dvbar and (Gamma dq)_{a x} = sum_b,k W_ab(x, k) <G_ab(vbar_b + y_b), dq_k>. The
balance constraint is eliminated: dvbar is a low-rank function of the densities (a
coupling between sites of rank 2 sites at most).

Neutral directions. Every site keeps its mass and the mean of y exactly (0 = d/dt
integral dq and d/dt integral y dq on mass-zero perturbations), so the operator has the
eigenvalue 0 on the 3 sites directions (mass, mean of y_e, mean of y_i) that are not
perturbations of the kinetic limit (its densities have mass 1 and mean 0). They are
deflated: with C_x = [w, c_e, c_i] (those functionals) and Z = [1, z_e, z_i] (M Z = C),
the term -mu C_x (C_x^T Z)^{-1} C_x^T moves them to -mu and leaves every eigenpair on
the mass-zero, mean-zero perturbations unchanged. For linear F and additive noise the
spectrum left is the Ornstein-Uhlenbeck one, -(k_e / tau_e + k_i / tau_i) with
k_e + k_i >= 2.

The eigenproblem L v = lambda Mb v (Mb = diag(M, ..., M, I)) is solved by SLEPc's
Krylov-Schur on the shift-and-invert operator (L - sigma Mb)^{-1} Mb: per site a sparse
LU (MUMPS) of A_x - sigma M (site-local, in parallel over the ranks' sites) and a Woodbury
correction for the low-rank part (a dense system of 7 sites + free dimension).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from fpsolver.balance import BalanceConstraint
from fpsolver.steady.newton import _complement, _gather
from fpsolver.steady.site import params

__all__ = ["Spectrum", "compute_spectrum", "verdict"]

logger = logging.getLogger(__name__)

DEFLATE = 1e3       # the neutral directions go to -DEFLATE * rate scale (far from the target)
_SMALL = 9          # per-site functionals: gains (4), C^T (3), F^T (2)
_COEF = 7           # per-site coefficients: dm (2), dvbar (2), deflation (3)


@dataclass
class Spectrum:
    """Leading eigenvalues (rightmost first) and, on request, eigenfunctions.

    Attributes:
        eigenvalues: complex array, sorted by decreasing real part.
        target: the shift sigma used.
        residuals: relative residual ||L v - lambda Mb v|| / ||v|| of each pair.
        vectors: {site: (k, dofs) complex} densities of the eigenfunctions on this rank's
            sites (in the frames of the stationary state), or None.
        info: sizes and wall time.
    """

    eigenvalues: np.ndarray
    target: float
    residuals: np.ndarray
    vectors: dict | None
    dvbar: np.ndarray | None
    info: dict


def verdict(eigenvalues: np.ndarray, tol: float = 1e-8) -> dict:
    """Attracting / oscillating / unstable from the rightmost eigenvalue (slow time scale)."""
    lead = eigenvalues[0]
    rate, freq = float(lead.real), float(abs(lead.imag))
    if rate > tol:
        kind = "unstable"
    elif rate >= -tol:
        kind = "oscillating" if freq > tol else "marginal"
    else:
        kind = "attracting"
    return {"verdict": kind, "leading_rate": rate, "leading_frequency": freq,
            "time_scale": "slow (O(1) time of the kinetic limit)"}


class _LinearisedSites:
    """Site-local pieces of the linearised operator for this rank's sites."""

    def __init__(self, state, sigma: float, mu: float):
        from fpsolver.steady.lu import SparseLU

        sp = state.space
        self.n = sp.n
        X = sp.V.tabulate_dof_coordinates()[:, :2]
        Z = np.column_stack([np.ones(len(X)), X[:, 0], X[:, 1]])
        C = np.column_stack([sp.mass, sp.mean])
        self.C = C
        deflate = -mu * np.linalg.inv(C.T @ Z)        # coefficient map of kappa = C^T dq
        self.M = sp.M
        self.lu, self.cols, self.Psi, self.dF, self.gp = [], [], [], [], []
        self.deflate = deflate
        self.A = []
        for s in state.sites:
            q = state.q[int(s)]
            P = params(state.vbar[s], state.m[s], state.ell[s])
            A = sp.matrix(P)
            Bq = np.column_stack([B @ q for B in sp.d_mean_drift(P)])
            Dq = np.column_stack([D @ q for D in sp.d_vbar(P)])
            g4, gp4 = sp.gain_functionals(state.vbar[s], state.ell[s])
            f, dF = sp.drift(state.vbar[s], state.ell[s])
            self.A.append(A)
            self.lu.append(SparseLU(A - sigma * sp.M))
            self.cols.append(np.column_stack([Bq, Dq, C]))            # (n, 7)
            self.Psi.append(np.vstack([g4, C.T, f.T]))                # (9, n)
            self.dF.append(np.einsum("ngc,n->gc", dF, q))            # <DF> (2, 2)
            self.gp.append(gp4 @ q)

    def apply_L(self, j: int, dq: np.ndarray, coef: np.ndarray) -> np.ndarray:
        """(L v)_x for local site j from its density and its coefficients (7,)."""
        return self.A[j] @ dq + self.cols[j] @ coef


class LinearisedOperator:
    """The linearised kinetic operator, its mass and its shifted inverse (see module doc)."""

    def __init__(self, model, state, sigma: float, comm, mu: float | None = None):
        self.model, self.state, self.comm, self.sigma = model, state, comm, sigma
        S = model.n_sites
        self.S = S
        constraint = BalanceConstraint(model)
        self.U, self.Uf = constraint.U, _complement(constraint.U)
        self.nxi = self.Uf.shape[1]
        self.W = constraint.W
        rate = max(1.0, float(np.abs(state.m).max()))
        self.mu = mu if mu is not None else DEFLATE * rate
        self.loc = _LinearisedSites(state, sigma, self.mu)
        self.sites = state.sites
        dF = _gather(comm, self.sites, self.loc.dF, (2, 2), S)
        gp = _gather(comm, self.sites, self.loc.gp, (4,), S)
        self.dF = dF
        H = constraint.jacobian(gp.T.reshape(2, 2, S))
        self.H = H
        Hr = self.U.T @ H @ self.U
        self.Hr_inv = np.linalg.inv(Hr)
        self.K = self._coefficient_map()
        # Q = Psi Abar^{-1} Ucal: per-site blocks and the free rows
        blocks = [self.loc.Psi[j] @ self.loc.lu[j].solve(self.loc.cols[j])
                  for j in range(len(self.sites))]
        P = _gather(comm, self.sites, blocks, (_SMALL, _COEF), S)
        Q = np.zeros((_SMALL * S + self.nxi, _COEF * S))
        for k in range(S):
            Q[_SMALL * k:_SMALL * (k + 1), _COEF * k:_COEF * (k + 1)] = P[k]
        if self.nxi:
            Q[_SMALL * S:, :] = -self.Uf.T @ self._dm_of_coef() / sigma
        self.Q = Q
        self.cap = np.linalg.inv(np.eye(_COEF * S) + self.K @ Q)

    # -- the small dense maps -----------------------------------------------------------
    def _dm_of_coef(self) -> np.ndarray:
        """E_m: the dm part of a coefficient vector, ordered (population, site)."""
        S = self.S
        E = np.zeros((2 * S, _COEF * S))
        for k in range(S):
            for a in range(2):
                E[a * S + k, _COEF * k + a] = 1.0
        return E

    def _coefficient_map(self) -> np.ndarray:
        """K: small functionals s (9 sites + xi) -> coefficients c (7 sites)."""
        S, U, Uf = self.S, self.U, self.Uf
        ns = _SMALL * S + self.nxi
        # dvbar (ordered a, x) from s
        Gam = np.zeros((2 * S, ns))
        for a in range(2):
            for b in range(2):
                idx = 2 * a + b  # PAIRS order: ee, ei, ie, ii
                for x in range(S):
                    Gam[a * S + x, _SMALL * np.arange(S) + idx] = self.W[a, b, x, :]
        Xi = np.zeros((self.nxi, ns))
        if self.nxi:
            Xi[:, _SMALL * S:] = np.eye(self.nxi)
        dv = (-U @ self.Hr_inv @ U.T @ (self.H @ Uf @ Xi + Gam)) + Uf @ Xi   # (2S, ns)
        K = np.zeros((_COEF * S, ns))
        for x in range(S):
            dvx = np.vstack([dv[x], dv[S + x]])                # (2, ns)
            f = np.zeros((2, ns))
            f[0, _SMALL * x + 7] = f[1, _SMALL * x + 8] = 1.0
            K[_COEF * x:_COEF * x + 2] = f + self.dF[x] @ dvx   # dm
            K[_COEF * x + 2:_COEF * x + 4] = dvx                # dvbar
            kappa = np.zeros((3, ns))
            for r in range(3):
                kappa[r, _SMALL * x + 4 + r] = 1.0
            K[_COEF * x + 4:_COEF * x + 7] = self.loc.deflate @ kappa
        return K

    # -- vectors: this rank's sites' densities, then xi on rank 0 ----------------------
    @property
    def local_size(self) -> int:
        """Entries of a vector on this rank."""
        return len(self.sites) * self.loc.n + (self.nxi if self.comm.rank == 0 else 0)

    def _split(self, v: np.ndarray):
        n = self.loc.n
        dq = v[:len(self.sites) * n].reshape(len(self.sites), n)
        xi = v[len(self.sites) * n:] if self.comm.rank == 0 else np.zeros(0)
        return dq, xi

    def _small(self, dq, xi) -> np.ndarray:
        """The small functionals Psi v of a vector (global, identical on every rank)."""
        S = self.S
        s = _gather(self.comm, self.sites, [self.loc.Psi[j] @ dq[j] for j in range(len(dq))],
                    (_SMALL,), S).ravel()
        xi_all = self.comm.bcast(xi if self.comm.rank == 0 else None, root=0)
        return np.concatenate([s, xi_all])

    def mass(self, v: np.ndarray) -> np.ndarray:
        """Mb v."""
        dq, xi = self._split(v)
        out = np.concatenate([(self.loc.M @ dq.T).T.ravel(), xi])
        return out

    def apply(self, v: np.ndarray) -> np.ndarray:
        """L v."""
        dq, xi = self._split(v)
        c = self.K @ self._small(dq, xi)
        out = [self.loc.apply_L(j, dq[j], c[_COEF * s:_COEF * (s + 1)])
               for j, s in enumerate(self.sites)]
        tail = (self.Uf.T @ (self._dm_of_coef() @ c)) if self.comm.rank == 0 else np.zeros(0)
        return np.concatenate([np.concatenate(out) if out else np.zeros(0), tail])

    def shift_invert(self, b: np.ndarray) -> np.ndarray:
        """(L - sigma Mb)^{-1} b (Woodbury on the per-site LU factors)."""
        dq_b, xi_b = self._split(b)
        y0 = np.array([self.loc.lu[j].solve(dq_b[j]) for j in range(len(self.sites))])
        y0 = y0.reshape(len(self.sites), self.loc.n)
        xi0 = -xi_b / self.sigma
        c = self.cap @ (self.K @ self._small(y0, xi0))
        out = [y0[j] - self.loc.lu[j].solve(self.loc.cols[j] @ c[_COEF * s:_COEF * (s + 1)])
               for j, s in enumerate(self.sites)]
        tail = (xi0 + self.Uf.T @ (self._dm_of_coef() @ c) / self.sigma
                if self.comm.rank == 0 else np.zeros(0))
        return np.concatenate([np.concatenate(out) if out else np.zeros(0), tail])

    def dvbar(self, v: np.ndarray) -> np.ndarray:
        """The mean perturbation dvbar (sites, 2) that goes with a density perturbation."""
        dq, xi = self._split(v)
        c = self.K @ self._small(dq, xi)
        return np.array([c[_COEF * x + 2:_COEF * x + 4] for x in range(self.S)])


class _ShellOP:
    """petsc4py python context for y = (L - sigma Mb)^{-1} Mb x."""

    def __init__(self, op: LinearisedOperator):
        self.op = op

    def mult(self, mat, x, y):
        y.array[:] = self.op.shift_invert(self.op.mass(x.array_r.copy()))


def compute_spectrum(model, state, *, count: int = 10, target: float | None = None,
                     comm=None, vectors: bool = False, tol: float = 1e-12) -> Spectrum:
    """The ``count`` eigenvalues of the linearised kinetic limit nearest ``target``.

    Args:
        model: the model.
        state: its stationary state (:func:`~fpsolver.steady.solve_steady`).
        count: eigenvalues wanted.
        target: the shift sigma (default: a small positive number, so the rightmost
            eigenvalues are the nearest; it must not be an eigenvalue of a site's operator).
        comm: communicator of the state.
        vectors: keep the eigenfunctions (densities per site, and dvbar).
        tol: SLEPc's relative tolerance.
    """
    from mpi4py import MPI
    from petsc4py import PETSc
    from slepc4py import SLEPc

    comm = comm or MPI.COMM_WORLD
    start = time.perf_counter()
    if target is None:
        target = 1e-3 * max(1.0, float(np.abs(state.m).max()))
    op = LinearisedOperator(model, state, float(target), comm)
    n_local = op.local_size
    n_global = comm.allreduce(n_local)
    count = max(1, min(count, n_global - 3 * model.n_sites - 2))
    A = PETSc.Mat().createPython([(n_local, n_global), (n_local, n_global)], _ShellOP(op),
                                 comm=comm)
    A.setUp()
    eps = SLEPc.EPS().create(comm)
    eps.setOperators(A)
    eps.setProblemType(SLEPc.EPS.ProblemType.NHEP)
    eps.setType(SLEPc.EPS.Type.KRYLOVSCHUR)
    eps.setWhichEigenpairs(SLEPc.EPS.Which.LARGEST_MAGNITUDE)
    eps.setDimensions(nev=count, ncv=min(max(2 * count + 10, 30), n_global))
    eps.setTolerances(tol=tol, max_it=1000)
    eps.solve()
    nconv = eps.getConverged()
    vr, vi = A.createVecs()
    lams, res, vecs, dvbars = [], [], [], []
    for i in range(nconv):
        theta = eps.getEigenpair(i, vr, vi)
        lam = target + 1.0 / theta
        x = vr.array_r + 1j * vi.array_r
        Lx = op.apply(x.real) + 1j * op.apply(x.imag)
        Mx = op.mass(x.real) + 1j * op.mass(x.imag)
        num = comm.allreduce(float(np.sum(np.abs(Lx - lam * Mx) ** 2)))
        den = comm.allreduce(float(np.sum(np.abs(Mx) ** 2)))
        lams.append(lam)
        res.append(np.sqrt(num / max(den, 1e-300)) / max(1.0, abs(lam)))
        if vectors:
            vecs.append(x)
            dvbars.append(op.dvbar(x.real) + 1j * op.dvbar(x.imag))
    order = np.argsort(-np.real(lams), kind="stable")
    lams = np.array(lams)[order]
    res = np.array(res)[order]
    vec_out = None
    if vectors:
        n = op.loc.n
        vec_out = {int(s): np.array([vecs[i][j * n:(j + 1) * n] for i in order[:count]])
                   for j, s in enumerate(op.sites)}
        dvbars = np.array(dvbars)[order]
    eps.destroy()
    A.destroy()
    info = {"wall_time": time.perf_counter() - start, "converged": int(nconv),
            "unknowns": int(n_global), "deflation": op.mu,
            "free_dimension": int(op.nxi)}
    return Spectrum(eigenvalues=lams[:count], target=float(target), residuals=res[:count],
                    vectors=vec_out, dvbar=dvbars[:count] if vectors else None, info=info)
