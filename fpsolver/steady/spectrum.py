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
correction for the low-rank part (a dense system of 7 sites + free dimension). On a ring or
torus whose stationary state is the same at every site, the operator commutes with the
lattice translations and is solved one spatial Fourier mode at a time, each of one site's
size (:mod:`fpsolver.steady.fourier`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from fpsolver.balance import BalanceConstraint, coupling_jacobian
from fpsolver.steady.newton import _complement, _gather
from fpsolver.steady.site import params

__all__ = ["Coupling", "LinearisedOperator", "LinearisedSites", "Spectrum", "compute_spectrum",
           "deflation", "eigenpairs", "verdict"]

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
        dvbar: (k, sites, 2) complex mean perturbations of the eigenfunctions, or None.
        info: the route ("fourier" or "full"), sizes and wall time.
        modes: (k, dim) integer wavenumbers of the eigenfunctions (e^{i k.x} times a
            site's perturbation; dim 1 on a ring, 2 on a torus) on the Fourier route,
            else None.
    """

    eigenvalues: np.ndarray
    target: float
    residuals: np.ndarray
    vectors: dict | None
    dvbar: np.ndarray | None
    info: dict
    modes: np.ndarray | None = None


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


@dataclass
class Coupling:
    """The coupling between sites and the range of the balance constraint.

    W[a, b, j, k] (:meth:`~fpsolver.model.Model.coupling`), an orthonormal basis U of the
    range of the balanced input and U_f of its complement (rows (population, site)).
    """

    W: np.ndarray
    U: np.ndarray
    Uf: np.ndarray

    @classmethod
    def of_model(cls, model) -> "Coupling":
        """The model's coupling (:class:`~fpsolver.balance.BalanceConstraint`)."""
        constraint = BalanceConstraint(model)
        return cls(constraint.W, constraint.U, _complement(constraint.U))


def deflation(state) -> float:
    """mu: the neutral directions go to -mu (DEFLATE times the rate scale)."""
    return DEFLATE * max(1.0, float(np.abs(state.m).max()))


class LinearisedSites:
    """Site-local pieces of the linearised operator for this rank's sites.

    ``sp``: the :class:`~fpsolver.steady.site.SiteSpace`; ``sites``: the sites' indices;
    ``states``: their (q, vbar, m, ell); ``sigma``: the shift; ``mu``: the deflation.
    """

    def __init__(self, sp, sites, states, sigma: float, mu: float):
        from fpsolver.steady.lu import SparseLU

        self.n, self.sites = sp.n, np.asarray(sites)
        X = sp.V.tabulate_dof_coordinates()[:, :2]
        Z = np.column_stack([np.ones(len(X)), X[:, 0], X[:, 1]])
        C = np.column_stack([sp.mass, sp.mean])
        self.C = C
        deflate = -mu * np.linalg.inv(C.T @ Z)        # coefficient map of kappa = C^T dq
        self.M = sp.M
        self.lu, self.cols, self.Psi, self.dF, self.gp = [], [], [], [], []
        self.deflate = deflate
        self.A = []
        for q, vbar, m, ell in states:
            P = params(vbar, m, ell)
            A = sp.matrix(P)
            Bq = np.column_stack([B @ q for B in sp.d_mean_drift(P)])
            Dq = np.column_stack([D @ q for D in sp.d_vbar(P)])
            g4, gp4 = sp.gain_functionals(vbar, ell)
            f, dF = sp.drift(vbar, ell)
            self.A.append(A)
            self.lu.append(SparseLU(A - sigma * sp.M))
            self.cols.append(np.column_stack([Bq, Dq, C]))            # (n, 7)
            self.Psi.append(np.vstack([g4, C.T, f.T]))                # (9, n)
            self.dF.append(np.einsum("ngc,n->gc", dF, q))            # <DF> (2, 2)
            self.gp.append(gp4 @ q)
        # Psi Abar^{-1} Ucal per site: the sites' blocks of the Woodbury matrix
        self.blocks = [Psi @ lu.solve(cols) for Psi, lu, cols in
                       zip(self.Psi, self.lu, self.cols)]

    @classmethod
    def of_state(cls, state, sigma: float, mu: float) -> "LinearisedSites":
        """The pieces of this rank's sites of a stationary state."""
        return cls(state.space, state.sites,
                   [(state.q[int(s)], state.vbar[s], state.m[s], state.ell[s])
                    for s in state.sites], sigma, mu)

    def apply_L(self, j: int, dq: np.ndarray, coef: np.ndarray) -> np.ndarray:
        """(L v)_x for local site j from its density and its coefficients (7,)."""
        return self.A[j] @ dq + self.cols[j] @ coef

    def destroy(self) -> None:
        """Free the LU factors."""
        for lu in self.lu:
            lu.destroy()


class LinearisedOperator:
    """The linearised kinetic operator, its mass and its shifted inverse (see module doc).

    ``loc``: this rank's site pieces; ``coupling``: W, U, U_f over all S sites.
    """

    def __init__(self, loc: LinearisedSites, coupling: Coupling, sigma: float, comm):
        self.comm, self.sigma, self.loc, self.sites = comm, sigma, loc, loc.sites
        self.W, self.U, self.Uf = coupling.W, coupling.U, coupling.Uf
        S = self.W.shape[2]
        self.S = S
        self.nxi = self.Uf.shape[1]
        dF = _gather(comm, self.sites, self.loc.dF, (2, 2), S)
        gp = _gather(comm, self.sites, self.loc.gp, (4,), S)
        self.dF = dF
        H = coupling_jacobian(self.W, gp.T.reshape(2, 2, S))
        self.H = H
        Hr = self.U.T @ H @ self.U
        self.Hr_inv = np.linalg.inv(Hr)
        self.K = self._coefficient_map()
        # Q = Psi Abar^{-1} Ucal: per-site blocks and the free rows
        P = _gather(comm, self.sites, self.loc.blocks, (_SMALL, _COEF), S)
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


def eigenpairs(op, comm, count: int, target: float, tol: float):
    """SLEPc Krylov-Schur on the shell (L - sigma Mb)^{-1} Mb of ``op``: the converged pairs.

    Returns (lambdas, relative residuals, this rank's part of each eigenvector (complex)).
    """
    from petsc4py import PETSc
    from slepc4py import SLEPc

    n_local = op.local_size
    n_global = comm.allreduce(n_local)
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
    vr, vi = A.createVecs()
    lams, res, vecs = [], [], []
    for i in range(eps.getConverged()):
        theta = eps.getEigenpair(i, vr, vi)
        lam = target + 1.0 / theta
        x = vr.array_r + 1j * vi.array_r
        Lx = op.apply(x.real) + 1j * op.apply(x.imag)
        Mx = op.mass(x.real) + 1j * op.mass(x.imag)
        num = comm.allreduce(float(np.sum(np.abs(Lx - lam * Mx) ** 2)))
        den = comm.allreduce(float(np.sum(np.abs(Mx) ** 2)))
        lams.append(lam)
        res.append(np.sqrt(num / max(den, 1e-300)) / max(1.0, abs(lam)))
        vecs.append(x)
    for obj in (eps, A, vr, vi):
        obj.destroy()
    return np.array(lams, complex), np.array(res), vecs


def compute_spectrum(model, state, *, count: int = 10, target: float | None = None,
                     comm=None, vectors: bool = False, tol: float = 1e-12,
                     fourier: bool = True) -> Spectrum:
    """The ``count`` eigenvalues of the linearised kinetic limit nearest ``target``.

    A homogeneous state on a ring or torus with a translation-invariant kernel is solved
    mode by mode (:mod:`fpsolver.steady.fourier`, ``info["route"] = "fourier"``, the
    wavenumbers in ``Spectrum.modes``); any other state on the whole operator ("full").

    Args:
        model: the model.
        state: its stationary state (:func:`~fpsolver.steady.solve_steady`).
        count: eigenvalues wanted.
        target: the shift sigma (default: a small positive number, so the rightmost
            eigenvalues are the nearest; it must not be an eigenvalue of a site's operator).
        comm: communicator of the state.
        vectors: keep the eigenfunctions (densities per site, and dvbar).
        tol: SLEPc's relative tolerance.
        fourier: take the Fourier route when the state allows it (False: always full).
    """
    from mpi4py import MPI

    from fpsolver.steady.fourier import fourier_modes, fourier_spectrum

    comm = comm or MPI.COMM_WORLD
    start = time.perf_counter()
    if target is None:
        target = 1e-3 * max(1.0, float(np.abs(state.m).max()))
    target, mu = float(target), deflation(state)
    coupling = Coupling.of_model(model)
    S, nxi = model.n_sites, coupling.Uf.shape[1]
    count = max(1, min(count, S * state.space.n + nxi - 3 * S - 2))
    modes = fourier_modes(model, state, coupling, comm) if fourier else None
    if not fourier and comm.rank == 0:
        logger.info("spectrum: the full operator (the Fourier route is switched off)")
    if modes is not None:
        spec = fourier_spectrum(modes, state, count, target, mu, comm, vectors, tol)
    else:
        spec = _full_spectrum(state, coupling, count, target, mu, comm, vectors, tol)
    spec.info.update({"wall_time": time.perf_counter() - start, "deflation": mu,
                      "free_dimension": int(nxi)})
    return spec


def _full_spectrum(state, coupling, count, target, mu, comm, vectors, tol) -> Spectrum:
    """The spectrum of the whole operator (all sites, distributed as the state)."""
    loc = LinearisedSites.of_state(state, target, mu)
    op = LinearisedOperator(loc, coupling, target, comm)
    lams, res, vecs = eigenpairs(op, comm, count, target, tol)
    order = np.argsort(-lams.real, kind="stable")[:count]
    vec_out = dvbars = None
    if vectors:
        n = loc.n
        vec_out = {int(s): np.array([vecs[i][j * n:(j + 1) * n] for i in order])
                   for j, s in enumerate(op.sites)}
        dvbars = np.array([op.dvbar(vecs[i].real) + 1j * op.dvbar(vecs[i].imag)
                           for i in order])
    loc.destroy()
    info = {"route": "full", "converged": len(lams),
            "unknowns": int(comm.allreduce(op.local_size))}
    return Spectrum(eigenvalues=lams[order], target=target, residuals=res[order],
                    vectors=vec_out, dvbar=dvbars, info=info)
