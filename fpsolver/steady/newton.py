"""The stationary state of the kinetic limit by Newton's method on the coupled system.

Unknowns: at every site x the density q_x (in its frame, dofs), the mean drift
m_x = <F(vbar_x + .)>_x (2), a multiplier l_x, and the means vbar_x (2). Equations
(MODEL §2 with d_t p = 0):

    A(vbar_x, m_x) q_x + l_x w = 0          stationary Fokker-Planck (w: the mass functional)
    w . q_x = 1,   c . q_x = 0              mass 1 and mean 0
    U^T Phi(vbar, q) = 0                    balance along the range of the input (§2a)
    U_f^T m = 0                             the free part of vbar does not move: d vbar/dt
                                            = lambda + <F> with lambda in the range

(U_f spans the complement of the range U; empty for full-rank kernels.) Integrating the
first equation against y shows m_x = <F>_x at a solution, and the mean condition makes
the drift F - m exactly the kinetic one. l_x = 0 at a solution (w^T A = 0); it makes the
square site system regular.

Each Newton step factorises every site's bordered Jacobian once (sparse LU, site-local),
eliminates the site unknowns, and solves the small dense system in vbar (2 sites): the
exact Newton step of the whole coupled system. The frame ell_x is then set to the
solution's standard deviations and Newton repeated until Var(z) = 1 (as the kinetic
solver's moving frame converges at a steady state), so both use the same discretisation.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from fpsolver.balance import BalanceConstraint
from fpsolver.errors import BalanceError
from fpsolver.preflight import MAX_CACHED_FACTORS
from fpsolver.scenario import PAIRS
from fpsolver.steady.site import SiteSpace, params

__all__ = ["SteadyState", "solve_steady", "FRAME_TOL", "NEWTON_TOL"]

logger = logging.getLogger(__name__)

NEWTON_TOL = 1e-11   # relative Fokker-Planck residual and |Phi| at convergence
FRAME_TOL = 1e-4     # |Var(z) - 1| at which the frame is the density's own (the mesh scale: a
                     # 1e-4 change moves the discretisation error by ~1e-4 of itself)
MAX_NEWTON = 40
MAX_FRAMES = 8
_FRAME_START = 1e-3  # FP residual below which the frames are updated


@dataclass
class SteadyState:
    """A stationary state, identical on every rank except the densities.

    Attributes:
        vbar: (sites, 2) means; m: (sites, 2) <F>; ell: (sites, 2) frames.
        cov: (sites, 2, 2) covariances of y; skewness, kurtosis: (sites, 2).
        q: {site: dofs} the densities of this rank's sites (in their frames).
        space: the rank's :class:`SiteSpace`; sites: this rank's site indices.
        residuals: final residuals (fp relative, balance, mean, free drift).
        info: iterations, frame passes, wall time.
    """

    vbar: np.ndarray
    m: np.ndarray
    ell: np.ndarray
    cov: np.ndarray
    skewness: np.ndarray
    kurtosis: np.ndarray
    q: dict
    space: SiteSpace
    sites: np.ndarray
    residuals: dict
    min_relative: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def lam(self) -> np.ndarray:
        """The balance current lambda = -<F> at a stationary state (MODEL §2c)."""
        return -self.m


def _complement(U: np.ndarray) -> np.ndarray:
    from scipy.linalg import null_space

    return null_space(U.T) if U.shape[1] < U.shape[0] else np.zeros((U.shape[0], 0))


class _Sites:
    """The site-local part of one Newton step (this rank's sites)."""

    def __init__(self, space: SiteSpace, sites: np.ndarray):
        self.space, self.sites = space, sites
        self._lu = {}  # local site -> factors (the pattern repeats: refactorisations)

    def linearise(self, q, m, l, vbar, ell, extra=None):
        """Residuals, eliminated Newton updates and sensitivities of every local site.

        Returns dict of arrays over local sites: ``a`` (updates of (q, m, l) at fixed
        vbar), ``S`` (their derivative in vbar_x), gains and their sensitivities, and the
        relative residual. ``extra``: per site a residual derivative (n + 3,) whose
        eliminated response -J^{-1} r' is returned as ``X`` (a parameter's derivative).
        """
        from scipy import sparse

        from fpsolver.steady.lu import SparseLU

        sp = self.space
        w, c = sp.mass, sp.mean
        out = {"G": [], "dG0": [], "dGdv": [], "a_m": [], "S_m": [], "res": [],
               "mean_res": [], "a": [], "S": [], "Gp": [], "X": []}
        for j in range(len(self.sites)):
            P = params(vbar[j], m[j], ell[j])
            A = sp.matrix(P)
            Bm = sp.d_mean_drift(P)
            Dv = sp.d_vbar(P)
            Bq = np.column_stack([B @ q[j] for B in Bm])
            Dq = np.column_stack([D @ q[j] for D in Dv])
            J = sparse.bmat([[A, sparse.csr_matrix(Bq), sparse.csr_matrix(w[:, None])],
                             [sparse.csr_matrix(w[None, :]), None, None],
                             [sparse.csr_matrix(c.T), None, None]], format="csr")
            r = np.concatenate([A @ q[j] + l[j] * w, [w @ q[j] - 1.0], c.T @ q[j]])
            scale = abs(A).max() * max(np.abs(q[j]).max(), 1e-300)
            out["res"].append(np.abs(r[:-3]).max() / scale)
            out["mean_res"].append(np.abs(r[-3:]).max())
            if j in self._lu:
                lu = self._lu[j].refactor(J)
            else:
                lu = SparseLU(J)
                if len(self._lu) < MAX_CACHED_FACTORS:  # memory: see fpsolver.preflight
                    self._lu[j] = lu
            cols = [r[:, None], np.concatenate([Dq, np.zeros((3, 2))])]
            if extra is not None:
                cols.append(extra[j][:, None])
            sol = -lu.solve(np.hstack(cols))
            if self._lu.get(j) is not lu:
                lu.destroy()
            a, S = sol[:, 0], sol[:, 1:3]
            if extra is not None:
                out["X"].append(sol[:, 3])
            n = sp.n
            g4, gp4 = sp.gain_functionals(vbar[j], ell[j])
            G = g4 @ q[j]
            Gp = gp4 @ q[j]
            dGdv = g4 @ S[:n]                                  # (4, 2): via the density
            for k, ab in enumerate(PAIRS):
                dGdv[k, "ei".index(ab[1])] += Gp[k]             # the direct dependence
            out["G"].append(G)
            out["Gp"].append(Gp)
            out["dG0"].append(g4 @ a[:n])
            out["dGdv"].append(dGdv)
            out["a_m"].append(a[n:n + 2])
            out["S_m"].append(S[n:n + 2])
            out["a"].append(a)
            out["S"].append(S)
        return out


def _gather(comm, local_sites, values, shape, n_sites):
    """Full (sites, *shape) array from per-site values of every rank (sum-reduce)."""
    from mpi4py import MPI

    full = np.zeros((n_sites,) + shape)
    for j, s in enumerate(local_sites):
        full[s] = values[j]
    out = np.zeros_like(full)
    comm.Allreduce(full, out, op=MPI.SUM)
    return out


def _closure_guess(model, numerics):
    """vbar, ell and m from the Gaussian closure at its stationary covariance.

    The drift is linearised by its mean Jacobian over N(0, K0); Lyapunov gives the
    stationary K (K0 where the linearisation is not contracting).
    """
    from fpsolver.gaussian import gaussian_expectations
    from fpsolver.kinetic.numerics import _closure, _diffusion

    vbar, Jn, Z, W = _closure(model)
    Jm = np.einsum("smgc,m->sgc", Jn, W)
    D = np.einsum("smg,m->sg", _diffusion(model, vbar, Z), W)
    K0 = np.array(model.scenario.initial.cov, float)
    eye = np.eye(2)
    var = np.empty((model.n_sites, 2))
    for j, (Jj, Dj) in enumerate(zip(Jm, D)):
        if np.linalg.eigvals(Jj).real.max() < 0:
            L = np.kron(eye, Jj) + np.kron(Jj, eye)
            var[j] = np.diag(np.linalg.solve(L, -np.diag(Dj).ravel()).reshape(2, 2))
        else:
            var[j] = np.diag(K0)
    var = np.clip(var, 1e-12, None)
    K = np.diag(np.median(var, axis=0))
    constraint = BalanceConstraint(model)
    try:
        vbar, _ = constraint.solve(lambda v: gaussian_expectations(model, v, K), vbar,
                                   where=" (steady initial guess)")
    except BalanceError:
        pass  # keep the t = 0 means: Newton on the kinetic system decides
    return vbar, np.sqrt(var)


def solve_steady(model, *, numerics=None, comm=None, guess=None, tol: float = NEWTON_TOL,
                 frame_tol: float = FRAME_TOL, refine: bool = True) -> SteadyState:
    """The stationary state of the kinetic limit of ``model`` (MODEL §2, d_t p = 0).

    Args:
        model: the model.
        numerics: resolved kinetic numerics (default from the scenario).
        comm: communicator; sites are split over its ranks in contiguous blocks.
        guess: optional :class:`SteadyState` to start from (continuation); its space is
            reused when ``numerics`` is not given.
        tol: Newton tolerance (relative FP residual, |Phi|, |U_f^T <F>|, mass and mean).
        frame_tol: the frames are the densities' own when |Var(z) - 1| is below this.
        refine: double the cells along an axis whose cell Peclet number exceeds
            :data:`~fpsolver.kinetic.stepper.PECLET_MAX` when the density oscillates
            (as the kinetic solver does), up to its dof limit.

    Raises:
        BalanceError: Newton did not converge (with the residuals and the fix).
    """
    from mpi4py import MPI

    from fpsolver.kinetic.numerics import resolve_numerics

    comm = comm or MPI.COMM_WORLD
    start = time.perf_counter()
    if numerics is None and guess is not None:
        numerics, space = guess.space.numerics, guess.space
    else:
        numerics = numerics or resolve_numerics(model)
        space = SiteSpace(model, numerics)
    mine = np.array_split(np.arange(model.n_sites), comm.size)[comm.rank]
    if guess is None:
        vbar, ell = _closure_guess(model, numerics)
        m = None
    else:
        vbar, ell, m = guess.vbar.copy(), guess.ell.copy(), guess.m.copy()
    q = ({int(s): guess.q[int(s)].copy() for s in mine}
         if guess is not None and guess.space is space else None)
    refinements, passes = [], []
    while True:
        state = _newton(model, space, comm, mine, vbar, ell, m, q, tol, frame_tol)
        passes.append(state.info["newton_iterations"])
        if not refine:
            break
        cells = _refined_cells(comm, state, model)
        if cells is None:
            break
        refinements.append(list(cells))
        numerics.cells = cells
        space = SiteSpace(model, numerics)
        vbar, ell, m, q = state.vbar, state.ell, state.m, None
    state.info.update({"wall_time": time.perf_counter() - start, "ranks": comm.size,
                       "refinements": refinements, "newton_per_mesh": passes,
                       **numerics.to_dict()})
    check_density(state, comm)
    return state


def check_density(state, comm) -> None:
    """Refuse a stationary state whose densities are not densities; warn on undershoot.

    Thresholds of the kinetic solver (:mod:`fpsolver.kinetic.health`): min/peak below
    -1e-3 stops, below -1e-6 warns; a non-positive or non-finite variance stops.
    """
    from fpsolver.errors import FpsolverError
    from fpsolver.kinetic.health import NEGATIVE_STOP, NEGATIVE_WARN

    worst = float(state.min_relative.min())
    var = np.stack([state.cov[:, 0, 0], state.cov[:, 1, 1]], 1)
    if not np.isfinite(var).all() or var.min() <= 0 or worst < -NEGATIVE_STOP:
        site = int(np.argmin(state.min_relative))
        raise FpsolverError(
            f"the stationary density is not a density at site {site} (min/peak {worst:.2e}, "
            f"variances {var[site].round(6).tolist()}) -- fix: raise kinetic.cells, or "
            "check with `fpsolver kinetic` that the scenario settles")
    if worst < -NEGATIVE_WARN and comm.rank == 0:
        logger.warning("steady: the density undershoots (min/peak %.2e below -%g): raise "
                       "kinetic.cells for a cleaner result", worst, NEGATIVE_WARN)


def _refined_cells(comm, state, model):
    """Cells doubled along the axes that oscillate with cell Peclet > PECLET_MAX, or None."""
    from mpi4py import MPI

    from fpsolver.kinetic.meshing import node_spacing
    from fpsolver.kinetic.stepper import _SIGNIFICANT, MAX_DOFS, OSCILLATION, PECLET_MAX

    if state.min_relative.min() >= -OSCILLATION:
        return None
    sp = state.space
    num = sp.numerics
    X = sp.V.tabulate_dof_coordinates()[:, :2]
    h = node_spacing(sp.smesh, num.cells, num.grading, num.degree, X,
                     sp.quad.cell_size_min())
    local = np.zeros(2)
    for s in state.sites:
        P = params(state.vbar[s], state.m[s], state.ell[s])
        b, D = sp.operator.coefficients(P, X)
        q = state.q[int(s)]
        with np.errstate(divide="ignore", invalid="ignore"):
            pe = np.abs(b[0]) * h / (0.5 * D[0])
        big = q > _SIGNIFICANT * q.max()
        pe = np.where(big[:, None] & np.isfinite(pe), pe, 0.0)
        local = np.maximum(local, pe.max(axis=0))
    pe = np.empty(2)
    comm.Allreduce(local, pe, op=MPI.MAX)
    cells = [c * 2 if p > PECLET_MAX else c for c, p in zip(num.cells, pe)]
    dofs = (num.degree * cells[0] + 1) * (num.degree * cells[1] + 1) * model.n_sites
    if tuple(cells) == tuple(num.cells) or dofs > MAX_DOFS or sp.smesh.kind != "box":
        if comm.rank == 0:
            logger.warning("steady: the density oscillates (min/peak %.2e) and the mesh "
                           "cannot be refined (cell Peclet %.3g) -- fix: raise kinetic.cells",
                           state.min_relative.min(), pe.max())
        return None
    if comm.rank == 0:
        logger.info("steady: cell Peclet %.3g > %g, cells -> %s", pe.max(), PECLET_MAX,
                    tuple(cells))
    return tuple(cells)


def _newton(model, space, comm, mine, vbar, ell, m, q, tol, frame_tol) -> SteadyState:
    """Newton on the coupled system at fixed mesh, with the frames updated on the way."""
    from mpi4py import MPI

    S = model.n_sites
    constraint = BalanceConstraint(model)
    U = constraint.U
    Uf = _complement(U)
    Wc = constraint.W  # W[a, b, j, k]
    vbar, ell = vbar.copy(), ell.copy()
    if q is None:
        q = {int(s): space.gaussian.copy() for s in mine}
    if m is None:
        m = np.zeros((S, 2))
        for s in mine:
            m[s] = space.drift(vbar[s], ell[s])[0].T @ q[int(s)]
        m = _gather(comm, mine, m[mine], (2,), S)
    l_mult = {int(s): 0.0 for s in mine}
    local = _Sites(space, mine)
    its, frames, framed = 0, 0, False
    while True:
        lin = local.linearise([q[int(s)] for s in mine], m[mine],
                              [l_mult[int(s)] for s in mine], vbar[mine], ell[mine])
        G = _gather(comm, mine, lin["G"], (4,), S)
        dG0 = _gather(comm, mine, lin["dG0"], (4,), S)
        dGdv = _gather(comm, mine, lin["dGdv"], (4, 2), S)
        a_m = _gather(comm, mine, lin["a_m"], (2,), S)
        S_m = _gather(comm, mine, lin["S_m"], (2, 2), S)
        res = comm.allreduce(max(lin["res"], default=0.0), op=MPI.MAX)
        mres = comm.allreduce(max(lin["mean_res"], default=0.0), op=MPI.MAX)
        g = G.T.reshape(2, 2, S)                       # g[a, b, k]
        phi = constraint.residual(g)                   # (S, 2)
        bal = np.abs(constraint.project(phi)).max()
        free = np.abs(Uf.T @ m.T.ravel()).max() if Uf.shape[1] else 0.0
        var = _gather(comm, mine, [space.variances(q[int(s)]) for s in mine], (2,), S)
        drift = float(np.abs(var - 1.0).max())
        if comm.rank == 0:
            logger.debug("steady Newton %d: fp %.2e balance %.2e free %.2e mean %.2e "
                         "frame %.2e", its, res, bal, free, mres, drift)
        converged = (res <= tol and bal <= max(tol, constraint.roundoff(g)) and free <= tol
                     and mres <= tol)
        if converged and (drift <= frame_tol or frames >= MAX_FRAMES):
            break
        if its >= MAX_NEWTON or not np.isfinite([res, bal, free, mres]).all():
            raise BalanceError(
                f"no stationary state found: Newton stopped after {its} iterations with "
                f"Fokker-Planck residual {res:.2e}, |Phi| {bal:.2e}, free drift "
                f"{free:.2e} -- fix: check the balanced state with `fpsolver stability`, "
                "and run `fpsolver kinetic` to see where the densities go (they may "
                "oscillate or drift instead of settling)")
        dv = _vbar_step(S, Wc, U, Uf, dGdv, dG0, phi, m, a_m, S_m)
        n = space.n
        for j, s in enumerate(mine):
            upd = lin["a"][j] + lin["S"][j] @ dv[s]
            q[int(s)] = q[int(s)] + upd[:n]
            l_mult[int(s)] += upd[n + 2]
        m = m + a_m + np.einsum("kac,kc->ka", S_m, dv)
        vbar = vbar + dv
        its += 1
        if (res <= _FRAME_START and drift > frame_tol and frames < MAX_FRAMES
                and not framed):
            # the density's own scale, with the Newton step; q's dofs stay the guess (the
            # problem is linear in q). Not at the next step: its var is of the old frame.
            ell = ell * np.sqrt(var)
            frames += 1
            framed = True
        else:
            framed = False
    info = {"newton_iterations": its, "frame_passes": frames, "frame_drift": drift,
            "dofs": int(space.n)}
    residuals = {"fokker_planck": float(res), "balance": float(bal), "free_drift": float(free),
                 "mass_mean": float(mres)}
    return make_state(comm, space, mine, vbar, m, ell, q, residuals, info)


def make_state(comm, space, mine, vbar, m, ell, q, residuals, info) -> SteadyState:
    """A :class:`SteadyState` with its statistics (collective)."""
    stats = _statistics(comm, space, mine, q, ell, len(vbar))
    return SteadyState(vbar=vbar, m=m, ell=ell, q=q, space=space, sites=mine,
                       residuals=residuals, info=info, **stats)


def _vbar_step(S, Wc, U, Uf, dGdv, dG0, phi, m, a_m, S_m) -> np.ndarray:
    """The Newton update of vbar (sites, 2) with the site unknowns eliminated."""
    dG = dGdv.reshape(S, 2, 2, 2)                  # [k, a, b, c]
    Jv = np.einsum("abjk,kabc->ajck", Wc, dG).reshape(2 * S, 2 * S)
    rhs = phi + np.einsum("abjk,kab->ja", Wc, dG0.reshape(S, 2, 2))
    rows, rhs_rows = [U.T @ Jv], [-(U.T @ rhs.T.ravel())]
    if Uf.shape[1]:
        Sm = np.zeros((2 * S, 2 * S))
        for a in range(2):
            for c in range(2):
                Sm[a * S:(a + 1) * S, c * S:(c + 1) * S] = np.diag(S_m[:, a, c])
        rows.append(Uf.T @ Sm)
        rhs_rows.append(-(Uf.T @ (m + a_m).T.ravel()))
    try:
        dv = np.linalg.solve(np.vstack(rows), np.concatenate(rhs_rows))
    except np.linalg.LinAlgError as exc:
        raise BalanceError("the stationary state is not isolated (singular Newton matrix): "
                           "a fold of the branch, or a degenerate kernel -- fix: move the "
                           "parameter slightly") from exc
    return dv.reshape(2, S).T


def _statistics(comm, space, mine, q, ell, S):
    """cov, skewness, kurtosis, min/peak of every site's density (gathered)."""
    from fpsolver.families import monomials

    idx = {mn: r for r, mn in enumerate(monomials(4))}
    cov, skew, kurt, lo = [], [], [], []
    for s in mine:
        raw = space.moments @ q[int(s)]
        raw = raw / raw[0]
        e = ell[s]
        c = np.array([[raw[idx[2, 0]] * e[0] ** 2, raw[idx[1, 1]] * e[0] * e[1]],
                      [raw[idx[1, 1]] * e[0] * e[1], raw[idx[0, 2]] * e[1] ** 2]])
        var_z = np.array([raw[idx[2, 0]], raw[idx[0, 2]]])
        m3 = np.array([raw[idx[3, 0]], raw[idx[0, 3]]])
        m4 = np.array([raw[idx[4, 0]], raw[idx[0, 4]]])
        cov.append(c)
        skew.append(m3 / var_z ** 1.5)
        kurt.append(m4 / var_z ** 2)
        lo.append([q[int(s)].min() / q[int(s)].max()])
    return {"cov": _gather(comm, mine, cov, (2, 2), S),
            "skewness": _gather(comm, mine, skew, (2,), S),
            "kurtosis": _gather(comm, mine, kurt, (2,), S),
            "min_relative": _gather(comm, mine, lo, (1,), S)[:, 0]}
