"""The moving frame of every site: y_g = ell_g(t) z_g, with ell_g^2 tracking Var(y_g).

The kinetic solver discretises each site's density in z (see
:mod:`fpsolver.kinetic.operator`), so the mesh resolves the density whatever its width
and however it narrows or widens. The frame u_g = ell_g^2 follows the variance ODE of the
density itself, written with two rates measured on it,

    du_g/dt = Dh_g - 2 kh_g u_g,   kh_g = -Cov(F_g, y_g) / Var(y_g),   Dh_g = <D_gg>,

since d Var(y_g)/dt = 2 Cov(F_g(vbar + y), y_g) + <D_gg> exactly (MODEL §2b). With
Var(y_g) = u_g Var(z_g) this gives d Var(z_g)/dt = Dh_g (1 - Var(z_g)) / u_g: the
density in z relaxes to unit variance, so errors in the frame never accumulate. For a
linear drift and additive noise kh = 1/tau and Dh = sigma^2 are constants and u is the
exact Lyapunov variance of MODEL §3: the density in z does not move at all.

Over a step the rates are extrapolated linearly from the last two time levels and the
ODE is integrated with classical RK4 on substeps of at most 1/(10 r) for the frame's
rate r = |Dh/u - 2 kh| (local error ~1e-7 r h per substep), so ell and its derivative
are smooth in time and a linear drift is followed exactly at any time step.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Frame", "MIN_SUBSTEPS"]

MIN_SUBSTEPS = 4
_SUBSTEP_RATE = 0.1  # r h per RK4 substep


class Frame:
    """Frames of ``count`` sites: ``u`` = ell^2 (count, 2) and the rates' history.

    Args:
        u0: initial ell^2 (count, 2), the initial variances.
        fixed: keep ell = 1 (the density is solved in y itself).
    """

    def __init__(self, u0: np.ndarray, *, fixed: bool = False):
        self.u = np.array(u0, dtype=float)
        self.fixed = fixed
        self.rates = None       # (kh, Dh) at the current time, each (count, 2)
        self.rates_old = None   # at the previous time level
        self.gap = 0.0          # time between the two levels

    @property
    def ell(self) -> np.ndarray:
        """Scale ell = sqrt(u) of every site and axis (count, 2)."""
        return np.sqrt(self.u)

    def ell_dot(self) -> np.ndarray:
        """Rate d ell / dt at the current time from the current rates (0 before any)."""
        if self.fixed or self.rates is None:
            return np.zeros_like(self.u)
        kh, Dh = self.rates
        return (Dh - 2 * kh * self.u) / (2 * np.sqrt(self.u))

    def set_rates(self, kh: np.ndarray, Dh: np.ndarray, dt: float = 0.0) -> None:
        """Record the rates measured at the current time level, ``dt`` after the last."""
        self.rates_old = self.rates
        self.rates = (np.array(kh, float), np.array(Dh, float))
        self.gap = dt

    def advance(self, dt: float) -> None:
        """Move u from t to t + dt with the rates extrapolated over the step."""
        if self.fixed or self.rates is None:
            return
        k1, D1 = self.rates
        if self.rates_old is None or not self.gap:
            k0, D0, ratio = k1, D1, 0.0
        else:
            k0, D0 = self.rates_old
            ratio = dt / self.gap  # the slope per step dt
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.nanmax(np.abs(np.concatenate([D1 / self.u - 2 * k1, D0 / self.u - 2 * k0])))
        substeps = max(MIN_SUBSTEPS, int(np.ceil(dt * r / _SUBSTEP_RATE)) if np.isfinite(r)
                       else MIN_SUBSTEPS)
        h = dt / substeps

        def rhs(u, s):  # s: time since the current level, in units of dt
            k = k1 + s * ratio * (k1 - k0)
            D = D1 + s * ratio * (D1 - D0)
            return D - 2 * k * u

        u = self.u
        for i in range(substeps):
            s0 = i / substeps
            a = rhs(u, s0)
            b = rhs(u + 0.5 * h * a, s0 + 0.5 / substeps)
            c = rhs(u + 0.5 * h * b, s0 + 0.5 / substeps)
            d = rhs(u + h * c, s0 + 1.0 / substeps)
            u = u + h / 6 * (a + 2 * b + 2 * c + d)
        self.u = u

    # -- checkpoint support ---------------------------------------------------------
    def state(self) -> dict:
        """Arrays that restore the frame exactly: u, the gap and both rate levels."""
        s = {"frame_u": self.u.copy(), "frame_gap": np.array(self.gap),
             "frame_have": np.array([self.rates is not None, self.rates_old is not None])}
        if self.rates is not None:
            s["frame_k"], s["frame_D"] = self.rates
        if self.rates_old is not None:
            s["frame_k_old"], s["frame_D_old"] = self.rates_old
        return s

    def restore(self, s: dict) -> None:
        """Set the frame from :meth:`state`'s arrays."""
        self.u = np.array(s["frame_u"], float)
        self.gap = float(s["frame_gap"])
        have, have_old = (bool(x) for x in s["frame_have"])
        self.rates = (np.array(s["frame_k"]), np.array(s["frame_D"])) if have else None
        self.rates_old = ((np.array(s["frame_k_old"]), np.array(s["frame_D_old"]))
                          if have_old else None)
