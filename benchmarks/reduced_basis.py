"""Reduced basis for the sheet's site densities: is 0.2 ms per site-step at K 1e-5 in reach?

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/reduced_basis.py \
        [--quick] [--sites 8] [--t-end 5] [--stride 8]

A measurement for issue 11 point 2, not a solver. Every site j carries a density q_j in
its own frame (z = y / ell_j, :mod:`fpsolver.kinetic.operator`) on one shared P2 mesh;
the semi-discrete equation is M dq_j/dt = A(P_j) q_j with the affine operator
A(P) = sum_k s_k(P) A_k (fixed sparse A_k, per-site scalars s_k of the 8 site parameters
P = (vbar, m, ell, d ell/dt)). The figures:

1. **Full run.** :class:`~fpsolver.kinetic.stepper.KineticStepper` on the ``sheet`` with
   ``space.sites = side`` (side x side torus) to ``t_end``, with the solver's adaptive
   steps (:class:`~fpsolver.kinetic.timestep.StepControl`; no error-estimate companions,
   so the step sequence differs slightly from ``fpsolver kinetic``). Recorded at every
   step n: t_n, P_j^n, K_j^n, <F>_j^n; the densities q_j^n of all sites every
   ``stride`` steps. Sites with identical parameter trajectories (the input varies
   along x_1 only: a site's whole column shares its trajectory) form one *class*; the
   errors are measured on one site per class.
2. **POD in L2(M).** Snapshot matrix Y (columns q_j^n). With Y = U S V^T (Euclidean,
   built hierarchically block by block, truncated at 1e-13) and U^T M U = L L^T, the
   M-weighted singular values are those of L^T S and the basis Phi = U L^-T U_W is
   M-orthonormal (Phi^T M Phi = I) -- no Gram matrix Y^T M Y, whose eigenvalues lose
   everything below sqrt(eps) sigma_max. Snapshots from (a) four sites at
   x_1 = 0, pi/2, pi, 3pi/2 (three distinct classes, the others held out) or (b) all
   sites. Projection errors of q - Phi Phi^T M q, max over the snapshots: L2(M) relative,
   raw z-moments (C q, absolute: unit-variance frame) and K (max entry / max |K|).
3. **Reduced Galerkin SBDF2**, q = Phi c, fully implicit in the reduced space:
       (a0 I - A^r(P^{n+1})) c^{n+1} = -(a1 c^n + a2 c^{n-1}),   A^r(P) = sum_k s_k(P) A_k^r,
   A_k^r = Phi^T A_k Phi, with the variable-step BDF2 weights a0 = (1+2w)/((1+w) dt),
   a1 = -(1+w)/dt, a2 = w^2/((1+w) dt), w = dt_n / dt_{n-1} (Euler first step) and P
   prescribed from the full run (no constraint coupling). Variant ``extrap``: A^r at
   P* = (1+w) P^n - w P^{n-1} (what a coupled solver has before its Newton solve).
   Errors in K and <F> against the full IMEX run, and against a full-space solve of the
   *same* implicit scheme (sparse LU per step), which splits the error into reduction
   and scheme (IMEX vs implicit) parts. Also: mass drift m^T Phi c - 1 (the constant is
   not in the test space, so mass is not conserved exactly) and min q / max q.
   vbar: the reduced density changes <G_ab(vbar_b + y_b)> by dg; to first order the
   balance constraint Phi(vbar) = A + W g then moves vbar by -DPhi^{-1} W dg (no
   feedback through time): reported as ``vbar_lin``, relative to max(1, |vbar|).
4. **A-posteriori residual.** R = M (a0 q^{n+1} + a1 q^n + a2 q^{n-1}) - A(P^{n+1}) q^{n+1}
   for q = Phi c, in the lumped-mass dual norm |R|_* = (R^T D^-1 R)^{1/2}. Offline-online:
   R = B x with B = [M Phi, A_1 Phi, ..., A_T Phi] and x = [a0 c^{n+1} + a1 c^n +
   a2 c^{n-1}, -s_1 c^{n+1}, ...], so |R|_*^2 = x^T G x with G = B^T D^-1 B ((T+1) r
   square). Estimate eta^n = sum_m dt_m |R^m|_* (error growth rate taken 0) against the
   true error |q_ref - Phi c|_M of the same scheme: effectivity eta / error.
5. **Cost** of one reduced step per site (numpy, one thread): scalars s_k(P), assembly
   s^T A^r (one GEMM), batched LU solve, raw moments C Phi c with K and <F>, the
   marginal weights for the balance Newton (T_b Phi c), and the residual x^T G x; for
   r = 10..80 and 1024 and 10^4 sites (chunks of 1024), against the full solver's
   seconds per site-step measured in part 1.

The figures go to ``benchmarks/results/reduced_basis.json`` (one entry per sheet size;
a run adds its size to the stored ones). ``--quick``: an 8 x 8 sheet to t = 0.1, written
to a temporary file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import dolfinx_solver  # noqa: F401  -- before dolfinx / petsc4py
import numpy as np
from evidence import RESULTS, Record, settle

R_LIST = (5, 10, 15, 20, 30, 40, 60, 80)
COST_R = (10, 20, 40, 60, 80)
COST_SITES = (1024, 10_000)
CHUNK = 1024
TARGETS = (1e-4, 1e-6, 1e-8)
SVD_TOL = 1e-13


# -- 1. the full run ---------------------------------------------------------------------
def full_run(side: int, t_end: float, stride: int) -> dict:
    """Run the sheet with side x side sites; per-step P, K, <F>; densities every stride."""
    from mpi4py import MPI

    from fpsolver import load_scenario
    from fpsolver.kinetic.numerics import resolve_numerics
    from fpsolver.kinetic.stepper import KineticStepper
    from fpsolver.kinetic.timestep import StepControl, observables
    from fpsolver.model import build_model

    sc = load_scenario("sheet", [f"space.sites={side}", f"t_end={t_end}"])
    model = build_model(sc)
    num = resolve_numerics(model)
    st = KineticStepper(model, MPI.COMM_SELF, numerics=num)
    control = StepControl(t_end, num.dt_max, num.dt, num.tol, fixed=num.fixed_dt)
    rec = {k: [] for k in ("t", "P", "K", "mF", "kappa", "lo", "hi")}
    snaps = {}

    def record():
        rec["t"].append(st.t)
        rec["P"].append(st.params())
        rec["K"].append(st.statistics()["cov"])
        rec["mF"].append(st.mF.copy())
        rec["kappa"].append(st.kappa.copy())
        rec["lo"].append(st.min_density.copy())
        rec["hi"].append(st.max_density.copy())

    record()
    snaps[0] = st.dens.q.copy()
    start = time.perf_counter()
    while st.t < t_end - 1e-12:
        st.step(control.next_step(st.t))
        control.accept(st.t, observables(st))
        record()
        if st.step_index % stride == 0 or st.t >= t_end - 1e-12:
            snaps[st.step_index] = st.dens.q.copy()
        if st.step_index % 50 == 0:
            print(f"  step {st.step_index}  t = {st.t:.4f}  dt = {st.dt:.2e}  "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
    loop = time.perf_counter() - start
    if st.refinements:
        raise RuntimeError(f"the state mesh changed {st.refinements}: one basis cannot follow")
    out = {k: np.array(v) for k, v in rec.items()}
    out.update(stepper=st, model=model, snaps=snaps, loop=loop, steps=st.step_index)
    return out


def site_classes(P: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Label of every site (identical P trajectories share one) and one site per label."""
    traj = P.transpose(1, 0, 2).reshape(P.shape[1], -1)
    scale = np.abs(traj).max(axis=0) + 1e-300
    labels = -np.ones(len(traj), int)
    reps = []
    for j in range(len(traj)):
        if labels[j] >= 0:
            continue
        same = np.abs(traj - traj[j]).max(axis=1) / scale.max() < 1e-10
        labels[same & (labels < 0)] = len(reps)
        reps.append(j)
    return labels, np.array(reps)


# -- 2. POD ------------------------------------------------------------------------------
def _truncated_svd(X: np.ndarray, tol: float) -> np.ndarray:
    """U S of X's thin SVD, singular values below tol * largest dropped."""
    U, s, _ = np.linalg.svd(X, full_matrices=False)
    keep = s > tol * s[0]
    return U[:, keep] * s[keep]


def pod(blocks: list[np.ndarray], M) -> tuple[np.ndarray, np.ndarray]:
    """M-weighted singular values and M-orthonormal modes of the columns of ``blocks``.

    Hierarchical Euclidean SVD (blocks merged four at a time), then the M-weighting
    through the Cholesky factor of U^T M U (well conditioned: M is).
    """
    from scipy.linalg import cholesky, solve_triangular

    parts = [_truncated_svd(b, SVD_TOL) for b in blocks]
    while len(parts) > 1:
        parts = [_truncated_svd(np.hstack(parts[i:i + 4]), SVD_TOL)
                 for i in range(0, len(parts), 4)]
    US = parts[0]
    s = np.linalg.norm(US, axis=0)
    U = US / s
    L = cholesky(U.T @ (M @ U), lower=True)
    Uw, sigma, _ = np.linalg.svd(L.T * s, full_matrices=False)
    Phi = U @ solve_triangular(L.T, Uw, lower=False)
    return sigma, Phi


def covariance(raw: np.ndarray, ell: np.ndarray) -> np.ndarray:
    """K (rows, 2, 2) from unnormalised raw z-moments (rows, 15) and frames (rows, 2)."""
    r = raw / raw[:, :1]
    K = np.empty((len(r), 2, 2))
    K[:, 0, 0] = r[:, 3] - r[:, 1] ** 2
    K[:, 1, 1] = r[:, 5] - r[:, 2] ** 2
    K[:, 0, 1] = K[:, 1, 0] = r[:, 4] - r[:, 1] * r[:, 2]
    return K * ell[:, :, None] * ell[:, None, :]


def k_error(K: np.ndarray, K_ref: np.ndarray) -> np.ndarray:
    """Relative K error per row: max entry difference / max |K_ref| (the estimator's)."""
    return np.abs(K - K_ref).max(axis=(-2, -1)) / np.abs(K_ref).max(axis=(-2, -1))


def projection_errors(Phi, Y, ell, M, C, r_list) -> dict:
    """Max over the columns of Y of the L2(M), raw-moment and K errors of the projection."""
    coef = Phi.T @ (M @ Y)
    norm = np.sqrt(np.einsum("ij,ij->j", Y, M @ Y))
    raw = C @ Y
    K = covariance(raw.T, ell)
    out = {"r": [], "L2": [], "moments": [], "K": []}
    for r in r_list:
        if r > Phi.shape[1]:
            break
        E = Y - Phi[:, :r] @ coef[:r]
        err = np.sqrt(np.einsum("ij,ij->j", E, M @ E)) / norm
        Kr = covariance((raw - C @ E).T, ell)
        out["r"].append(r)
        out["L2"].append(float(err.max()))
        out["moments"].append(float(np.abs(C @ E).max()))
        out["K"].append(float(k_error(Kr, K).max()))
    return out


def needed(errs: dict, key: str) -> dict:
    """Smallest measured r with error <= each target (None: not reached)."""
    return {f"{t:g}": next((r for r, e in zip(errs["r"], errs[key]) if e <= t), None)
            for t in TARGETS}


# -- 3. reduced and full-space implicit steps --------------------------------------------
def bdf(t: np.ndarray, n: int) -> tuple[float, float, float]:
    """(a0, a1, a2) of the step t_n -> t_{n+1} (Euler for the first)."""
    dt = t[n + 1] - t[n]
    if n == 0:
        return 1 / dt, -1 / dt, 0.0
    w = dt / (t[n] - t[n - 1])
    return (1 + 2 * w) / ((1 + w) * dt), -(1 + w) / dt, w * w / ((1 + w) * dt)


def extrapolate(P: np.ndarray, t: np.ndarray, n: int) -> np.ndarray:
    """P* = (1 + w) P^n - w P^{n-1} (P^0 at the first step)."""
    if n == 0:
        return P[0]
    w = (t[n + 1] - t[n]) / (t[n] - t[n - 1])
    return (1 + w) * P[n] - w * P[n - 1]


class Reduced:
    """The reduced operator of a basis Phi (N, r) and its offline residual Grams.

    A_k^r = Phi^T A_k Phi, C Phi, and G = B^T W^-1 B for the two dual norms: ``lumped``
    (W = D, the lumped mass) and ``energy`` (W = X = M + S, S the z-Laplacian's
    stiffness: an H^-1-type norm, the natural one for a parabolic residual).
    """

    def __init__(self, op, mats, Phi, C, D, X_lu):
        self.op, self.Phi = op, Phi
        self.r = Phi.shape[1]
        AP = [A @ Phi for A in mats]
        self.Ar = np.stack([Phi.T @ X for X in AP])                  # (T, r, r)
        self.CPhi = C @ Phi                                          # (15, r)
        self.B = np.hstack([op.M_csr @ Phi, *AP])                    # (N, (T+1) r)
        self.G = {"lumped": self.B.T @ (self.B / D[:, None]),
                  "energy": self.B.T @ X_lu.solve(self.B)}
        self.kappa_terms = len(mats) - len(op.terms)

    def scalars(self, P: np.ndarray, kappa) -> np.ndarray:
        """s_k of the rows of P (T, sites), the artificial diffusion appended if used."""
        s = self.op.scalars(P)
        if self.kappa_terms:
            s = np.vstack([s, np.tile(kappa[:, None], (1, s.shape[1]))])
        return s

    def observe(self, c, vbar, ell):
        """Site closure from the reduced density, as KineticStepper._observe.

        Returns (m = <F> + |kh| <y>, <F>, kh, Dh), each (sites, 2).
        """
        raw = c @ self.CPhi.T
        rn = raw / raw[:, :1]
        P = np.zeros((len(c), 8))
        P[:, :2], P[:, 4:6] = vbar, ell
        ex = _expectations(self.op, raw, P)
        mean_y = ell * rn[:, 1:3]
        var_y = ell**2 * (rn[:, [3, 5]] - rn[:, 1:3] ** 2)
        kh = -(ex[:, 2:4] - ex[:, 0:2] * mean_y) / var_y
        return ex[:, 0:2] + np.abs(kh) * mean_y, ex[:, 0:2], kh, ex[:, 4:6]

    def run(self, P_full, t, kappa, c0, closed: bool) -> dict:
        """Reduced SBDF2 of every site (columns of P_full), fully implicit in c.

        ``closed`` False: the operator at the full run's P^{n+1}. True: only vbar^{n+1}
        from the full run; <F>, the mean pull and the frame (ell, d ell/dt) from the
        reduced densities themselves (:class:`~fpsolver.kinetic.frame.Frame`), the
        operator at ell^{n+1} and the extrapolated <F>, d ell/dt.

        Returns c (steps+1, sites, r), the parameters used P (steps+1, sites, 8), <F>
        (steps+1, sites, 2) and the residual dual norms (steps, sites) of both norms.
        """
        from fpsolver.kinetic.frame import Frame

        steps, S = len(t) - 1, P_full.shape[1]
        c = np.empty((steps + 1, S, self.r))
        c[0] = c0
        P = P_full.copy()
        mF = np.empty((steps + 1, S, 2))
        res = {k: np.empty((steps, S)) for k in self.G}
        eye = np.eye(self.r)
        frame = Frame(P_full[0, :, 4:6] ** 2)
        m, mF[0], kh, Dh = self.observe(c0, P_full[0, :, :2], frame.ell)
        frame.set_rates(kh, Dh, 0.0)
        if closed:
            P[0] = np.hstack([P_full[0, :, :2], m, frame.ell, frame.ell_dot()])
        for n in range(steps):
            a0, a1, a2 = bdf(t, n)
            dt = t[n + 1] - t[n]
            if closed:
                frame.advance(dt)
                Pn = extrapolate(P, t, n).copy()
                Pn[:, :2], Pn[:, 4:6] = P_full[n + 1, :, :2], frame.ell
            else:
                Pn = P_full[n + 1]
            s = self.scalars(Pn, None if kappa is None else kappa[n + 1])  # (T, S)
            A = np.einsum("ts,tij->sij", s, self.Ar)
            rhs = -a1 * c[n] - (a2 * c[n - 1] if n else 0.0)
            c[n + 1] = np.linalg.solve(a0 * eye - A, rhs[..., None])[..., 0]
            y = a0 * c[n + 1] + a1 * c[n] + (a2 * c[n - 1] if n else 0.0)
            x = np.hstack([y] + [-s[k][:, None] * c[n + 1] for k in range(len(s))])
            for k, G in self.G.items():
                res[k][n] = np.sqrt(np.maximum(np.einsum("si,ij,sj->s", x, G, x), 0.0))
            ell = frame.ell if closed else P_full[n + 1, :, 4:6]
            m, mF[n + 1], kh, Dh = self.observe(c[n + 1], P_full[n + 1, :, :2], ell)
            frame.set_rates(kh, Dh, dt)
            if closed:
                P[n + 1] = np.hstack([P_full[n + 1, :, :2], m, frame.ell, frame.ell_dot()])
        return {"c": c, "P": P, "mF": mF, "res": res}

    def residual_direct(self, x: np.ndarray, D: np.ndarray) -> np.ndarray:
        """|B x|_* (lumped) computed in the full space (rows of x): checks the Gram form."""
        R = x @ self.B.T
        return np.sqrt(np.einsum("sn,sn->s", R, R / D[None, :]))


def full_implicit(op, mats, C, P, t, kappa, q0, keep) -> dict:
    """The reduced runs' implicit scheme (A at the full run's P^{n+1}) in the full space.

    One sparse LU per step and site (columns of P); densities kept at the steps ``keep``.
    """
    from scipy.sparse.linalg import splu

    M = op.M_csr
    steps, S = len(t) - 1, P.shape[1]
    q_old, q = None, np.tile(q0, (S, 1))
    out = {"raw": [q @ C.T], "q": {0: q.copy()}}
    for n in range(steps):
        a0, a1, a2 = bdf(t, n)
        s = op.scalars(P[n + 1])
        if kappa is not None:
            s = np.vstack([s, np.tile(kappa[n + 1][:, None], (1, S))])
        new = np.empty_like(q)
        for j in range(S):
            A = sum(s[k, j] * mats[k] for k in range(len(mats)))
            rhs = M @ (-a1 * q[j] - (a2 * q_old[j] if n else 0.0))
            new[j] = splu((a0 * M - A).tocsc()).solve(rhs)
        q_old, q = q, new
        out["raw"].append(q @ C.T)
        if n + 1 in keep:
            out["q"][n + 1] = q.copy()
    out["raw"] = np.array(out["raw"])
    return out


# -- the vbar proxy ----------------------------------------------------------------------
def gains(model, marg, Q, vbar, ell):
    """<G_ab(vbar_b + ell_b z_b)> and <G_ab'> of the rows of Q: two arrays (2, 2, rows)."""
    from fpsolver.scenario import PAIRS

    g = np.zeros((2, 2, 2, len(Q)))
    for b in range(2):
        points = marg.npts + int(np.ceil(4 * ell[:, b].max() * marg.max_width(b)))
        z, _ = marg.rule(b, points)
        w = marg.weights(Q, b, points)
        w = w / w.sum(axis=1, keepdims=True)
        for a in range(2):
            ab = PAIRS[2 * a + b]
            v = vbar[:, b][:, None] + ell[:, b][:, None] * z[None, :]
            for kind, fun in enumerate((model.G[ab], model.G_prime[ab])):
                g[kind, a, b] = (np.broadcast_to(fun(v, np), v.shape) * w).sum(axis=1)
    return g[0], g[1]


def vbar_shift(constraint, labels, g_ref, gp_ref, dg, vbar):
    """First-order vbar change -DPhi^{-1} W dg, relative to max(1, |vbar|); site arrays."""
    B = len(labels)
    dphi = np.einsum("abjk,abk->ja", constraint.W, dg[:, :, labels])
    J = constraint.jacobian(gp_ref[:, :, labels])
    dv = -np.linalg.solve(J, dphi.T.ravel()).reshape(2, B).T
    return float((np.abs(dv) / np.maximum(1.0, np.abs(vbar))).max())


# -- 5. cost -----------------------------------------------------------------------------
def _best(fun, repeat: int = 3) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fun()
        best = min(best, time.perf_counter() - t0)
    return best


def cost(op, P_pool, n_marg: int, r_list, site_counts) -> list[dict]:
    """Seconds per site-step of each part of the reduced step (one thread)."""
    rng = np.random.default_rng(0)
    T = len(op.terms)
    rows = []
    for r in r_list:
        Ar = rng.standard_normal((T, r, r)) / r
        Ar_flat = Ar.reshape(T, r * r)
        CPhi = rng.standard_normal((15, r))
        WPhi = rng.standard_normal((n_marg, r))
        X = rng.standard_normal(((T + 1) * r, (T + 1) * r))
        G = X @ X.T
        for S in site_counts:
            P = P_pool[rng.integers(0, len(P_pool), S)]
            c1, c0 = rng.standard_normal((S, r)), rng.standard_normal((S, r))
            chunks = [slice(i, min(i + CHUNK, S)) for i in range(0, S, CHUNK)]
            eye = np.eye(r)
            state = {}

            def scal():
                state["s"] = op.scalars(P)

            def assemble():
                s = state["s"]
                state["K"] = [(10.0 * eye - (s[:, ch].T @ Ar_flat).reshape(-1, r, r))
                              for ch in chunks]

            def solve():
                state["c"] = [np.linalg.solve(K, (2 * c1[ch] - 0.5 * c0[ch])[..., None])[..., 0]
                              for K, ch in zip(state["K"], chunks)]

            def moments():
                for c, ch in zip(state["c"], chunks):
                    raw = c @ CPhi.T
                    covariance(raw, P[ch, 4:6])
                    _expectations(op, raw, P[ch])

            def marginals():
                for c in state["c"]:
                    c @ WPhi.T

            def residual():
                s = state["s"]
                for c, ch in zip(state["c"], chunks):
                    x = np.hstack([c] + [-s[k, ch][:, None] * c for k in range(T)])
                    np.einsum("si,si->s", x @ G, x)

            parts = {}
            for name, fun in (("scalars", scal), ("assembly", assemble), ("solve", solve),
                              ("moments", moments), ("marginals", marginals),
                              ("residual", residual)):
                parts[name] = _best(fun) / S
            step = sum(v for k, v in parts.items() if k != "residual")
            rows.append({"r": r, "sites": S, **{k: float(v) for k, v in parts.items()},
                         "step": float(step)})
    return rows


def _expectations(op, raw, P):
    """<F>, <F_g y_g>, <D> (sites, 6) from unnormalised raw moments (sites, 15).

    :meth:`PolynomialOperator.expectations` with the identity in place of C.
    """
    from types import SimpleNamespace

    from fpsolver.families import monomials

    moments = SimpleNamespace(C=np.eye(raw.shape[1]), monomials=monomials(4))
    return op.expectations(moments, raw, P) / raw[:, :1]


# -- the measurement ---------------------------------------------------------------------
def measure(side: int, t_end: float, stride: int, r_list, cost_sites) -> dict:
    from fpsolver.balance import BalanceConstraint

    print(f"1. full run: {side} x {side} sites to t = {t_end}", flush=True)
    run = full_run(side, t_end, stride)
    st, model = run["stepper"], run["model"]
    t, P = run["t"], run["P"]
    B, steps = st.B, run["steps"]
    per_site_step = run["loop"] / (steps * B)
    print(f"   {steps} steps in {run['loop']:.0f} s: {1e3 * per_site_step:.2f} ms per "
          f"site-step; min q / max q = {(run['lo'] / run['hi']).min():.2e}", flush=True)
    dens, op = st.dens, st.dens.operator
    M, C = op.M_csr, dens.quad.C
    used_kappa = bool(run["kappa"].any())
    mats = list(op.csr)
    if used_kappa:
        from fpsolver.kinetic.operator import _csr
        mats += [_csr(A) for A in op.stabilisation_matrices()]
    kappa = run["kappa"] if used_kappa else None
    labels, reps = site_classes(P, side)
    x1 = reps // side
    train_sites = [k * side // 4 * side for k in range(4)]
    train = sorted(set(int(c) for c in labels[train_sites]))
    held = [c for c in range(len(reps)) if c not in train]
    print(f"   {len(reps)} distinct site trajectories (classes) of {B}; training classes "
          f"{train} (sites {train_sites}), held out {held}", flush=True)
    levels = sorted(run["snaps"])
    ell_at = {n: P[n][:, 4:6] for n in levels}

    def columns(classes):
        Y = np.hstack([np.stack([run["snaps"][n][reps[c]] for n in levels], 1)
                       for c in classes])
        ell = np.vstack([np.stack([ell_at[n][reps[c]] for n in levels]) for c in classes])
        return Y, ell

    print("2. POD", flush=True)
    t0 = time.perf_counter()
    bases = {}
    blocks_a = [np.stack([run["snaps"][n][j] for n in levels], 1) for j in train_sites]
    blocks_b = [np.stack([run["snaps"][n][j] for n in levels], 1) for j in range(B)]
    bases["a"] = pod(blocks_a, M)
    bases["b"] = pod(blocks_b, M)
    pod_time = time.perf_counter() - t0
    Y_train, ell_train = columns(train)
    Y_held, ell_held = columns(held)
    grid = sorted(set(list(range(1, 11)) + list(range(12, 41, 2)) + list(range(45, 121, 5))))
    pod_out = {}
    for key, (sigma, Phi) in bases.items():
        energy = np.sqrt(np.cumsum((sigma**2)[::-1])[::-1] / (sigma**2).sum())
        sets = {"training": (Y_train, ell_train)} if key == "a" else {}
        if key == "a":
            sets["held_out"] = (Y_held, ell_held)
        else:
            Y_all, ell_all = columns(range(len(reps)))
            sets["all"] = (Y_all, ell_all)
        errs = {name: projection_errors(Phi, Y, ell, M, C, grid)
                for name, (Y, ell) in sets.items()}
        pod_out[key] = {
            "snapshots": int(len(levels) * (4 if key == "a" else B)),
            "rank": int(len(sigma)),
            "sigma": [float(f"{x:.3e}") for x in sigma[:120] / sigma[0]],
            "tail_energy": [float(f"{x:.3e}") for x in energy[:120]],
            "errors": errs,
            "r_needed": {name: {k: needed(e, k) for k in ("L2", "moments", "K")}
                         for name, e in errs.items()}}
        for name, e in errs.items():
            print(f"   ({key}) {name}: r for L2 {needed(e, 'L2')}, moments "
                  f"{needed(e, 'moments')}, K {needed(e, 'K')}", flush=True)
    print(f"   POD {pod_time:.0f} s", flush=True)

    print("3. reduced SBDF2; full-space implicit reference on the held-out classes",
          flush=True)
    from scipy.sparse.linalg import splu

    from fpsolver.kinetic.operator import _csr

    q0 = run["snaps"][0][0]
    Prep = P[:, reps]
    ref_cls = held or list(range(len(reps)))
    t0 = time.perf_counter()
    ref = full_implicit(op, mats, C, Prep[:, ref_cls], t, kappa, q0, set(levels))
    ref_time = time.perf_counter() - t0
    K_full, mF_full = run["K"][:, reps], run["mF"][:, reps]
    K_ref = covariance(ref["raw"].reshape(-1, 15), Prep[:, ref_cls, 4:6].reshape(-1, 2))
    K_ref = K_ref.reshape(K_full[:, ref_cls].shape)
    scheme_K = float(k_error(K_ref, K_full[:, ref_cls]).max())
    print(f"   full-space implicit (P^(n+1)) vs full IMEX run: K {scheme_K:.2e} "
          f"({ref_time:.0f} s for {len(ref_cls)} sites)", flush=True)
    D = np.asarray(M.sum(axis=1)).ravel()
    stiff = -(_csr(op.stabilisation_matrices()[0]) + _csr(op.stabilisation_matrices()[1]))
    X_lu = splu((M + stiff).tocsc())
    constraint = BalanceConstraint(model)
    marg = dens.marginals
    check = levels[1::max(1, len(levels) // 12)]  # levels where the vbar proxy is taken
    g_ref = {n: gains(model, marg, run["snaps"][n][reps], P[n][reps, :2], P[n][reps, 4:6])
             for n in check}
    reduced_out = []
    for key, (sigma, Phi_all) in bases.items():
        classes = held if key == "a" else list(range(len(reps)))
        for r in r_list:
            if r > Phi_all.shape[1]:
                continue
            Phi = Phi_all[:, :r]
            red = Reduced(op, mats, Phi, C, D, X_lu)
            c0 = np.tile(Phi.T @ (M @ q0), (len(reps), 1))
            for closed in (False, True):
                t0 = time.perf_counter()
                out = red.run(Prep, t, kappa, c0, closed)
                wall = time.perf_counter() - t0
                c, Pu = out["c"], out["P"]
                raw = c @ red.CPhi.T                                  # (steps+1, S, 15)
                K_red = covariance(raw.reshape(-1, 15), Pu[..., 4:6].reshape(-1, 2))
                K_red = K_red.reshape(K_full.shape)
                eF = np.abs(out["mF"] - mF_full) / np.maximum(1, np.abs(mF_full))
                row = {"basis": key, "r": r, "closed": closed,
                       "K_vs_full": float(k_error(K_red, K_full)[:, classes].max()),
                       "F_vs_full": float(eF[:, classes].max()),
                       "mass_drift": float(np.abs(raw[:, classes, 0] - 1).max()),
                       "min_over_max": float(min((c[n][classes] @ Phi.T).min()
                                                 / (c[n][classes] @ Phi.T).max()
                                                 for n in levels)),
                       "vbar_lin": max(
                           vbar_shift(constraint, labels, *g_ref[n],
                                      gains(model, marg, c[n] @ Phi.T, Pu[n][:, :2],
                                            Pu[n][:, 4:6])[0] - g_ref[n][0], P[n][:, :2])
                           for n in check),
                       "seconds": wall}
                if not closed:
                    row["K_vs_same_scheme"] = float(k_error(K_red[:, ref_cls], K_ref).max())
                    e0 = q0 - Phi @ c0[0]
                    row.update(_residual_check(red, out, ref, t, levels, M, D, ref_cls,
                                               Prep, kappa, float(np.sqrt(e0 @ (M @ e0)))))
                reduced_out.append(row)
                print("   " + "  ".join(f"{k} {v:.2e}" if isinstance(v, float) else
                                        f"{k} {v}" for k, v in row.items()), flush=True)

    print("5. cost per site-step (one thread)", flush=True)
    settle()
    n_marg = sum(len(marg.rule(b, marg.npts + int(np.ceil(4 * P[-1][:, b + 4].max()
                                                       * marg.max_width(b))))[0])
                 for b in range(2))
    costs = cost(op, P.reshape(-1, 8), n_marg, COST_R, cost_sites)
    for row in costs:
        print("   " + "  ".join(f"{k} {v:.3g}" for k, v in row.items()), flush=True)
    return {"side": side, "sites": B, "t_end": float(t[-1]), "steps": int(steps),
            "dofs": int(M.shape[0]), "terms": len(mats), "stabilised": used_kappa,
            "stride": stride, "snapshot_levels": len(levels), "classes": len(reps),
            "class_x1_index": [int(x) for x in x1], "training_classes": train,
            "held_out_classes": held,
            "full_seconds_per_site_step": per_site_step, "full_loop_seconds": run["loop"],
            "full_min_over_max": float((run["lo"] / run["hi"]).min()),
            "scheme_K_implicit_vs_imex": scheme_K, "reference_classes": ref_cls,
            "pod": pod_out, "reduced": reduced_out, "cost": costs,
            "marginal_points": int(n_marg)}


def _residual_check(red, out, ref, t, levels, M, D, cls, P, kappa, e0: float) -> dict:
    """True error |q_ref - Phi c|_M / |q_ref|_M at the stored levels against two estimates.

    ``sum``: e0 + sum_m dt_m |R^m|_* (error growth rate 0); ``sq``: (e0^2 + sum_m dt_m
    |R^m|_*^2)^1/2 (the energy estimate of a coercive operator, constant 1); e0 the
    initial projection error. Effectivity = estimate / true error, over sites and levels.
    Also checks the Gram form of the lumped norm against the product in the full space.
    """
    c, res = out["c"][:, cls], {k: v[:, cls] for k, v in out["res"].items()}
    dt = np.diff(t)[:, None]
    zero = np.zeros((1, len(cls)))
    eta = {}
    for k, rk in res.items():
        eta[f"{k}_sum"] = e0 + np.concatenate([zero, np.cumsum(dt * rk, axis=0)])
        eta[f"{k}_sq"] = np.sqrt(e0**2 + np.concatenate([zero, np.cumsum(dt * rk**2, axis=0)]))
    err, est, gram_dev = [], {k: [] for k in eta}, 0.0
    for i, n in enumerate(lv for lv in levels if lv):
        qr = ref["q"][n]
        e = qr - c[n] @ red.Phi.T
        norm = np.sqrt(np.einsum("sn,sn->s", qr, (M @ qr.T).T))
        err.append(np.sqrt(np.einsum("sn,sn->s", e, (M @ e.T).T)) / norm)
        for k in eta:
            est[k].append(eta[k][n] / norm)
        if i % 4 == 0:
            a0, a1, a2 = bdf(t, n - 1)
            y = a0 * c[n] + a1 * c[n - 1] + (a2 * c[n - 2] if n > 1 else 0.0)
            s = red.scalars(P[n, cls], None if kappa is None else kappa[n])
            x = np.hstack([y] + [-s[k][:, None] * c[n] for k in range(len(s))])
            direct = red.residual_direct(x, D)
            gram_dev = max(gram_dev, float((np.abs(direct - res["lumped"][n - 1])
                                            / np.maximum(direct, 1e-300)).max()))
    err = np.array(err)
    row = {"L2_error": float(err.max()), "L2_error_final": float(err[-1].max()),
           "gram_vs_direct": gram_dev}
    for k, v in est.items():
        eff = np.array(v) / np.maximum(err, 1e-300)
        row[f"eff_{k}"] = [float(eff.min()), float(eff.max())]
    for k, rk in res.items():
        row[f"residual_{k}_max"] = float(rk.max())
    return row


def table(fig: dict) -> None:
    """Print the headline table of one sheet size."""
    print(f"\n== sheet {fig['side']} x {fig['side']} ({fig['sites']} sites, "
          f"{fig['classes']} classes), t = {fig['t_end']:g}, {fig['steps']} steps, "
          f"{fig['dofs']} dofs ==")
    print(f"full solver: {1e3 * fig['full_seconds_per_site_step']:.2f} ms per site-step; "
          f"implicit-vs-IMEX scheme difference in K {fig['scheme_K_implicit_vs_imex']:.1e}")
    for key, p in fig["pod"].items():
        for name, need in p["r_needed"].items():
            print(f"POD ({key}, {p['snapshots']} snapshots) {name}: r needed " +
                  "; ".join(f"{k} {v}" for k, v in need.items()))
    print("reduced SBDF2 (errors over the held-out classes for basis a, all for b; "
          "'closed': frame and <F> from the reduced densities, vbar prescribed)")
    print(f"{'basis':>5} {'r':>3} {'K full':>9} {'K closed':>9} {'K same':>9} {'<F>':>9} "
          f"{'<F> cl.':>9} {'vbar_lin':>9} {'L2 err':>9} {'eff lumped':>15} "
          f"{'eff energy':>15} {'mass':>8} {'min/max':>9}")
    rows = {(r["basis"], r["r"], r["closed"]): r for r in fig["reduced"]}
    for (key, r, closed), row in rows.items():
        if closed:
            continue
        cl = rows.get((key, r, True), {})

        def rng(v):
            return f"{v[0]:6.1e}-{v[1]:6.1e}"

        print(f"{key:>5} {r:3d} {row['K_vs_full']:9.2e} {cl.get('K_vs_full', np.nan):9.2e} "
              f"{row['K_vs_same_scheme']:9.2e} {row['F_vs_full']:9.2e} "
              f"{cl.get('F_vs_full', np.nan):9.2e} {row['vbar_lin']:9.2e} "
              f"{row['L2_error']:9.2e} {rng(row['eff_lumped_sum']):>15} "
              f"{rng(row['eff_energy_sq']):>15} {row['mass_drift']:8.1e} "
              f"{row['min_over_max']:9.1e}")
    full = fig["full_seconds_per_site_step"]
    print(f"{'r':>3} {'sites':>6} {'step ms':>8} {'resid ms':>9} {'vs full':>8}  parts (us)")
    for row in fig["cost"]:
        parts = " ".join(f"{k} {1e6 * row[k]:.1f}" for k in
                         ("scalars", "assembly", "solve", "moments", "marginals"))
        print(f"{row['r']:3d} {row['sites']:6d} {1e3 * row['step']:8.4f} "
              f"{1e3 * row['residual']:9.4f} {full / row['step']:7.0f}x  {parts}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 x 8 sites to t = 0.1")
    parser.add_argument("--sites", type=int, default=8, help="sites per side of the torus")
    parser.add_argument("--t-end", type=float, default=5.0)
    parser.add_argument("--stride", type=int, default=8, help="steps between snapshots")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    side, t_end, stride = args.sites, args.t_end, args.stride
    r_list, cost_sites = R_LIST, COST_SITES
    if args.quick:
        side, t_end, stride, r_list, cost_sites = 8, 0.1, 4, (5, 10, 20), (1024,)
    record = Record("reduced_basis", argv, quick=args.quick)
    if not args.quick:
        stored = RESULTS / "reduced_basis.json"
        if stored.exists():
            record.figures = json.loads(stored.read_text()).get("figures", {})
    with threadpool_limits(1):
        fig = measure(side, t_end, stride, r_list, cost_sites)
    record.figures[f"{side}x{side}"] = fig
    table(fig)
    record.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
