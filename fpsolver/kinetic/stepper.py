"""The coupled kinetic system (MODEL §2): densities per site + the balance constraint.

:class:`KineticStepper` advances the differential-algebraic pair (a)+(b): one IMEX step
of every site's Fokker-Planck density (:class:`~fpsolver.kinetic.group.SiteGroup`), then
Newton for vbar at all sites from the new densities (:class:`~fpsolver.balance.
BalanceConstraint`), then <F(vbar + .)> for the next drift. Quadrature sums are partial
per rank and reduced over the caller's communicator outside any per-site loop; the
Newton iteration runs redundantly on every rank on identical (root-broadcast) numbers.
"""

from __future__ import annotations

import numpy as np

from fpsolver.balance import BalanceConstraint
from fpsolver.kinetic.group import SiteGroup
from fpsolver.kinetic.layout import site_layout
from fpsolver.kinetic.meshing import state_mesh
from fpsolver.runtime.parallel import run_shared, shared_failure
from fpsolver.scenario import PAIRS

__all__ = ["KineticStepper", "BOUNDARY_LAYER"]

BOUNDARY_LAYER = 0.05  # outer fraction of the half width counted as the boundary layer
_NMOM = 10  # raw sums of DensityQuadrature.moments


class KineticStepper:
    """State and one-step map of the kinetic limit on ``comm``.

    Attributes (identical on every rank): ``t``, ``step_index``, ``vbar`` (sites, 2),
    ``mF`` (sites, 2), ``lam`` (sites, 2), ``moments`` (sites, 10) raw sums, ``newton``
    (last iterations), ``residual`` (last balance residual).
    """

    def __init__(self, model, comm, *, ref_tol: float = 0.05):
        kin = model.scenario.kinetic
        self.model, self.comm = model, comm
        self.B = model.n_sites
        self.dt = kin.dt
        self.layout = site_layout(comm, self.B)
        gcomm = self.layout.group_comm
        self.smesh = run_shared(comm, state_mesh, gcomm, kin.domain, kin.half_width, kin.cells,
                                 kin.grading)
        self.group = run_shared(comm, SiteGroup, gcomm, self.layout.sites, model, self.smesh,
                                ref_tol=ref_tol)
        q = self.group.quad
        layer = self.smesh.boundary_distance(q.points) < BOUNDARY_LAYER * self.smesh.radius
        self.layer = q.functional(layer.astype(float))
        self.constraint = BalanceConstraint(model)
        self.t, self.step_index = 0.0, 0
        self.vbar_old = None
        self.mF_old = None
        self.newton, self.residual = 0, 0.0
        self._initialise()

    # -- reductions over comm ----------------------------------------------------------
    def _sum(self, local: np.ndarray) -> np.ndarray:
        """Sum of per-rank partial arrays, identical on every rank (reduce + bcast)."""
        from mpi4py import MPI

        out = np.zeros_like(local)
        self.comm.Reduce(np.ascontiguousarray(local), out, op=MPI.SUM, root=0)
        self.comm.Bcast(out, root=0)
        return out

    def _weights(self) -> None:
        """Marginal weights of every local site (after a density change): ``_mw[b]`` has
        shape (local sites, distinct y_b values)."""
        g, q = self.group, self.group.quad
        self._mw = [np.ascontiguousarray((P @ g.p.T).T) for P in q.P]

    def expect(self, vbar: np.ndarray):
        """(g, gp) of MODEL §2a for all sites: <G_ab(vbar_b + y_b)>, <G_ab'>."""
        g, q = self.group, self.group.quad
        local = np.zeros((2, 2, 2, self.B))
        for idx, ab in enumerate(PAIRS):
            a, b = divmod(idx, 2)
            z = (vbar[g.sites, b][:, None] + q.axis_values[b][None, :]).ravel()
            for kind, fun in enumerate((self.model.G[ab], self.model.G_prime[ab])):
                vals = np.broadcast_to(fun(z, np), z.shape).reshape(self._mw[b].shape)
                local[kind, a, b, g.sites] = (vals * self._mw[b]).sum(axis=1)
        total = self._sum(local) / self.mass[None, None, None, :]
        return total[0], total[1]

    def _observe(self) -> None:
        """Moments, <F(vbar + .)>, boundary-layer mass of every site (collective)."""
        g, q = self.group, self.group.quad
        local = np.zeros((self.B, _NMOM + 3))
        local[g.sites, :_NMOM] = g.p @ q.C.T
        local[g.sites, _NMOM:_NMOM + 2] = g.mean_F(self.vbar[g.sites])
        local[g.sites, _NMOM + 2] = g.p @ self.layer
        total = self._sum(local)
        self.moments = total[:, :_NMOM]
        self.mF = total[:, _NMOM:_NMOM + 2] / self.moments[:, :1]
        self.layer_mass = total[:, _NMOM + 2]
        from mpi4py import MPI
        mins = np.full(self.B, np.inf)
        mins[g.sites] = g.min_density()
        self.min_density = np.empty_like(mins)
        self.comm.Allreduce(mins, self.min_density, op=MPI.MIN)
        g.vbar[:] = self.vbar[g.sites]
        g.mF[:] = self.mF[g.sites]

    def _masses(self) -> np.ndarray:
        local = np.zeros(self.B)
        local[self.group.sites] = self._mw[0].sum(axis=1)
        return self._sum(local)

    # -- consistent initialisation (MODEL §2d) ----------------------------------------
    def _initialise(self) -> None:
        self._weights()
        mass = self._masses()
        g = self.group
        g.p /= mass[g.sites, None]
        g.p_old[:] = g.p
        self._weights()
        self.mass = self._masses()
        self.vbar, info = self.constraint.solve(self.expect, np.zeros((self.B, 2)),
                                                where=" at t = 0 (initialisation)")
        self.newton, self.residual = info.iterations, info.residual
        self._observe()
        self.lam = np.zeros((self.B, 2))

    # -- one step ---------------------------------------------------------------------
    def _base(self) -> np.ndarray:
        """Predictor of vbar^{n+1}: the free part follows d vbar/dt = <F> (SBDF2/Euler)."""
        dt = self.dt
        if self.vbar_old is not None and self.model.scenario.kinetic.scheme == "bdf2":
            return ((4 * self.vbar - self.vbar_old) / 3
                    + 2 * dt / 3 * (2 * self.mF - self.mF_old))
        return self.vbar + dt * self.mF

    def step(self) -> None:
        """Advance densities, vbar, <F> and lambda by one time step (collective)."""
        n, t_new = self.step_index + 1, (self.step_index + 1) * self.dt
        where = f" at step {n}, t = {t_new:g}"
        with shared_failure(self.comm):
            self.group.step(where, reference=(self.vbar.mean(axis=0), self.mF.mean(axis=0)))
        self._weights()
        self.mass = self._masses()
        base = self._base()
        vbar, info = self.constraint.solve(self.expect, base, where=where)
        self.newton, self.residual = info.iterations, info.residual
        first = self.vbar_old is None
        self.vbar_old, self.mF_old, v_prev = self.vbar, self.mF, self.vbar
        if first or self.model.scenario.kinetic.scheme != "bdf2":
            dvdt = (vbar - v_prev) / self.dt
        else:
            dvdt = (3 * vbar - 4 * v_prev + self._vbar_older) / (2 * self.dt)
        self._vbar_older = v_prev
        self.vbar = vbar
        self._observe()
        self.lam = dvdt - self.mF
        self.step_index, self.t = n, t_new

    # -- observables ------------------------------------------------------------------
    def statistics(self) -> dict:
        """Mean, covariance, skewness, kurtosis per site from the raw sums."""
        m = self.moments
        mass = m[:, 0]
        mean = m[:, 1:3] / mass[:, None]
        Eyy = np.stack([m[:, 3], m[:, 4], m[:, 5]], 1) / mass[:, None]
        cov = np.empty((self.B, 2, 2))
        cov[:, 0, 0] = Eyy[:, 0] - mean[:, 0] ** 2
        cov[:, 0, 1] = cov[:, 1, 0] = Eyy[:, 1] - mean[:, 0] * mean[:, 1]
        cov[:, 1, 1] = Eyy[:, 2] - mean[:, 1] ** 2
        E2 = Eyy[:, [0, 2]]
        E3 = m[:, 6:8] / mass[:, None]
        E4 = m[:, 8:10] / mass[:, None]
        mu = mean
        var = E2 - mu**2
        mu3 = E3 - 3 * mu * E2 + 2 * mu**3
        mu4 = E4 - 4 * mu * E3 + 6 * mu**2 * E2 - 3 * mu**4
        return {"mass": mass, "mean": mean, "cov": cov, "skewness": mu3 / var**1.5,
                "kurtosis": mu4 / var**2}

    def marginals(self, edges: list[np.ndarray]) -> list[np.ndarray]:
        """Marginal densities of y_e and y_i on the bins ``edges``, shape (sites, bins)."""
        out = []
        q = self.group.quad
        for b in range(2):
            local = np.zeros((self.B, len(edges[b]) - 1))
            for j, site in enumerate(self.group.sites):
                local[site] = q.histogram(self.group.point_weights(j), edges[b], b)
            out.append(self._sum(local) / np.diff(edges[b])[None, :])
        return out

    # -- checkpoint support -----------------------------------------------------------
    def state(self) -> dict:
        """This rank's arrays that continue the run exactly (dofs, history, vbar, time)."""
        s = {f"group_{k}": v for k, v in self.group.state().items()}
        s.update({"t": np.array(self.t), "step_index": np.array(self.step_index),
                  "vbar": self.vbar.copy(), "mF": self.mF.copy(), "lam": self.lam.copy(),
                  "have_old": np.array(self.vbar_old is not None)})
        if self.vbar_old is not None:
            s.update({"vbar_old": self.vbar_old, "mF_old": self.mF_old,
                      "vbar_older": self._vbar_older})
        return s

    def restore(self, s: dict) -> None:
        """Continue from :meth:`state` (collective)."""
        self.group.restore({k[6:]: v for k, v in s.items() if k.startswith("group_")})
        self.t, self.step_index = float(s["t"]), int(s["step_index"])
        self.vbar, self.lam = np.array(s["vbar"]), np.array(s["lam"])
        if bool(s["have_old"]):
            self.vbar_old, self.mF_old = np.array(s["vbar_old"]), np.array(s["mF_old"])
            self._vbar_older = np.array(s["vbar_older"])
        self._weights()
        self.mass = self._masses()
        self._observe()
