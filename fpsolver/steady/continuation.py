"""Branches of stationary states as a parameter moves: pseudo-arclength continuation.

The stationary system of :mod:`fpsolver.steady.newton` is G(u, p) = 0 with u = (site
densities, <F>, multipliers, vbar) and a scalar parameter p (any numeric scenario
field). Eliminating the site unknowns as Newton does leaves a reduced system in
(vbar, p); its tangent t (null vector of the reduced Jacobian [G_v  G_p], oriented along
the branch) and the arclength condition

    t . ((vbar, p / p_scale) - (vbar_k, p_k / p_scale)) = ds

make the corrector regular through folds. dG/dp is a central difference of the residuals
in p (the model rebuilt at p +- h). Step sizes adapt to the corrector's iterations.

At every point: the slow spectrum (leading eigenvalues of the linearised kinetic limit,
:mod:`fpsolver.steady.spectrum`) and the fast one (eigenvalues of the balance Jacobian
U^T DPhi U with the densities frozen, MODEL §4). A point is stable when both lie in the
open left half-plane. Special points, located by bisection in the arclength to
``locate_tol`` in p:

- ``fold`` (saddle-node): the tangent's p-component changes sign;
- ``hopf``: a complex pair of the slow spectrum crosses the imaginary axis;
- ``fast-fold`` / ``fast-hopf``: a real / complex fast eigenvalue crosses it (the balance
  itself is lost, on the sqrt(n) time scale; a fast Hopf's frequency w is in units of
  the fast time, i.e. sqrt(n) w per unit time).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from fpsolver.balance import BalanceConstraint
from fpsolver.errors import BalanceError
from fpsolver.steady.newton import (
    NEWTON_TOL,
    _complement,
    _gather,
    _Sites,
    make_state,
    solve_steady,
)
from fpsolver.steady.site import params

__all__ = ["Branch", "continue_branch"]

logger = logging.getLogger(__name__)

MAX_CORRECTOR = 12
_GOOD = 4            # corrector iterations at or below which the step grows
_IMAG = 1e-8         # |Im lambda| above which an eigenvalue counts as complex


@dataclass
class Branch:
    """Points of a branch (in order) and its special points."""

    p: list = field(default_factory=list)
    vbar: list = field(default_factory=list)
    cov: list = field(default_factory=list)
    slow: list = field(default_factory=list)     # leading eigenvalues (complex)
    fast: list = field(default_factory=list)     # fast eigenvalues (complex)
    tangent_p: list = field(default_factory=list)
    special: list = field(default_factory=list)  # dicts: kind, p, index, vbar
    info: dict = field(default_factory=dict)

    def stable(self) -> np.ndarray:
        """Whether each point is stable on both time scales."""
        return np.array([s.real.max() < 0 and f.real.max() < 0
                         for s, f in zip(self.slow, self.fast)])


class _Point:
    """A converged point: its unknowns (this rank's densities), tangent and spectra."""

    def __init__(self, p, vbar, m, ell, q, l_mult, tangent, state):
        self.p, self.vbar, self.m, self.ell, self.q, self.l = p, vbar, m, ell, q, l_mult
        self.tangent, self.state = tangent, state
        self.slow = self.fast = None


class _Continuation:
    def __init__(self, model_at, space, comm, p_scale, tol, count):
        self.model_at, self.space0, self.comm = model_at, space, comm
        self.p_scale, self.tol, self.count = p_scale, tol, count
        self.S = space.model.n_sites
        self.mine = np.array_split(np.arange(self.S), comm.size)[comm.rank]
        self.h = 1e-6 * p_scale

    def _space(self, p):
        model = self.model_at(p)
        return model, self.space0.for_model(model)

    def _linearise(self, p, vbar, m, ell, q, l_mult):
        """Residuals and the reduced Jacobian [G_v  G_p] (with right-hand side) at a point."""
        comm, mine, S = self.comm, self.mine, self.S
        model, sp = self._space(p)
        model_p, sp_p = self._space(p + self.h)
        model_m, sp_m = self._space(p - self.h)
        extra, dG_direct = [], []
        for j, s in enumerate(mine):
            P = params(vbar[s], m[s], ell[s])
            dA = (sp_p.matrix(P) - sp_m.matrix(P)) @ q[int(s)] / (2 * self.h)
            extra.append(np.concatenate([dA, np.zeros(3)]))
            gp_, _ = sp_p.gain_functionals(vbar[s], ell[s])
            gm_, _ = sp_m.gain_functionals(vbar[s], ell[s])
            dG_direct.append((gp_ - gm_) @ q[int(s)] / (2 * self.h))
        lin = _Sites(sp, mine).linearise([q[int(s)] for s in mine], m[mine],
                                         [l_mult[int(s)] for s in mine], vbar[mine],
                                         ell[mine], extra=extra)
        n = sp.n
        G = _gather(comm, mine, lin["G"], (4,), S)
        Gp = _gather(comm, mine, lin["Gp"], (4,), S)
        dG0 = _gather(comm, mine, lin["dG0"], (4,), S)
        dGdv = _gather(comm, mine, lin["dGdv"], (4, 2), S)
        # the parameter's effect on <G>: direct and through the densities
        g4_T = [sp.gain_functionals(vbar[s], ell[s])[0] @ lin["X"][j][:n]
                for j, s in enumerate(mine)]
        dGdp = (_gather(comm, mine, dG_direct, (4,), S) + _gather(comm, mine, g4_T, (4,), S))
        a_m = _gather(comm, mine, lin["a_m"], (2,), S)
        S_m = _gather(comm, mine, lin["S_m"], (2, 2), S)
        T_m = _gather(comm, mine, [x[n:n + 2] for x in lin["X"]], (2,), S)
        c = BalanceConstraint(model)
        cp, cm = BalanceConstraint(model_p), BalanceConstraint(model_m)
        g = G.T.reshape(2, 2, S)
        phi = c.residual(g)
        dphi_p = (cp.residual(g) - cm.residual(g)) / (2 * self.h)   # inputs and kernels
        U, Uf, Wc = c.U, _complement(c.U), c.W
        dG = dGdv.reshape(S, 2, 2, 2)
        Jv = np.einsum("abjk,kabc->ajck", Wc, dG).reshape(2 * S, 2 * S)
        Jp = (dphi_p + np.einsum("abjk,kab->ja", Wc, dGdp.reshape(S, 2, 2))).T.ravel()
        rhs = (phi + np.einsum("abjk,kab->ja", Wc, dG0.reshape(S, 2, 2))).T.ravel()
        rows = [np.hstack([U.T @ Jv, (U.T @ Jp)[:, None]])]
        right = [-(U.T @ rhs)]
        if Uf.shape[1]:
            Sm = np.zeros((2 * S, 2 * S))
            for a in range(2):
                for cc in range(2):
                    Sm[a * S:(a + 1) * S, cc * S:(cc + 1) * S] = np.diag(S_m[:, a, cc])
            rows.append(np.hstack([Uf.T @ Sm, (Uf.T @ T_m.T.ravel())[:, None]]))
            right.append(-(Uf.T @ (m + a_m).T.ravel()))
        red = np.vstack(rows)
        red[:, -1] *= self.p_scale   # unknown p / p_scale
        res = comm.allreduce(max(lin["res"], default=0.0), op=_mpi_max())
        mres = comm.allreduce(max(lin["mean_res"], default=0.0), op=_mpi_max())
        bal = np.abs(c.project(phi)).max()
        free = np.abs(Uf.T @ m.T.ravel()).max() if Uf.shape[1] else 0.0
        ok = (res <= self.tol and bal <= max(self.tol, c.roundoff(g)) and free <= self.tol
              and mres <= self.tol)
        fast = np.linalg.eigvals(c.reduced_jacobian(Gp.T.reshape(2, 2, S)))
        return dict(lin=lin, red=red, right=np.concatenate(right), a_m=a_m, S_m=S_m,
                    T_m=T_m, ok=ok, fast=fast, sp=sp, model=model,
                    residuals={"fokker_planck": float(res), "balance": float(bal),
                               "free_drift": float(free), "mass_mean": float(mres)})

    def _update(self, L, dv, dp, vbar, m, q, l_mult):
        n = L["sp"].n
        for j, s in enumerate(self.mine):
            upd = L["lin"]["a"][j] + L["lin"]["S"][j] @ dv[s] + L["lin"]["X"][j] * dp
            q[int(s)] = q[int(s)] + upd[:n]
            l_mult[int(s)] += upd[n + 2]
        m = m + L["a_m"] + np.einsum("kac,kc->ka", L["S_m"], dv) + L["T_m"] * dp
        return vbar + dv, m

    @staticmethod
    def _tangent(red: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
        """Unit null vector of the reduced Jacobian, oriented like ``previous``."""
        _, _, vt = np.linalg.svd(red)
        t = vt[-1]
        if previous is not None and t @ previous < 0:
            t = -t
        return t

    def point(self, p, vbar, m, ell, q, l_mult, previous_tangent, slow=True) -> _Point:
        """Finish a converged point: tangent, spectra (the slow one if ``slow``), state."""
        L = self._linearise(p, vbar, m, ell, q, l_mult)
        t = self._tangent(L["red"], previous_tangent)
        state = make_state(self.comm, L["sp"], self.mine, vbar, m, ell, q, L["residuals"],
                           {})
        pt = _Point(p, vbar, m, ell, q, l_mult, t, state)
        pt.fast = L["fast"]
        pt.slow = self._slow(L["model"], state) if slow else None
        return pt

    def _slow(self, model, state):
        from fpsolver.steady.spectrum import compute_spectrum

        spec = compute_spectrum(model, state, count=self.count, comm=self.comm)
        return spec.eigenvalues

    def _densities_ok(self, q, sp) -> bool:
        """Positive, finite variances and min/peak above -1e-3 at every site (collective)."""
        from fpsolver.kinetic.health import NEGATIVE_STOP

        bad = 0
        for s in self.mine:
            v = sp.variances(q[int(s)])
            qs = q[int(s)]
            if not (np.isfinite(v).all() and v.min() > 0
                    and qs.min() >= -NEGATIVE_STOP * qs.max()):
                bad = 1
        return not self.comm.allreduce(bad)

    def correct(self, base: _Point, ds: float):
        """Corrector from ``base`` along its tangent by arclength ``ds``; None if it fails."""
        S = self.S
        t = base.tangent
        v0 = base.vbar.T.ravel()
        x0 = np.concatenate([v0, [base.p / self.p_scale]])
        x = x0 + ds * t
        vbar = x[:-1].reshape(2, S).T.copy()
        p = x[-1] * self.p_scale
        m, ell = base.m.copy(), base.ell.copy()
        q = {k: v.copy() for k, v in base.q.items()}
        l_mult = dict(base.l)
        for it in range(MAX_CORRECTOR):
            try:
                L = self._linearise(p, vbar, m, ell, q, l_mult)
            except (BalanceError, RuntimeError, np.linalg.LinAlgError, ValueError):
                return None, it
            arc = t @ (np.concatenate([vbar.T.ravel(), [p / self.p_scale]]) - x0) - ds
            if L["ok"] and abs(arc) <= 1e-10 * max(1.0, abs(ds)):
                if not self._densities_ok(q, L["sp"]):
                    return None, it   # converged to something that is not a density
                return (p, vbar, m, ell, q, l_mult), it
            A = np.vstack([L["red"], t[None, :]])
            b = np.concatenate([L["right"], [-arc]])
            try:
                dx = np.linalg.solve(A, b)
            except np.linalg.LinAlgError:
                return None, it
            if not np.isfinite(dx).all():
                return None, it
            dv = dx[:-1].reshape(2, S).T
            dp = dx[-1] * self.p_scale
            vbar, m = self._update(L, dv, dp, vbar, m, q, l_mult)
            p = p + dp
        return None, MAX_CORRECTOR


def _mpi_max():
    from mpi4py import MPI
    return MPI.MAX


def _crossings(a: _Point, b: _Point) -> list[str]:
    """Special points between two consecutive points."""
    out = []
    if a.tangent[-1] * b.tangent[-1] < 0:
        out.append("fold")
    for kind, ea, eb in (("hopf", a.slow, b.slow), ("fast", a.fast, b.fast)):
        ra, rb = ea.real.max(), eb.real.max()
        if (ra < 0) != (rb < 0):
            lead = eb[np.argmax(eb.real)] if rb >= 0 else ea[np.argmax(ea.real)]
            complex_ = abs(lead.imag) > _IMAG
            if kind == "hopf":
                if complex_:
                    out.append("hopf")
                elif "fold" not in out:
                    out.append("slow-real-crossing")
            elif not (complex_ or "fold" in out):   # a fold is where the balance turns
                out.append("fast-fold")
            elif complex_:
                out.append("fast-hopf")
    return out


def _indicator(kind: str, pt: _Point) -> float:
    """A continuous function of the point that changes sign at the special point."""
    if kind == "fold":
        return pt.tangent[-1]
    if kind in ("hopf", "slow-real-crossing"):
        return pt.slow.real.max()
    return pt.fast.real.max()


def continue_branch(model_at: Callable, p_from: float, p_to: float, *, comm=None,
                    numerics=None, count: int = 4, ds: float | None = None,
                    max_points: int = 400, ds_max: float = 0.1, tol: float = NEWTON_TOL,
                    locate_tol: float = 1e-8, progress: Callable | None = None) -> Branch:
    """Continue the stationary state of ``model_at(p)`` from ``p_from`` towards ``p_to``.

    Args:
        model_at: parameter -> :class:`~fpsolver.model.Model`.
        p_from: start of the parameter range.
        p_to: its end (the branch may fold back; continuation stops when p leaves the
            range or after ``max_points``).
        comm: communicator (sites split over ranks).
        numerics: kinetic numerics of the mesh (default: the start model's, with the
            spectrum's box for ``count`` eigenvalues).
        count: leading slow eigenvalues computed at every point.
        ds: first arclength step (default 0.02; arclength in (vbar, p / range)).
        max_points: points at most.
        ds_max: largest arclength step.
        tol: Newton tolerance of every point.
        locate_tol: special points are located to this (relative to the range) in p.
        progress: ``callable(point_index, p)`` after each point.
    """
    from mpi4py import MPI

    from fpsolver.steady.run import _numerics

    comm = comm or MPI.COMM_WORLD
    start = time.perf_counter()
    model0 = model_at(p_from)
    numerics = numerics or _numerics(model0, count)
    first = solve_steady(model0, numerics=numerics, comm=comm, tol=tol)
    span = abs(p_to - p_from)
    if not span:
        raise ValueError("p_from and p_to must differ")
    cont = _Continuation(model_at, first.space, comm, span, tol, count)
    direction = np.sign(p_to - p_from)
    lo, hi = min(p_from, p_to), max(p_from, p_to)
    l0 = {int(s): 0.0 for s in cont.mine}
    guess_t = np.zeros(2 * cont.S + 1)
    guess_t[-1] = direction
    pt = cont.point(p_from, first.vbar, first.m, first.ell, dict(first.q), l0, guess_t)
    branch = Branch()
    _append(branch, pt)
    ds = ds or 0.02
    ds_min = 1e-6
    points = [pt]
    while len(points) < max_points:
        base = points[-1]
        sol, its = cont.correct(base, ds)
        if sol is None:
            ds /= 2
            if ds < ds_min:
                branch.info["stopped"] = (f"the corrector failed at p = {base.p:.8g} even "
                                          f"with step {ds:.1e} (no stationary density "
                                          "nearby, or the mesh no longer resolves it)")
                if comm.rank == 0:
                    logger.warning("continue: %s", branch.info["stopped"])
                break
            continue
        new = cont.point(*sol, base.tangent)
        for kind in _crossings(base, new):
            branch.special.append(_locate(cont, base, new, ds, kind, locate_tol, span))
        points.append(new)
        _append(branch, new)
        if progress is not None:
            progress(len(points) - 1, new.p)
        if not lo - 1e-12 * span <= new.p <= hi + 1e-12 * span:
            break
        if its <= _GOOD:
            ds = min(ds * 1.5, ds_max)
        # the frames follow the densities' scales along the branch
        var = _gather(comm, cont.mine, [cont.space0.variances(new.q[int(s)])
                                        for s in cont.mine], (2,), cont.S)
        if np.abs(var - 1).max() > 1e-2:
            new.ell = new.ell * np.sqrt(var)
    branch.info.update({"points": len(points), "wall_time": time.perf_counter() - start,
                        **numerics.to_dict()})
    return branch


def _append(branch: Branch, pt: _Point) -> None:
    branch.p.append(pt.p)
    branch.vbar.append(pt.vbar.copy())
    branch.cov.append(pt.state.cov.copy())
    branch.slow.append(np.asarray(pt.slow))
    branch.fast.append(np.asarray(pt.fast))
    branch.tangent_p.append(float(pt.tangent[-1]))


def _locate(cont, a: _Point, b: _Point, ds: float, kind: str, tol: float, span) -> dict:
    """Bisection in the arclength from ``a`` for the sign change of the indicator."""
    fa = _indicator(kind, a)
    lo_s, hi_s = 0.0, ds
    best = b
    for _ in range(60):
        mid = 0.5 * (lo_s + hi_s)
        sol, _ = cont.correct(a, mid)
        if sol is None:
            break
        pt = cont.point(*sol, a.tangent, slow=kind in ("hopf", "slow-real-crossing"))
        best = pt
        if (_indicator(kind, pt) < 0) == (fa < 0):
            lo_s = mid
        else:
            hi_s = mid
        if (hi_s - lo_s) * max(abs(a.tangent[-1]), 1e-3) * span < tol * span \
                or hi_s - lo_s < 1e-12:
            break
    if best.slow is None:
        best.slow = cont._slow(cont.model_at(best.p), best.state)
    values = {"hopf": best.slow, "fast-hopf": best.fast}.get(kind)
    lead = values[np.argmax(values.real)] if values is not None else None
    return {"kind": kind, "p": float(best.p), "vbar": best.vbar.tolist(),
            "frequency": float(abs(lead.imag)) if lead is not None else None,
            "bracket": float((hi_s - lo_s) * span)}
