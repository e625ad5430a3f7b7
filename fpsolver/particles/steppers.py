"""One linearly implicit Euler-Maruyama step of the whole network, two implementations.

Both follow :mod:`fpsolver.particles.coupling`: a pass over the pairs computes the
explicit increment e1 = dt F(v) + S(v) sqrt(dt) xi and the feature sums of G, G' and
G' e1; a (2 rank)-sized linear solve gives the shift coefficients Y; the state moves by
v += e1 + Phi(x_j) . Y. The steppers store w = v + e1 and keep Y: the shift is applied
at the start of the next pass (or by :meth:`state` when the state is looked at).

- :class:`NumbaStepper`: the built-in families compiled in (:mod:`.kernels`), their
  parameters read from the model's families (:meth:`~fpsolver.model.Model.family`), one
  parallel pass per step over fixed blocks of pairs (deterministic sums), normals drawn
  inside it.
- :class:`NumpyStepper`: any :class:`~fpsolver.model.Model` (user callables for F, S, G),
  plain numpy, same maths and the same normals (:meth:`.noise.NormalStream.draw`): with
  built-in families both agree to round-off.
"""

from __future__ import annotations

import numpy as np

from fpsolver.families import COMPILED_GAINS
from fpsolver.model import Model
from fpsolver.particles import kernels
from fpsolver.particles.coupling import LowRank
from fpsolver.particles.noise import NormalStream
from fpsolver.particles.positions import Layout
from fpsolver.scenario import PAIRS

__all__ = ["NumbaStepper", "NumpyStepper", "BLOCK", "block_size", "kernel_params"]

BLOCK = 8192  # target pairs per block (summation and generator blocks)
_FAMILIES = {"linear": 0, "double_well": 1, "cubic": 2}


def block_size(n: int, rank: int) -> int:
    """Pairs per block: about ``BLOCK``, with a multiple of 8 blocks.

    So 1, 2, 4 or 8 threads get equal shares; at most 64 blocks when rank > 16 (the
    partial sums, blocks x rank, stay cheap to zero and add). Depends on n and rank only,
    never on the threads: the blocks fix both the summation order and which generator
    draws which normal.
    """
    blocks = 8 * -(-n // (8 * BLOCK))
    if rank > 16:
        blocks = min(blocks, 64)
    return -(-n // blocks)


def kernel_params(model: Model, dt: float) -> np.ndarray:
    """The parameter vector ``p`` of :mod:`.kernels` (layout ``PARAM_NAMES``).

    Read from the model's built-in F and S families (parameters a family lacks are unused
    by it).
    """
    F, S = model.family("F").params, model.family("S").params
    L = F["coupling"]
    return np.array([dt, np.sqrt(dt), *F["tau"], *L[0], *L[1],
                     *F.get("center", (0.0, 0.0)), *F.get("width", (1.0, 1.0)),
                     *F.get("cubic", (0.0, 0.0)), *S["sigma"], *S["kappa"]], dtype=float)


class _Base:
    def __init__(self, model: Model, layout: Layout, lowrank: LowRank, noise: NormalStream,
                 v0: np.ndarray, dt: float, implicit: bool):
        self.model, self.layout, self.lowrank, self.noise = model, layout, lowrank, noise
        self.n = len(v0)
        self.w = np.array(v0, dtype=float, order="C")  # v + e1 before the shift
        self.Y = np.zeros((2, lowrank.rank))  # shift of the last step, still to apply
        self.dt = dt
        self.h = dt * np.sqrt(self.n)
        self.implicit = implicit
        self.vsum = np.zeros(2)  # sum of v at the start of the last step (health check)

    def state(self) -> np.ndarray:
        """The current state (n, 2): applies the pending shift to w in place."""
        self._apply()
        self.Y[:] = 0.0
        return self.w


class NumbaStepper(_Base):
    """Compiled stepper for the built-in families (see :mod:`.kernels`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if (not self.model.builtin("F", "S", "G")
                or self.model.family("G").name not in COMPILED_GAINS):
            raise ValueError("NumbaStepper needs the built-in F, S and the gains "
                             f"{COMPILED_GAINS}")
        gains = self.model.family("G")
        self.p = kernel_params(self.model, self.dt)
        self.fam = _FAMILIES[self.model.family("F").name]
        self.tanh = gains.name == "tanh"
        self.C = np.array(gains.params["C"])
        self.block = self.noise.block
        blocks = len(self.noise.state)
        self.partial = (np.zeros((blocks, kernels.COS_STATS)) if self.layout.cosine
                        else np.zeros((blocks, kernels.BIN_STATS, self.lowrank.rank)))

    def step(self) -> None:
        """One Euler-Maruyama step of all pairs: a compiled pass, then the input shift Y."""
        n, C, lay, rng = self.n, self.C, self.layout, self.noise.state
        if lay.cosine:
            kernels.cosine_pass(self.w, lay.cs, self.Y, rng, self.p, self.fam, self.tanh,
                                self.block, self.partial)
            s = self.partial.sum(axis=0) / n
            per_b = s[:24].reshape(2, 12)
            g, u = per_b[:, 0:3], per_b[:, 3:6]
            one, c, si, cc, csn, ss = per_b[:, 6:12].T
            Tb = np.stack([np.stack([one, c, si], -1), np.stack([c, cc, csn], -1),
                           np.stack([si, csn, ss], -1)], axis=1)  # (b, q, r)
            T = C[:, :, None, None] * Tb[None]
            self.vsum = s[24:26] * n
        else:
            kernels.bins_pass(self.w, lay.bins, self.Y, rng, self.p, self.fam, self.tanh,
                              self.block, self.partial)
            s = self.partial.sum(axis=0) / n  # (BIN_STATS, R)
            g, u = s[0:2], s[4:6]
            T = C[:, :, None] * s[None, 2:4]
            self.vsum = s[6:8].sum(axis=1) * n
        self.Y = self.lowrank.solve(C[:, :, None] * g[None], C[:, :, None] * u[None], T,
                                    self.h, self.implicit)

    def _apply(self) -> None:
        lay = self.layout
        if lay.cosine:
            kernels.apply_cosine(self.w, lay.cs, self.Y, self.block)
        else:
            kernels.apply_bins(self.w, lay.bins, self.Y, self.block)


class NumpyStepper(_Base):
    """Plain numpy stepper for any model (user callables ``F``, ``S_diag``, ``G``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        lay = self.layout
        if lay.cosine:
            self.psi = np.column_stack([np.ones(self.n), lay.cs])  # (n, 3)

    def _shift(self) -> np.ndarray:
        if self.layout.cosine:
            return self.psi @ self.Y.T
        return self.Y.T[self.layout.bins]

    def _apply(self) -> None:
        self.w += self._shift()

    def _sums(self, w: np.ndarray) -> np.ndarray:
        """(1/n) sum_k Psi_q(x_k) w_k, shape (rank,)."""
        if self.layout.cosine:
            return w @ self.psi / self.n
        return np.bincount(self.layout.bins, w, self.lowrank.rank) / self.n

    def step(self) -> None:
        """One Euler-Maruyama step of all pairs in numpy, then the input shift Y."""
        m = self.model
        xi = self.noise.draw()
        v = self.state()
        ve, vi = v[:, 0], v[:, 1]
        self.vsum = v.sum(axis=0)
        Fe, Fi = m.F(ve, vi, np)
        Se, Si = m.S_diag(ve, vi, np)
        sq = np.sqrt(self.dt)
        e1 = np.column_stack([self.dt * Fe + Se * sq * xi[:, 0],
                              self.dt * Fi + Si * sq * xi[:, 1]])
        self.w = v + e1
        R = self.lowrank.rank
        g = np.empty((2, 2, R))
        u = np.empty((2, 2, R))
        T = np.empty((2, 2, R) if not self.layout.cosine else (2, 2, R, R))
        for idx, ab in enumerate(PAIRS):
            a, b = divmod(idx, 2)
            vb = v[:, b]
            gp = np.broadcast_to(m.G_prime[ab](vb, np), vb.shape)
            g[a, b] = self._sums(np.broadcast_to(m.G[ab](vb, np), vb.shape))
            u[a, b] = self._sums(gp * e1[:, b])
            if self.layout.cosine:
                T[a, b] = (self.psi * gp[:, None]).T @ self.psi / self.n
            else:
                T[a, b] = self._sums(gp)
        self.Y = self.lowrank.solve(g, u, T, self.h, self.implicit)
