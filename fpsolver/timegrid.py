"""The recording time grid shared by every solver (particles, Gaussian, kinetic)."""

from __future__ import annotations

import numpy as np

__all__ = ["record_times"]


def record_times(t_end: float, every: float) -> np.ndarray:
    """Recording grid 0, every, 2 every, ..., ending exactly at t_end (time units)."""
    count = int(np.floor(t_end / every + 1e-9))
    t = every * np.arange(count + 1)
    return t if np.isclose(t[-1], t_end) else np.append(t, t_end)
