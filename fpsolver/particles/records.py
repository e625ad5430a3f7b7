"""Observables of the particle state, per recording bin (MODEL §2 quantities).

For the pairs j in bin q (count N_q), with y = v - mean:

- ``vbar[q, a]`` = mean of v_a;
- ``cov[q, a, b]`` = (1/N_q) sum y_a y_b (population covariance, divisor N_q);
- ``skewness[q, a]`` = E[y_a^3] / K_aa^(3/2);
- ``kurtosis[q, a]`` = E[y_a^4] / K_aa^2 (plain, not excess: a Gaussian gives 3).

Skewness and kurtosis are NaN in bins with fewer than 2 pairs or zero variance.
"""

from __future__ import annotations

import numpy as np

from fpsolver.particles.kernels import bin_power_sums

__all__ = ["bin_moments", "fourier1", "snapshot_index"]

MAX_SNAPSHOT_PAIRS = 100_000


def bin_moments(v: np.ndarray, bins: np.ndarray, count: np.ndarray):
    """(vbar (B, 2), cov (B, 2, 2), skewness (B, 2), kurtosis (B, 2)) of the state ``v``."""
    mean, S = bin_power_sums(v, bins, len(count))
    c = np.maximum(count, 1)[:, None].astype(float)
    S = S / c
    cov = np.stack([np.stack([S[:, 0], S[:, 1]], -1), np.stack([S[:, 1], S[:, 2]], -1)], 1)
    var = S[:, [0, 2]]
    ok = (count[:, None] >= 2) & (var > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = np.where(ok, S[:, 3:5] / var**1.5, np.nan)
        kurt = np.where(ok, S[:, 5:7] / var**2, np.nan)
    return mean, cov, skew, kurt


def fourier1(v: np.ndarray, cs: np.ndarray) -> np.ndarray:
    """First Fourier mode of the population means, (1/n) sum_j v_a^j (cos x_j, sin x_j).

    Returns:
        shape (2, 2): [re/im, population].
    """
    return cs.T @ v / len(v)


def snapshot_index(n: int) -> np.ndarray:
    """At most 100k pairs, evenly strided (deterministic): the pairs kept in snapshots."""
    stride = max(1, -(-n // MAX_SNAPSHOT_PAIRS))
    return np.arange(0, n, stride)
