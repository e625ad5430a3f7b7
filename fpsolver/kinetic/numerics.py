"""Default numerics of the kinetic solver, chosen from the scenario.

Every ``kinetic`` setting left at 0 is resolved here, before any work:

- the frame is adaptive (:mod:`fpsolver.kinetic.frame`): each site's density lives in
  z = y / ell(t) with ell^2 its variance, so one box of :data:`HALF_WIDTH` standard
  deviations and :data:`CELLS` cells of degree :data:`DEGREE` resolves every density,
  however wide or narrow (measured: the steady OU density's second moments are exact on
  any mesh up to the truncation, 1e-13 at 8 sd; <tanh(a + ell z)> to 2e-8 with P3 on 32
  cells, see docs/numerics.md). With the fixed frame the box is sized from the
  covariance envelope (initial data and the Gaussian-closure stationary covariance).
- the time steps are adaptive (:mod:`fpsolver.kinetic.timestep`), at most
  :data:`MAX_DT` and dividing ``record.every``; the first resolves the rate r at which
  the densities change shape in their frames at t = 0 (:func:`_rates`):
  dt = :func:`step_fraction`(tol) / r.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from fpsolver.balance import BalanceConstraint
from fpsolver.errors import ScenarioError
from fpsolver.scenario import PAIRS

__all__ = ["Numerics", "resolve_numerics", "step_fraction", "DEGREE", "CELLS", "HALF_WIDTH"]

logger = logging.getLogger(__name__)

DEGREE = 2
CELLS = 48
HALF_WIDTH = 6.0  # standard deviations (adaptive frame)
MAX_DT = 0.05     # time units: the largest automatic step
_HERMITE = np.polynomial.hermite_e.hermegauss(12)


def step_fraction(tol: float) -> float:
    """Step fraction r dt for a relative time error ~ tol / 4.

    Measured on ``ring-mod`` (r = 3.9), BDF2 gives a relative error ~0.06 (r dt)^2 in vbar
    and K, so r dt = 2 sqrt(tol).
    """
    return float(min(0.1, 2 * math.sqrt(tol)))


@dataclass
class Numerics:
    """The resolved discretisation of one kinetic run (what ``summary.json`` reports)."""

    degree: int
    cells: tuple
    half_width: float
    grading: float
    domain: str
    fixed_frame: bool
    dt: float
    dt_max: float
    fixed_dt: bool
    scheme: str
    tol: float
    petsc_options: dict
    rate: float = 0.0
    rates: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        """The discretisation as ``summary.json`` reports it (the frame as a word)."""
        return {"degree": self.degree, "cells": self.cells, "half_width": self.half_width,
                "grading": self.grading, "domain": self.domain,
                "frame": "fixed" if self.fixed_frame else "adaptive", "dt": self.dt,
                "dt_max": self.dt_max, "fixed_dt": self.fixed_dt,
                "scheme": self.scheme, "tol": self.tol, "rate": self.rate}


def _closure(model):
    """vbar(0) of every site and DF(vbar + y) at normal nodes y ~ N(0, K0).

    Returns (vbar (sites, 2), Jn (sites, m, 2, 2) the Jacobian at the nodes, Z (m, 2) the
    nodes, W (m,) their weights).
    """
    from fpsolver.gaussian import gaussian_expectations

    K0 = np.array(model.scenario.initial.cov, float)
    constraint = BalanceConstraint(model)
    vbar, _ = constraint.solve(lambda v: gaussian_expectations(model, v, K0),
                               np.zeros((model.n_sites, 2)), where=" at t = 0")
    x, w = _HERMITE
    w = w / w.sum()
    L = np.linalg.cholesky(K0)
    Z = np.stack(np.meshgrid(x, x, indexing="ij"), -1).reshape(-1, 2) @ L.T  # (m, 2)
    W = np.outer(w, w).ravel()
    h = 1e-6 * (1 + np.abs(vbar).max() + np.sqrt(np.diag(K0)).max())
    ve = vbar[:, 0:1] + Z[None, :, 0]
    vi = vbar[:, 1:2] + Z[None, :, 1]
    Jn = np.empty(ve.shape + (2, 2))
    with np.errstate(all="ignore"):
        for c, (de, di) in enumerate(((h, 0.0), (0.0, h))):
            Fp = model.F(ve + de, vi + di, np)
            Fm = model.F(ve - de, vi - di, np)
            for g in range(2):
                Jn[..., g, c] = (np.broadcast_to(Fp[g], ve.shape)
                                 - np.broadcast_to(Fm[g], ve.shape)) / (2 * h)
    return vbar, Jn, Z, W


def _diffusion(model, vbar, Z):
    ve = vbar[:, 0:1] + Z[None, :, 0]
    vi = vbar[:, 1:2] + Z[None, :, 1]
    S = model.S_diag(ve, vi, np)
    return np.stack([np.broadcast_to(S[g], ve.shape) ** 2 for g in range(2)], -1)  # (s, m, 2)


def _rates(model, vbar, Jn, Z, W, full_rank: bool) -> tuple[float, dict]:
    """The rate at which each site's density changes *shape in its frame* at t = 0.

    The frame absorbs the variances' own relaxation (exactly so for a linear drift with
    additive noise, whatever its rate), so what the time step must resolve is the rest:
    e-i coupling and the decay of an initial correlation (|J_ei| + |J_ie| + (|J_ee| +
    |J_ii|) |rho0|), the spread of DF over the density (its RMS deviation from <DF>),
    the spread of the diffusion (std(D_g) / Var_g), and, for low-rank kernels, the
    relaxation of the free part of vbar (the spectral radius of <DF>).
    """
    K0 = np.array(model.scenario.initial.cov, float)
    rho0 = K0[0, 1] / np.sqrt(K0[0, 0] * K0[1, 1])
    J = np.einsum("smgc,m->sgc", Jn, W)
    parts = {}
    parts["coupling"] = float((np.abs(J[:, 0, 1]) + np.abs(J[:, 1, 0])
                               + (np.abs(J[:, 0, 0]) + np.abs(J[:, 1, 1])) * abs(rho0)).max())
    dev = ((Jn - J[:, None]) ** 2).sum(axis=(2, 3))
    parts["nonlinearity"] = float(np.sqrt(dev @ W).max())
    D = _diffusion(model, vbar, Z)
    Dm = np.einsum("smg,m->sg", D, W)
    Dsd = np.sqrt(np.clip(np.einsum("smg,m->sg", (D - Dm[:, None]) ** 2, W), 0, None))
    parts["noise"] = float((Dsd / np.diag(K0)[None, :]).max())
    if not full_rank:
        parts["means"] = float(np.abs(np.linalg.eigvals(J)).max())
    return max(parts.values()), parts


def _envelope(K0: np.ndarray, J: np.ndarray, D: np.ndarray) -> np.ndarray:
    """Largest variance per axis over the run: K0 and the closure's stationary K."""
    big = np.diag(K0).copy()
    eye = np.eye(2)
    for Jj, Dj in zip(J, D):
        L = np.kron(eye, Jj) + np.kron(Jj, eye)
        if np.linalg.eigvals(Jj).real.max() < 0:
            Kst = np.linalg.solve(L, -np.diag(Dj).ravel()).reshape(2, 2)
            big = np.maximum(big, np.diag(Kst))
        else:
            big = np.maximum(big, 4 * np.diag(K0))
    return big


def _cells(model, big: np.ndarray, fixed: bool, notes: list) -> tuple[int, int]:
    """Cells along z_e and z_i: :data:`CELLS`, more where the gains are sharp in z.

    An axis whose gains are nonlinear and whose density is wide gets sqrt(ell_max) times
    more (G(vbar + ell z) is sharp in z when ell is large: the <G> error of P2 grows like
    (ell h)^4, measured 2.8e-6 in vbar at ell = 3.5 on 48 cells).
    """
    out = []
    for b in range(2):
        gains = [model.G[ab] for ab in PAIRS if ab[1] == "ei"[b]]
        probe = np.array([-1.0, 0.0, 0.5, 2.0])
        nonlinear = any(np.ptp(np.diff(np.broadcast_to(g(probe, np), probe.shape))
                               / np.diff(probe)) > 1e-12 for g in gains)
        ell = 1.0 if fixed else float(np.sqrt(big[b]))
        out.append(int(np.ceil(CELLS * np.sqrt(max(1.0, ell)))) if nonlinear else CELLS)
    if out != [CELLS, CELLS]:
        notes.append(f"cells = {tuple(out)}: finer along the axes where wide densities meet "
                     "nonlinear gains")
    return tuple(out)


def _largest_step(every: float, t_end: float) -> float:
    """The largest step: at most :data:`MAX_DT` and dividing the recording interval."""
    return min(every, t_end) / math.ceil(min(every, t_end) / MAX_DT - 1e-9)


def resolve_numerics(model) -> Numerics:
    """The kinetic settings of ``model.scenario`` with every automatic value filled in."""
    sc = model.scenario
    kin = sc.kinetic
    fixed = kin.frame == "fixed"
    notes = []
    vbar, Jn, Z, W = _closure(model)
    J = np.einsum("smgc,m->sgc", Jn, W)
    rate, parts = _rates(model, vbar, Jn, Z, W, BalanceConstraint(model).full_rank)
    degree = kin.degree or DEGREE
    D = np.einsum("smg,m->sg", _diffusion(model, vbar, Z), W)
    big = _envelope(np.array(sc.initial.cov, float), J, D)
    cells = (kin.cells, kin.cells) if kin.cells else _cells(model, big, fixed, notes)
    half_width = kin.half_width
    if not half_width:
        if fixed:
            half_width = HALF_WIDTH * float(np.sqrt(big.max()))
            notes.append(f"fixed frame: half_width = {half_width:.4g} (8 sd of the largest "
                         "variance expected)")
        else:
            half_width = HALF_WIDTH
    if fixed:  # no frame: the variances' own relaxation must be resolved too
        rate = max(rate, float(np.abs(np.linalg.eigvals(J)).max()))
    dt_max = kin.dt or _largest_step(sc.record.every, sc.t_end)
    dt = kin.dt or min(dt_max, step_fraction(kin.tol) / max(rate, 1e-12))
    if not math.isfinite(dt) or dt <= 0:
        raise ScenarioError("kinetic.dt", f"no usable time step (rate {rate:g})",
                            "set kinetic.dt explicitly")
    if not kin.dt:
        notes.append(f"adaptive steps up to {dt_max:.4g}, starting at {dt:.4g} (rate "
                     f"{rate:.4g}/time, tol {kin.tol:g})")
    return Numerics(degree=degree, cells=cells, half_width=float(half_width),
                    grading=kin.grading, domain=kin.domain, fixed_frame=fixed, dt=float(dt),
                    dt_max=float(dt_max), fixed_dt=bool(kin.dt),
                    scheme=kin.scheme, tol=kin.tol, petsc_options=dict(kin.petsc_options),
                    rate=rate, rates=parts, notes=notes)
