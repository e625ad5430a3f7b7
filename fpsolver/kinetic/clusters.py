"""Which sites share an implicit operator: a stability bound computed every step.

The IMEX step (:mod:`fpsolver.kinetic.imex`) treats a *reference* operator A(P_r)
implicitly (one factorisation for all the sites of a cluster, P_r the mean of their
parameters) and each site's difference A(P_j) - A(P_r) explicitly. Stability is decided
by a frozen-coefficient (von Neumann) analysis at sample points z of the state domain
and wavenumbers k up to the mesh's resolution pi p / h(z). With the reference's smallest
diffusion D_r and the site's differences dD (diffusion, both signs) and db (drift, its
norm), the implicit and explicit symbols per unit time are

    x = -D_r k^2 / 2,    w = m (-dD k^2 / 2 + i |db| k),

(m a safety factor) and the mode is stable when every root xi of the scheme's
amplification polynomial has |xi| <= 1 (dt x and dt w in place of x and w):

- BDF2 (SBDF2): (3/2 - x) xi^2 - 2 (1 + w) xi + (1/2 + w) = 0,
- CN/AB2:       (1 - x/2) xi^2 - (1 + x/2 + 3w/2) xi + w/2 = 0,
- Euler:        (1 - x) xi - (1 + w) = 0.

This is the classical stiff condition dD/D_r < 1/3 (SBDF2) and a bound on the cell
Peclet number of the drift *difference* (polynomial drifts grow in the tails, which is
why the state box is kept to 6 standard deviations). A cluster is formed around its mean
when every member is stable with the factor :data:`MARGIN_FORM`; otherwise it is split
in two along its widest parameter direction, recursively, down to single sites (whose
reference is their own operator, stable by construction). A cluster is kept while its
members stay stable with the smaller factor :data:`MARGIN_KEEP` (a hysteresis: a new
reference lasts several steps). The clustering sees all sites on every rank, so it is
the same whatever the MPI layout. (A stabilising diffusion added implicitly and taken
back explicitly was tried and rejected: with SBDF2 it drives the stiff ratio to -1, the
edge of stability, so it never made a cluster stable.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Clusters", "StabilityBound", "update_clusters", "MARGIN_FORM", "MARGIN_KEEP"]

MARGIN_FORM = 1.5   # a new reference is stable for 1.5 times the sites' explicit parts
MARGIN_KEEP = 1.0   # an existing one is kept while it is stable for them
_GROWTH_TOL = 1e-9
_K_LEVELS = 8       # wavenumbers per sample point, geometric (ratio 2) from k_max down


@dataclass
class Clusters:
    """A partition of the sites and one reference parameter vector per part.

    Attributes:
        label: cluster of every site (sites,).
        refs: reference parameters (clusters, 8).
        version: counts changes of the partition or of any reference.
    """

    label: np.ndarray
    refs: np.ndarray
    version: int = 0

    @property
    def count(self) -> int:
        """Number of clusters (one reference each)."""
        return len(self.refs)

    def site_refs(self) -> np.ndarray:
        """Each site's reference parameters (sites, 8)."""
        return self.refs[self.label]


def _roots_max(x: np.ndarray, w: np.ndarray, scheme: str) -> np.ndarray:
    """Largest |xi| of the amplification polynomial (elementwise; complex inputs)."""
    if scheme == "euler":
        return np.abs((1 + w) / (1 - x))
    if scheme == "bdf2":
        a, b, c = 1.5 - x, -2 * (1 + w), 0.5 + w
    else:  # cn
        a, b, c = 1 - x / 2, -(1 + x / 2 + 1.5 * w), 0.5 * w
    disc = np.sqrt(b * b - 4 * a * c + 0j)
    return np.maximum(np.abs((-b + disc) / (2 * a)), np.abs((-b - disc) / (2 * a)))


class StabilityBound:
    """The von Neumann bound of one discretisation (operator, sample points, dt).

    Args:
        operator: a :mod:`~fpsolver.kinetic.operator` operator (``coefficients``).
        points: sample points of the state domain (m, 2); h: local mesh size there (m,).
        degree: Lagrange degree (nodes are h / degree apart).
        dt: time step.
        stiffness: lambda_max(K, M) of the discrete Laplacian K over (pi degree / h_min)^2.

    The largest wavenumber is sqrt(stiffness) pi degree / h: the frozen-coefficient
    (pi p / h)^2 underestimates what the finite elements resolve (measured on the P2 box
    mesh: lambda_max = 3.4 (pi p / h)^2 for the 2-d Laplacian, 2.4 for P1), and with it
    the explicit part's stiffness (a cluster kept with explicit diffusion 5x the implicit
    one blew up on ``tests/data/torus-cubic.toml`` while the bound said stable).
    """

    def __init__(self, operator, points: np.ndarray, h: np.ndarray, degree: int, dt: float,
                 stiffness: float = 1.0):
        self.operator, self.points, self.dt = operator, points, dt
        kmax = np.sqrt(stiffness) * np.pi * degree / h
        self.k = kmax[:, None] * 2.0 ** -np.arange(_K_LEVELS)[None, :]  # (m, K)

    def differences(self, P: np.ndarray, P_ref: np.ndarray):
        """Per site and point: |db|, the largest and smallest dD, the reference's D_min."""
        b, D = self.operator.coefficients(P, self.points)
        br, Dr = self.operator.coefficients(P_ref, self.points)
        db = np.sqrt(((b - br) ** 2).sum(axis=-1))
        dD = D - Dr
        return db, dD.max(axis=-1), dD.min(axis=-1), np.clip(Dr.min(axis=-1), 0.0, None)

    def excess(self, db, dDmax, dDmin, Dr, scheme: str, margin: float) -> np.ndarray:
        """Growth excess max |xi| - 1 over the wavenumbers, elementwise (leading axes)."""
        k = self.k.reshape((1,) * (db.ndim - 1) + self.k.shape)
        k2 = k * k
        x = -self.dt * 0.5 * Dr[..., None] * k2
        worst = None
        for dD in (dDmax, dDmin):
            w = margin * self.dt * (-0.5 * dD[..., None] * k2 + 1j * db[..., None] * k)
            g = _roots_max(x, w, scheme).max(axis=-1) - 1.0
            worst = g if worst is None else np.maximum(worst, g)
        return worst

    def group_excess(self, P, P_ref, scheme: str, margin: float) -> float:
        """Growth excess of sites ``P`` against one reference.

        Their worst case at every point together (the largest drift and diffusion
        differences).
        """
        db, dDmax, dDmin, Dr = self.differences(P, np.broadcast_to(P_ref, P.shape))
        env = (db.max(axis=0), dDmax.max(axis=0), dDmin.min(axis=0), Dr.min(axis=0))
        return float(self.excess(*env, scheme, margin).max())

    def cluster_excess(self, P, clusters: Clusters, scheme: str, margin: float) -> np.ndarray:
        """:meth:`group_excess` of every cluster (clusters,)."""
        db, dDmax, dDmin, Dr = self.differences(P, clusters.site_refs())
        C, m = clusters.count, db.shape[1]
        env_db, env_hi = np.full((C, m), -np.inf), np.full((C, m), -np.inf)
        env_lo, env_D = np.full((C, m), np.inf), np.full((C, m), np.inf)
        np.maximum.at(env_db, clusters.label, db)
        np.maximum.at(env_hi, clusters.label, dDmax)
        np.minimum.at(env_lo, clusters.label, dDmin)
        np.minimum.at(env_D, clusters.label, Dr)
        return self.excess(env_db, env_hi, env_lo, env_D, scheme, margin).max(axis=1)


def _split(P: np.ndarray, members: np.ndarray) -> list[np.ndarray]:
    """Two halves of ``members`` along the widest (scaled) parameter direction."""
    X = P[members]
    scale = np.abs(X).max(axis=0) + 1e-12
    Y = (X - X.mean(axis=0)) / scale
    if not np.any(Y):
        return [members[:1], members[1:]]
    _, _, vt = np.linalg.svd(Y, full_matrices=False)
    order = np.argsort(Y @ vt[0], kind="stable")
    cut = len(members) // 2
    return [np.sort(members[order[:cut]]), np.sort(members[order[cut:]])]


def _mean(P, members, weights):
    w = weights[members]
    return (P[members] * w[:, None]).sum(axis=0) / w.sum()


def _form(bound: StabilityBound, P, members, weights, scheme):
    """Parts (members, ref) covering ``members``, split as needed."""
    parts, todo = [], [members]
    while todo:
        group = todo.pop()
        if len(group) == 1:
            parts.append((group, P[group[0]].copy()))
            continue
        ref = _mean(P, group, weights)
        if bound.group_excess(P[group], ref, scheme, MARGIN_FORM) <= _GROWTH_TOL:
            parts.append((group, ref))
        else:
            todo.extend(_split(P, group))
    return parts


def update_clusters(clusters: Clusters | None, P: np.ndarray, weights: np.ndarray,
                    bound: StabilityBound, scheme: str) -> Clusters:
    """Clusters under which every site is stable (see the module docstring)."""
    B = len(P)
    if clusters is not None:
        excess = bound.cluster_excess(P, clusters, scheme, MARGIN_KEEP)
        if (excess <= _GROWTH_TOL).all():
            return clusters
        parts = []
        for c in range(clusters.count):
            members = np.flatnonzero(clusters.label == c)
            if not len(members):
                continue
            if excess[c] <= _GROWTH_TOL:
                parts.append((members, clusters.refs[c]))
            else:
                parts.extend(_form(bound, P, members, weights, scheme))
        version = clusters.version + 1
    else:
        parts = _form(bound, P, np.arange(B), weights, scheme)
        version = 1
    parts.sort(key=lambda item: item[0][0])
    label = np.empty(B, dtype=int)
    for c, (members, _) in enumerate(parts):
        label[members] = c
    return Clusters(label, np.array([p[1] for p in parts]), version)
