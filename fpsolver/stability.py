"""Stability of the balanced state on the fast time scale (MODEL §4) and the finite-n offset.

On the fast time s = sqrt(n) t the deviation from the balance manifold obeys
d(delta)/ds = DPhi delta, with DPhi the Jacobian of the constraint (MODEL §2a) restricted
to the range of the balanced input. The balanced state is

- attracting if every eigenvalue has negative real part;
- oscillating if the leading eigenvalues are purely imaginary, +-i w: undamped fast
  oscillations of angular frequency w sqrt(n) (in units of 1/time);
- unstable (no balanced state) if an eigenvalue has positive real part.

On the ring with the cosine kernel and a homogeneous state, DPhi splits by Fourier mode:
mode 0 uses c_ab[0], modes +-1 use c_ab[1]/2, each times s_b <G_ab'>.

Finite-n offset (MODEL §2c): Phi(vbar_n) ~= lambda / sqrt(n), so
vbar_n ~= vbar + DPhi^{-1} lambda / sqrt(n), lambda = d vbar/dt - <F(vbar + y)>
(:mod:`fpsolver.finite_n`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fpsolver import finite_n
from fpsolver.balance import BalanceConstraint
from fpsolver.gaussian import gaussian_expectations, run_gaussian
from fpsolver.model import SIGNS, Model, build_model
from fpsolver.scenario import PAIRS, Scenario

__all__ = ["StabilityReport", "analyse_stability", "mode_matrices"]

_IMAG_TOL = 1e-8  # |Re| below this (relative to the spectral radius) counts as zero


@dataclass
class StabilityReport:
    """Result of :func:`analyse_stability` at one time of the balanced trajectory.

    Attributes:
        time: time of the balanced state analysed (time units).
        vbar_mean: site-averaged balanced means (e, i).
        eigenvalues: leading eigenvalues of the fast Jacobian (complex, by decreasing Re).
        modes: on the homogeneous cosine ring, Fourier mode -> its 2 eigenvalues.
        verdict: ``attracting``, ``oscillating`` or ``unstable``.
        frequency: for ``oscillating``, the predicted angular frequency w sqrt(n) (1/time).
        offset: predicted finite-n offset vbar_n - vbar, site-averaged (e, i), or None
            when lambda is unknown (non-Gaussian dynamics: use `fpsolver kinetic`).
    """

    time: float
    vbar_mean: np.ndarray
    eigenvalues: np.ndarray
    verdict: str
    frequency: float | None
    offset: np.ndarray | None
    modes: dict = field(default_factory=dict)
    n: int = 0

    def to_dict(self) -> dict:
        """The report as JSON-ready data (complex numbers as ``{"re", "im"}``)."""
        def cplx(values):
            return [{"re": float(z.real), "im": float(z.imag)} for z in values]
        return {"time": self.time, "n": self.n, "vbar_mean": self.vbar_mean.tolist(),
                "verdict": self.verdict, "frequency": self.frequency,
                "eigenvalues": cplx(self.eigenvalues),
                "modes": {str(k): cplx(v) for k, v in self.modes.items()},
                "offset": None if self.offset is None else self.offset.tolist()}

    def text(self) -> str:
        """The report in words: balanced state, eigenvalues, verdict, finite-n offset."""
        lines = [f"balanced state at t = {self.time:g}: vbar = ({self.vbar_mean[0]:.6f}, "
                 f"{self.vbar_mean[1]:.6f}) (site average)"]
        for k, eig in self.modes.items():
            lines.append(f"  Fourier mode {k}: " + ", ".join(_fmt(z) for z in eig))
        lines.append("  leading eigenvalues of DPhi: "
                     + ", ".join(_fmt(z) for z in self.eigenvalues[:6]))
        if self.verdict == "attracting":
            lines.append("  verdict: attracting (all Re < 0): the network relaxes to the "
                         f"balanced state on the fast time 1/sqrt(n) = {self.n ** -0.5:.3g}")
        elif self.verdict == "oscillating":
            lines.append(f"  verdict: oscillating: eigenvalues +-i w with Re = 0; undamped "
                         f"fast oscillations at angular frequency w sqrt(n) = "
                         f"{self.frequency:.4g} rad/time (n = {self.n})")
        else:
            lines.append("  verdict: unstable (an eigenvalue has Re > 0): no balanced state")
        if self.offset is not None:
            lines.append(f"  finite-n offset vbar_n - vbar ~= ({self.offset[0]:+.6f}, "
                         f"{self.offset[1]:+.6f}) at n = {self.n}")
        return "\n".join(lines)


def _fmt(z: complex) -> str:
    return f"{z.real:+.6f}{z.imag:+.6f}i"


def mode_matrices(model: Model, gp: np.ndarray) -> dict:
    """Fourier-mode blocks of DPhi on the cosine ring (homogeneous state): {0: M0, 1: M1}."""
    gbar = gp.mean(axis=2)  # site average of <G_ab'>
    blocks = {0: np.empty((2, 2)), 1: np.empty((2, 2))}
    for idx, ab in enumerate(PAIRS):
        a, b = divmod(idx, 2)
        c0, c1 = model.kernel_modes[ab]
        blocks[0][a, b] = SIGNS[b] * c0 * gbar[a, b]
        blocks[1][a, b] = SIGNS[b] * c1 / 2 * gbar[a, b]
    return blocks


def _verdict(eig: np.ndarray, n: int) -> tuple[str, float | None]:
    scale = max(np.abs(eig).max(), 1e-300)
    lead = eig[0]
    if lead.real > _IMAG_TOL * scale:
        return "unstable", None
    if abs(lead.real) <= _IMAG_TOL * scale and abs(lead.imag) > _IMAG_TOL * scale:
        return "oscillating", float(abs(lead.imag) * np.sqrt(n))
    if abs(lead.real) <= _IMAG_TOL * scale:
        return "unstable", None  # a zero eigenvalue: the state is not isolated
    return "attracting", None


def analyse_stability(scenario: Scenario, *, time: float = 0.0,
                      model: Model | None = None) -> StabilityReport:
    """Analyse the balanced state at ``time`` (MODEL §4) and predict the offset (§2c).

    At t = 0 the fluctuations are N(0, initial.cov) for any dynamics; later times need the
    Gaussian reduction (linear F, additive noise), otherwise a ScenarioError says so.
    """
    model = model or build_model(scenario)
    constraint = BalanceConstraint(model)
    offset = None
    if model.linear_drift is not None and model.additive_noise is not None:
        run = run_gaussian(scenario.replace(t_end=max(time, scenario.record.every, scenario.dt)),
                           model)
        s = int(np.argmin(np.abs(run.t - time)))
        vbar, K, lam = run.vbar[s], run.cov[s, 0], run.extra["lambda_"][1][s]
    elif time == 0.0:
        K = np.array(scenario.initial.cov)
        vbar, _ = constraint.solve(lambda v: gaussian_expectations(model, v, K),
                                   np.zeros((model.n_sites, 2)), where=" at t = 0")
        lam = None
    else:
        from fpsolver.errors import ScenarioError
        raise ScenarioError("dynamics.family", "stability after t = 0 needs the Gaussian "
                            "reduction (linear F, additive noise)",
                            "analyse t = 0, or run `fpsolver kinetic` and inspect its output")
    _, gp = gaussian_expectations(model, vbar, K)
    Jr = constraint.reduced_jacobian(gp)  # DPhi on the range U of the balanced input
    eig = np.linalg.eigvals(Jr)
    eig = eig[np.lexsort((-eig.imag, -eig.real))]
    modes = {}
    homogeneous = np.ptp(vbar, axis=0).max() < 1e-9 if len(vbar) > 1 else True
    if model.kernel_modes is not None and homogeneous:
        for k, M in mode_matrices(model, gp).items():
            ev = np.linalg.eigvals(M)
            modes[k] = ev[np.argsort(-ev.imag)]
    verdict, freq = _verdict(eig, scenario.n)
    delta = None if lam is None else finite_n.offset(constraint, gp, lam, scenario.n)
    if delta is not None:  # None: singular DPhi, no offset (unstable)
        offset = delta.T @ model.sites.weights
    return StabilityReport(time=float(time), vbar_mean=vbar.T @ model.sites.weights,
                           eigenvalues=eig, verdict=verdict, frequency=freq, offset=offset,
                           modes=modes, n=scenario.n)
