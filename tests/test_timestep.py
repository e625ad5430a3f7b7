"""Adaptive step control (fpsolver/kinetic/timestep.py): its local error weighting.

Exact functions of time stand in for the observables: the weights only depend on the
derivatives the four-point history resolves, so the expected values are closed-form.
"""

import numpy as np
import pytest

from fpsolver.kinetic.timestep import _forgetting


def _history(f, t0=0.01, dt=1e-3):
    ts = [t0 + i * dt for i in range(4)]
    return [(t, np.array([f(t)])) for t in ts], ts


def _miss(history, ts):
    (t0, s0), (t1, s1), (t2, s2), (t3, s3) = history
    l0 = (t3 - t1) * (t3 - t2) / ((t0 - t1) * (t0 - t2))
    l1 = (t3 - t0) * (t3 - t2) / ((t1 - t0) * (t1 - t2))
    l2 = (t3 - t0) * (t3 - t1) / ((t2 - t0) * (t2 - t1))
    return s3 - (l0 * s0 + l1 * s1 + l2 * s2)


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("lam", [20.0, 100.0, 400.0])
def test_a_relaxing_observable_forgets_at_its_rate(lam, sign):
    """An observable 1 +- exp(-lam t) gets the weight (1 - exp(-lam dt)) / dt.

    The rate comes from third over first derivative by finite differences over three
    steps of 1e-3, so lam dt <= 0.4 gives it to ~lam dt (20% at 400).
    """
    dt = 1e-3
    h, ts = _history(lambda t: 1 + sign * np.exp(-lam * t), dt=dt)
    w = _forgetting(_miss(h, ts), h)[0]
    assert w == pytest.approx(-np.expm1(-lam * dt) / dt, rel=0.6 * lam * dt + 0.01)


@pytest.mark.parametrize("f", [lambda t: np.exp(5 * t), lambda t: -np.exp(30 * t),
                               lambda t: np.sin(30 * t), lambda t: np.cos(30 * t),
                               lambda t: 1 + np.exp(-0.5 * t), lambda t: t**3])
def test_growing_oscillating_or_slow_observables_keep_the_unit_time_target(f):
    """Errors that grow, oscillate or decay slower than 1/time accumulate: weight 1."""
    h, ts = _history(f)
    assert _forgetting(_miss(h, ts), h)[0] == 1.0
