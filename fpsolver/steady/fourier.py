"""The slow spectrum of a homogeneous state on a ring or torus, one Fourier mode at a time.

On a ring (S sites x_j = 2 pi j / S) or a torus (m x m sites) the coupling
W_ab(x, x') = s_b J_ab(x, x') w is circulant (block-circulant on the torus) when the
kernel depends on the periodic displacement x' - x only. If the stationary state is also
the same at every site (q, vbar, m, ell: no input modulation), every piece of the
linearised operator (:mod:`fpsolver.steady.spectrum`) commutes with the lattice
translations, and dq_x = e^{i k.x} dq_k, dvbar_x = e^{i k.x} dvbar_k, xi likewise, split
it into one problem per wavenumber k of one site's size:

    M d(dq_k)/dt = A dq_k + B dm_k + D dvbar_k      (and the deflation, as before)
    dm_k   = F^T dq_k + <DF> dvbar_k
    0      = (H_k dvbar_k + Gamma_k dq_k)_a          for a in R(k)
    d xi_a/dt = (dm_k)_a,  (dvbar_k)_a = xi_a       for a not in R(k)

with W_k = sum_d W(d) e^{i k.d} (2 x 2), H_k = W_k <G'> and Gamma_k = W_k <G, .>
entrywise. R(k): the populations whose range U (:mod:`fpsolver.balance`) holds mode k.
A translation-invariant range is a sum of Fourier modes, so U and its complement U_f
split by mode: mode k of population a is either constrained or free (one xi). This is
the one-site operator of :mod:`~fpsolver.steady.spectrum` with W = W_k, U = the columns
R(k) of I_2 and U_f the others, solved by the same code.

Real problems. The kernels are even in d, so W_k is real (checked): each mode's problem
is real (PETSc here has real scalars) and k, -k share it, so e^{+-i k.x} v are both
eigenfunctions (a degenerate pair: cos and sin). The problem depends on k only through
(W_k, R(k)); the modes with equal values (k and -k, the torus' symmetries, every |k| >= 2
of a cosine kernel) form a group solved once, each eigenvalue listed once per mode. A
group of g modes needs the ceil(count / g) eigenvalues nearest the target; the merged
list keeps the ``count`` nearest, ordered by real part (with the default target, the
rightmost: the full route's set).

Cost: one sparse LU of A - sigma M (the same for every mode) and one Krylov-Schur run of
one site's size per group, instead of one on S sites. Each group runs the full route's
own shell operator and SLEPc settings on COMM_SELF (not scipy's eigs), so tolerances and
residuals mean the same on both routes. The groups are spread over the ranks; the site's
density comes from the rank holding site 0.

The full route is taken (logged at INFO) on other spaces, for a kernel that is not
circulant or not even (a complex W_k would need the k, -k pair as real 2 x 2 blocks), a
range that does not split by modes, or site states that differ by more than HOMOGENEOUS.

Measured (one rank of a loaded 2-core machine): ``ring-bump`` with ``input_cos = 0``,
32 sites, 48 x 48 P2 cells (301,146 unknowns), 10 eigenvalues: the whole operator
277 s, by mode 0.58 s (3 mode problems: k = 0, +-1 and the 29 free modes, whose 29-fold
eigenvalue the whole operator's Krylov-Schur finds slowly), equal to 4e-11; with an
exponential kernel (17 mode problems) 3.8 s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from fpsolver.circulant import lattice_grid, lattice_shape
from fpsolver.steady.spectrum import (
    Coupling,
    LinearisedOperator,
    LinearisedSites,
    Spectrum,
    eigenpairs,
)

__all__ = ["FourierModes", "fourier_modes", "fourier_spectrum", "HOMOGENEOUS"]

logger = logging.getLogger(__name__)

HOMOGENEOUS = 1e-10  # spread of the site states, relative to their scale
CIRCULANT = 1e-12    # deviation of W from circulant, and Im W_k, relative to the kernel
PURE = 1e-8          # a mode's squared projection on the range: within this of 0 or 1


@dataclass
class FourierModes:
    """The Fourier decomposition of a homogeneous state's linearised operator.

    Attributes:
        shape: the lattice, (S,) on a ring, (m, m) on a torus; sites in C order.
        wavenumbers: (S, dim) integer k of each mode (mode j: np.fft order of ``shape``).
        symbols: (S, 2, 2) the real W_k of each mode.
        in_range: (S, 2) whether population a's range holds mode k.
        groups: index arrays of the modes sharing one problem (k = 0's first).
        site: (q, vbar, m, ell) of every site.
    """

    shape: tuple
    wavenumbers: np.ndarray
    symbols: np.ndarray
    in_range: np.ndarray
    groups: list
    site: tuple


def fourier_modes(model, state, coupling: Coupling, comm) -> FourierModes | None:
    """The decomposition of ``state``'s operator by mode, or None (why: logged at INFO).

    Collective on ``comm``.
    """
    shape = lattice_shape(model.sites)
    reason = f"space kind {model.sites.kind!r}" if shape is None else None
    if reason is None:
        symbols, reason = _symbols(coupling.W, shape)
    if reason is None:
        in_range, reason = _range_modes(coupling.U, shape)
    if reason is None:
        site, reason = _common_site(state, comm)
    if reason is not None:
        if comm.rank == 0:
            logger.info("spectrum: the full operator, not mode by mode: %s", reason)
        return None
    S = len(symbols)
    scale = max(np.abs(symbols).max(), 1e-300)
    keys = np.column_stack([np.round(symbols.reshape(S, 4) / scale, 12) + 0.0, in_range])
    _, label = np.unique(keys, axis=0, return_inverse=True)
    groups = sorted((np.flatnonzero(label.ravel() == g) for g in np.unique(label)),
                    key=lambda g: g[0])
    freqs = [np.rint(np.fft.fftfreq(n, 1.0 / n)).astype(int) for n in shape]
    k = np.stack(np.meshgrid(*freqs, indexing="ij"), -1).reshape(S, len(shape))
    return FourierModes(shape, k, symbols, in_range, groups, site)


def _symbols(W: np.ndarray, shape: tuple):
    """(W_k (S, 2, 2), None), or (None, why) if W is not circulant with real symbols."""
    S = int(np.prod(shape))
    idx = np.indices(shape).reshape(len(shape), S)
    step = (idx[:, None, :] - idx[:, :, None]) % np.array(shape)[:, None, None]
    diff = np.ravel_multi_index(tuple(step), shape)          # diff[j, l]: x_l - x_j
    row = W[:, :, 0, :]                                       # W(d) = W[a, b, 0, d]
    scale = max(np.abs(W).max(), 1e-300)
    if max(np.abs(W[a, b] - row[a, b][diff]).max() for a in range(2) for b in range(2)) \
            > CIRCULANT * scale:
        return None, "the kernel is not translation invariant on the sites"
    axes = tuple(range(2, 2 + len(shape)))
    sym = S * np.fft.ifftn(row.reshape(2, 2, *shape), axes=axes).reshape(2, 2, S)
    if np.abs(sym.imag).max() > CIRCULANT * S * scale:
        return None, "the kernel is not even (complex Fourier symbols)"
    return sym.real.transpose(2, 0, 1).copy(), None


def _range_modes(U: np.ndarray, shape: tuple):
    """(in_range (S, 2), None), or (None, why) if the range does not split by modes."""
    S = int(np.prod(shape))
    axes = tuple(range(len(shape)))
    proj = np.empty((S, 2))
    for a in range(2):
        Ua = U[a * S:(a + 1) * S].reshape(*shape, -1)
        proj[:, a] = (np.abs(np.fft.fftn(Ua, axes=axes)) ** 2).sum(-1).reshape(S) / S
    if np.minimum(proj, 1 - proj).max() > PURE:
        return None, "the range of the balanced input is not a sum of Fourier modes"
    return proj > 0.5, None


def _common_site(state, comm):
    """((q, vbar, m, ell), None) of the sites if they agree to HOMOGENEOUS, else (None, why)."""
    from mpi4py import MPI

    for name in ("vbar", "m", "ell"):
        arr = getattr(state, name)
        spread = np.ptp(arr, axis=0).max()
        if spread > HOMOGENEOUS * max(1.0, np.abs(arr).max()):
            return None, f"the stationary state differs between sites ({name} spread {spread:.2e})"
    has = any(int(s) == 0 for s in state.sites)
    root = comm.allreduce(comm.rank if has else comm.size, op=MPI.MIN)
    q0 = comm.bcast(state.q[0] if comm.rank == root else None, root=root)
    spread = max((np.abs(state.q[int(s)] - q0).max() for s in state.sites), default=0.0)
    spread = comm.allreduce(float(spread), op=MPI.MAX)
    if spread > HOMOGENEOUS * np.abs(q0).max():
        return None, f"the stationary densities differ between sites (spread {spread:.2e})"
    return (q0, state.vbar[0], state.m[0], state.ell[0]), None


def fourier_spectrum(modes: FourierModes, state, count: int, target: float, mu: float, comm,
                     vectors: bool, tol: float) -> Spectrum:
    """The ``count`` eigenvalues nearest ``target``, mode group by mode group (module doc)."""
    from mpi4py import MPI

    loc = LinearisedSites(state.space, [0], [modes.site], target, mu)
    found, kept, converged = [], [], 0
    for g in range(comm.rank, len(modes.groups), comm.size):
        group = modes.groups[g]
        R = modes.in_range[group[0]]
        coupling = Coupling(modes.symbols[group[0]].reshape(2, 2, 1, 1), np.eye(2)[:, R],
                            np.eye(2)[:, ~R])
        op = LinearisedOperator(loc, coupling, target, MPI.COMM_SELF)
        need = min(-(-count // len(group)), op.local_size - 5)
        lams, res, vecs = eigenpairs(op, MPI.COMM_SELF, need, target, tol)
        converged += len(lams)
        for i in np.argsort(np.abs(lams - target), kind="stable")[:need]:
            found.append((lams[i], res[i], g, comm.rank, len(kept)))
            kept.append((vecs[i][:loc.n], op.dvbar(vecs[i].real) + 1j * op.dvbar(vecs[i].imag))
                        if vectors else None)
    rows = [(lam, r, mode, owner, j) for part in comm.allgather(found)
            for lam, r, g, owner, j in part for mode in modes.groups[g]]
    lams = np.array([row[0] for row in rows])
    pick = np.argsort(np.abs(lams - target), kind="stable")[:count]
    pick = pick[np.argsort(-lams[pick].real, kind="stable")]
    vec_out = dvbar = None
    if vectors:
        vec_out, dvbar = _eigenfunctions(modes, state, [rows[i] for i in pick], kept, comm)
    loc.destroy()
    info = {"route": "fourier", "converged": comm.allreduce(converged),
            "unknowns": int(loc.n + (~modes.in_range).sum(1).max()),
            "mode_problems": len(modes.groups), "modes": len(modes.symbols)}
    return Spectrum(eigenvalues=lams[pick], target=target,
                    residuals=np.array([rows[i][1] for i in pick]), vectors=vec_out,
                    dvbar=dvbar, info=info,
                    modes=modes.wavenumbers[[rows[i][2] for i in pick]])


def _eigenfunctions(modes: FourierModes, state, rows, kept, comm):
    """The selected eigenfunctions on this rank's sites: e^{i k.x} (dq_k, dvbar_k) / sqrt(S)."""
    S = len(modes.symbols)
    x = lattice_grid(modes.shape)
    dq, dvbar = [], []
    for _, _, mode, owner, j in rows:
        v, dv = comm.bcast(kept[j] if comm.rank == owner else None, root=owner)
        phase = np.exp(1j * x @ modes.wavenumbers[mode]) / np.sqrt(S)
        dq.append((phase, v))
        dvbar.append(phase[:, None] * dv[0])
    vec = {int(s): np.array([phase[s] * v for phase, v in dq]) for s in state.sites}
    return vec, np.array(dvbar)
