"""Compiled (numba) per-pair kernels of one Euler-Maruyama step (MODEL §1).

For every pair j the step needs, at the state v^j = (v_e^j, v_i^j) of the start of the
step (Itô: drift and noise matrix evaluated there):

    e1_a^j = dt F_a(v^j) + S_aa(v^j) sqrt(dt) xi_a^j,        xi ~ N(0, 1) i.i.d.,
    g_b(v_b^j), g_b'(v_b^j)  with G_ab = C_ab g_b  (g = identity or tanh),

and accumulates the sums that the low-rank balanced input needs (see
:mod:`fpsolver.particles.coupling`): sum of g, of g' (times the features) and of
g' e1. One pass per step does all of it: it applies the shift of the last step
(v = w + Phi(x_j) . Y), draws the normals xi (:mod:`.noise`, in registers), and stores
only w = v + e1, so the state is read and written once per step and no normals go
through memory. The sums are taken in fixed blocks of pairs (``partial[block]``, the
blocks of the generators) and the blocks are added in block order afterwards, so the
result does not depend on the number of threads or their scheduling (same seed ->
bit-identical output).

The families compiled in are the built-in ones of :mod:`fpsolver.families`:
F in {linear, double_well, cubic} plus the linear e-i coupling, S diagonal or
multiplicative (``S_aa = sigma_a sqrt(1 + kappa_a v_a^2)``), g in {linear, tanh}.
Parameters travel in one float64 vector ``p`` (layout in :data:`PARAM_NAMES`).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from fpsolver.particles.noise import normal

__all__ = ["PARAM_NAMES", "bins_pass", "cosine_pass", "apply_bins", "apply_cosine",
           "BIN_STATS", "COS_STATS"]

PARAM_NAMES = ("dt", "sqrt_dt", "tau_e", "tau_i", "L_ee", "L_ei", "L_ie", "L_ii",
               "center_e", "center_i", "width_e", "width_i", "cubic_e", "cubic_i",
               "sigma_e", "sigma_i", "kappa_e", "kappa_i")
BIN_STATS = 8  # per bin: g_e, g_i, g'_e, g'_i, g'_e e1_e, g'_i e1_i, v_e, v_i
COS_STATS = 26  # per population 12 (3 g psi, 3 g' e1 psi, 6 g' psi phi) + v_e, v_i

_JIT = dict(nogil=True, fastmath=False, cache=True)


@nb.njit(inline="always", **_JIT)
def _tanh(z):
    """(tanh z, 1 - tanh^2 z) from one exp.

    With e = exp(-2|z|) and d = 1/(1 + e), tanh|z| = (1 - e) d and tanh' = 4 e d^2
    (absolute error ~1e-16; no cancellation in the derivative at large |z|).
    """
    e = math.exp(-2.0 * abs(z))
    d = 1.0 / (1.0 + e)
    t = (1.0 - e) * d
    return (t if z >= 0.0 else -t), 4.0 * e * d * d


@nb.njit(inline="always", **_JIT)
def _pair(ve, vi, xe, xi, p, fam, tanh_gain):
    """(e1_e, e1_i, g_e, g_i, g'_e, g'_i) of one pair."""
    tau_e, tau_i = p[2], p[3]
    if fam == 0:
        fe = -ve / tau_e
        fi = -vi / tau_i
    elif fam == 1:
        ue = ve - p[8]
        ui = vi - p[9]
        fe = (ue - ue * ue * ue / (p[10] * p[10])) / tau_e
        fi = (ui - ui * ui * ui / (p[11] * p[11])) / tau_i
    else:
        fe = -ve / tau_e - p[12] * ve * ve * ve
        fi = -vi / tau_i - p[13] * vi * vi * vi
    fe += p[4] * ve + p[5] * vi
    fi += p[6] * ve + p[7] * vi
    se = p[14] * math.sqrt(1.0 + p[16] * ve * ve) if p[16] != 0.0 else p[14]
    si = p[15] * math.sqrt(1.0 + p[17] * vi * vi) if p[17] != 0.0 else p[15]
    e1e = p[0] * fe + se * p[1] * xe
    e1i = p[0] * fi + si * p[1] * xi
    if tanh_gain:
        ge, gpe = _tanh(ve)
        gi, gpi = _tanh(vi)
    else:
        ge = ve
        gi = vi
        gpe = 1.0
        gpi = 1.0
    return e1e, e1i, ge, gi, gpe, gpi


@nb.njit(parallel=True, **_JIT)
def bins_pass(w, bins, Y, rng, p, fam, tanh_gain, block, partial):
    """One step's pass over the pairs with bin (site) features.

    Args:
        w: (n, 2) the pre-shift states v + e1 of the last step, overwritten by this
            step's: v = w + Y[:, bin] is the state at the start of the step, then
            w = v + e1 with the normals drawn here.
        bins: bin of each pair (n,), sorted (runs of equal bins are summed in registers).
        Y: per-bin shift of the last step (2, bins).
        rng: the per-block generator states of :class:`.noise.NormalStream`, advanced.
        p: the parameters (layout :data:`PARAM_NAMES`).
        fam: the drift family: 0 linear, 1 double_well, 2 cubic.
        tanh_gain: g = tanh (True) or the identity (False).
        block: pairs per block.
        partial: output sums (blocks, BIN_STATS, bins), zeroed here.
    """
    n = w.shape[0]
    for blk in nb.prange(partial.shape[0]):
        acc = partial[blk]
        acc[:, :] = 0.0
        a, b, c, k = rng[blk, 0], rng[blk, 1], rng[blk, 2], rng[blk, 3]
        hi = min(n, (blk + 1) * block)
        j = blk * block
        while j < hi:
            q = bins[j]
            ye = Y[0, q]
            yi = Y[1, q]
            s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
            while j < hi and bins[j] == q:
                ve = w[j, 0] + ye
                vi = w[j, 1] + yi
                xe, a, b, c, k = normal(a, b, c, k)
                xi, a, b, c, k = normal(a, b, c, k)
                e1e, e1i, ge, gi, gpe, gpi = _pair(ve, vi, xe, xi, p, fam, tanh_gain)
                w[j, 0] = ve + e1e
                w[j, 1] = vi + e1i
                s0 += ge
                s1 += gi
                s2 += gpe
                s3 += gpi
                s4 += gpe * e1e
                s5 += gpi * e1i
                s6 += ve
                s7 += vi
                j += 1
            acc[0, q] += s0
            acc[1, q] += s1
            acc[2, q] += s2
            acc[3, q] += s3
            acc[4, q] += s4
            acc[5, q] += s5
            acc[6, q] += s6
            acc[7, q] += s7
        rng[blk, 0], rng[blk, 1], rng[blk, 2], rng[blk, 3] = a, b, c, k


@nb.njit(inline="always", **_JIT)
def _ring_shift(Y, a, c, s):
    return Y[a, 0] + Y[a, 1] * c + Y[a, 2] * s


@nb.njit(parallel=True, **_JIT)
def cosine_pass(w, cs, Y, rng, p, fam, tanh_gain, block, partial):
    """One step's pass over the pairs with the ring features (1, cos x_j, sin x_j).

    As :func:`bins_pass`; ``cs`` is (n, 2) = (cos x_j, sin x_j); ``Y`` is (2, 3): the
    shift of pair j is Y[a, 0] + Y[a, 1] cos x_j + Y[a, 2] sin x_j. ``partial`` is
    (blocks, COS_STATS): for population b at offset 12 b: sum g psi_q (3), sum g' e1 psi_q
    (3), sum g' times (1, c, s, c^2, c s, s^2) (6); then sum v_e, sum v_i.
    """
    n = w.shape[0]
    for blk in nb.prange(partial.shape[0]):
        acc = np.zeros(COS_STATS)
        a, b, cc, k = rng[blk, 0], rng[blk, 1], rng[blk, 2], rng[blk, 3]
        for j in range(blk * block, min(n, (blk + 1) * block)):
            c = cs[j, 0]
            s = cs[j, 1]
            ve = w[j, 0] + _ring_shift(Y, 0, c, s)
            vi = w[j, 1] + _ring_shift(Y, 1, c, s)
            xe, a, b, cc, k = normal(a, b, cc, k)
            xi, a, b, cc, k = normal(a, b, cc, k)
            e1e, e1i, ge, gi, gpe, gpi = _pair(ve, vi, xe, xi, p, fam, tanh_gain)
            w[j, 0] = ve + e1e
            w[j, 1] = vi + e1i
            for pop in range(2):
                g = ge if pop == 0 else gi
                gp = gpe if pop == 0 else gpi
                ge1 = gp * (e1e if pop == 0 else e1i)
                o = 12 * pop
                acc[o] += g
                acc[o + 1] += g * c
                acc[o + 2] += g * s
                acc[o + 3] += ge1
                acc[o + 4] += ge1 * c
                acc[o + 5] += ge1 * s
                acc[o + 6] += gp
                acc[o + 7] += gp * c
                acc[o + 8] += gp * s
                acc[o + 9] += gp * c * c
                acc[o + 10] += gp * c * s
                acc[o + 11] += gp * s * s
            acc[24] += ve
            acc[25] += vi
        partial[blk, :] = acc
        rng[blk, 0], rng[blk, 1], rng[blk, 2], rng[blk, 3] = a, b, cc, k


@nb.njit(parallel=True, **_JIT)
def apply_bins(w, bins, Y, block):
    """Apply the shift of the last step, w += Y[:, bin], in place."""
    n = w.shape[0]
    for blk in nb.prange((n + block - 1) // block):
        for j in range(blk * block, min(n, (blk + 1) * block)):
            q = bins[j]
            w[j, 0] += Y[0, q]
            w[j, 1] += Y[1, q]


@nb.njit(parallel=True, **_JIT)
def apply_cosine(w, cs, Y, block):
    """Apply the shift of the last step, w += Y[:, 0] + Y[:, 1] cos x + Y[:, 2] sin x."""
    n = w.shape[0]
    for blk in nb.prange((n + block - 1) // block):
        for j in range(blk * block, min(n, (blk + 1) * block)):
            c = cs[j, 0]
            s = cs[j, 1]
            w[j, 0] += _ring_shift(Y, 0, c, s)
            w[j, 1] += _ring_shift(Y, 1, c, s)


@nb.njit(**_JIT)
def bin_power_sums(v, bins, nbins):
    """Per-bin central power sums of the state, sequential (deterministic).

    Returns:
        (mean (B, 2), S (B, 7)) with S = sums of y_e^2, y_e y_i, y_i^2, y_e^3, y_i^3,
        y_e^4, y_i^4 where y = v - mean of the bin.
    """
    n = v.shape[0]
    cnt = np.zeros(nbins)
    mean = np.zeros((nbins, 2))
    for j in range(n):
        q = bins[j]
        cnt[q] += 1.0
        mean[q, 0] += v[j, 0]
        mean[q, 1] += v[j, 1]
    for q in range(nbins):
        if cnt[q] > 0:
            mean[q, 0] /= cnt[q]
            mean[q, 1] /= cnt[q]
    S = np.zeros((nbins, 7))
    for j in range(n):
        q = bins[j]
        ye = v[j, 0] - mean[q, 0]
        yi = v[j, 1] - mean[q, 1]
        ye2 = ye * ye
        yi2 = yi * yi
        S[q, 0] += ye2
        S[q, 1] += ye * yi
        S[q, 2] += yi2
        S[q, 3] += ye2 * ye
        S[q, 4] += yi2 * yi
        S[q, 5] += ye2 * ye2
        S[q, 6] += yi2 * yi2
    return mean, S
