"""The coupled kinetic system (MODEL §2): densities per site + the balance constraint.

:class:`KineticStepper` advances the differential-algebraic pair (a)+(b). One step:

1. the site parameters P^n = (vbar, <F>, ell, d ell/dt) decide the clusters of sites
   sharing an implicit operator (:mod:`fpsolver.kinetic.clusters`, a stability bound);
2. every density moves one IMEX step in its own frame (:mod:`fpsolver.kinetic.imex`);
3. every frame moves to the new time (:mod:`fpsolver.kinetic.frame`);
4. Newton solves the constraint for vbar at all sites from the new densities
   (:class:`~fpsolver.balance.BalanceConstraint`) -- or, for a companion run of the
   error estimate, vbar is taken from the main run (``vbar_source``);
5. the moments give <F(vbar + .)>, the statistics and the frames' rates.

After every step in which a density has values below -:data:`OSCILLATION` of its peak
(before they grow to the -1e-6 target), the cell Peclet number |bt_g| (h_g / p) /
(Dt_g / 2) is measured at the dofs where a density is above 1e-8 of its peak; along an
axis where it exceeds
:data:`PECLET_MAX` (Galerkin elements oscillate there) the mesh is refined by two, and
the densities move to it exactly (nested meshes: the old space is a subspace of the new
one). Refining only on the symptom keeps mild transients from refining the mesh; when
the Peclet number of an axis is back below a quarter of the limit (the transient of a
wide initial density under a steep drift is over) the refinement is undone (nodal
injection, mass restored to 1), so it does not cost the rest of the run.

Quadrature sums are partial per rank and reduced over the caller's communicator outside
any per-site loop; Newton, the frames and the clustering run redundantly on every rank
on identical numbers, so results do not depend on the MPI layout.
"""

from __future__ import annotations

import logging

import numpy as np

from fpsolver import finite_n
from fpsolver.balance import BalanceConstraint
from fpsolver.families import monomials
from fpsolver.kinetic.clusters import StabilityBound, update_clusters
from fpsolver.kinetic.densities import SiteDensities
from fpsolver.kinetic.frame import Frame
from fpsolver.kinetic.health import check_densities, check_moments
from fpsolver.kinetic.imex import ImexScheme
from fpsolver.kinetic.layout import site_layout
from fpsolver.kinetic.meshing import grade, node_spacing, state_mesh
from fpsolver.kinetic.numerics import resolve_numerics
from fpsolver.runtime.parallel import run_shared, shared_failure
from fpsolver.scenario import PAIRS

__all__ = ["KineticStepper", "BOUNDARY_LAYER", "MAX_DOFS", "PECLET_MAX"]

logger = logging.getLogger(__name__)

BOUNDARY_LAYER = 0.05  # outer fraction of the half width counted as the boundary layer
PECLET_MAX = 2.0       # cell Peclet number (node spacing) above which the mesh is refined
OSCILLATION = 1e-7     # min/peak below -this shows Galerkin oscillations
CHECK_EVERY = 5        # steps between resolution checks
LANCZOS_DOFS = 50_000  # larger meshes take the stiffness table (see _stiffness)
MESH_DOF_BYTES = 30_000  # per dof of a refined mesh, companions included (_memory_allows)
SITE_DOF_BYTES = 500     # per dof and site: density, history, work vectors
MAX_DOFS = 1_000_000   # refinement limit, dofs summed over the sites (~0.2 s a step)
KAPPA_MARGIN = 1.25    # artificial diffusion set this much above the need ...
KAPPA_LAG = 0.5        # ... and lowered once the need falls below this share of it
STABILISE_AT = 5e-7   # min/peak below -this, mesh at its limit: artificial diffusion
STIFFNESS = {1: 2.4, 2: 3.4}  # lambda_max(K, M) / (pi p / h)^2 on the box meshes
_KAPPA_FLOOR = 1e-8   # artificial diffusion below this is switched off
_SIGNIFICANT = 1e-8    # density relative to the peak below which oscillations do not count
_MOMENTS = len(monomials(4))
_EXTRA = 6  # F_e, F_i, F_e y_e, F_i y_i, D_e, D_i (partial sums)
_SAMPLES = 13  # sample points per axis for the stability bound


class KineticStepper:
    """State and one-step map of the kinetic limit on ``comm``.

    Args:
        model: the model.
        comm: the communicator the sites are split over.
        numerics: resolved settings (default :func:`resolve_numerics`).
        site_ids: global indices of the sites simulated (default all).
        vbar_source: ``step -> vbar`` (sites, 2) of those sites: the means are prescribed
            (an error-estimate companion) instead of solved for.
        max_dofs: refinement stops at this many dofs summed over the sites (0: never
            checked, for the error-estimate companions, which follow the main run's mesh).

    Attributes (identical on every rank): ``t``, ``step_index``, ``vbar`` (sites, 2),
    ``mF`` (sites, 2), ``lam`` (sites, 2), ``frame`` (the sites' frames), ``raw``
    (sites, 15) normalised raw z-moments, ``newton`` and ``residual`` (last balance
    solve), ``clusters`` (implicit references), ``numerics`` (the resolved settings,
    ``cells`` updated by refinements), ``refinements`` (list of (step, cells)).
    """

    def __init__(self, model, comm, *, numerics=None, site_ids=None, vbar_source=None,
                 max_dofs: int = MAX_DOFS):
        self.model, self.comm = model, comm
        self.numerics = numerics or resolve_numerics(model)
        num = self.numerics
        self.site_ids = np.arange(model.n_sites) if site_ids is None else np.asarray(site_ids)
        self.B = len(self.site_ids)
        self.weights = model.sites.weights[self.site_ids]
        self.vbar_source = vbar_source
        self.max_dofs = max_dofs
        self.dt = num.dt          # the default step (the last one taken, once stepping)
        self.dt_old = None        # the step before
        self.scheme = num.scheme
        self.layout = site_layout(comm, self.B)
        K0 = np.array(model.scenario.initial.cov, float)
        sd = np.sqrt(np.diag(K0))
        self.corr0 = K0 / np.outer(sd, sd) if not num.fixed_frame else K0
        self.frame = Frame(np.tile(np.diag(K0) if not num.fixed_frame else np.ones(2),
                                   (self.B, 1)), fixed=num.fixed_frame)
        self._build(num.cells)
        self._base_cells = tuple(num.cells)   # refinements are undone down to these
        self.constraint = BalanceConstraint(model) if vbar_source is None else None
        self.clusters = None
        self.refinements = []
        self.stabilisations = []   # (step, t, kappa) whenever the artificial diffusion changes
        self.ever_stabilised = False
        self._lo_hi = (np.zeros(self.B), np.ones(self.B))  # the last step's density extremes
        self.t, self.step_index = 0.0, 0
        self.t_new = 0.0
        self.vbar_old = self.mF_old = None
        self.newton, self.residual = 0, 0.0
        self._initialise()

    # -- the discretisation ------------------------------------------------------------
    def _build(self, cells) -> None:
        """Build everything that depends on the mesh, for ``cells`` = (along z_e, z_i).

        Mesh, densities (initial data), IMEX scheme, quadrature of the boundary layer and
        the stability bound's sample points.
        """
        num = self.numerics
        kappa = self.kappa.copy() if hasattr(self, "dens") else np.zeros(4)
        num.cells = (int(cells[0]), int(cells[1])) if np.ndim(cells) else (cells, cells)
        gcomm = self.layout.group_comm
        self.smesh = run_shared(self.comm, state_mesh, gcomm, num.domain, num.half_width,
                                num.cells, num.grading)
        self.dens = run_shared(self.comm, SiteDensities, gcomm, self.layout.sites, self.model,
                               self.smesh, num.degree, self.corr0)
        self.dens.operator.kappa = kappa
        self.imex = ImexScheme(self.dens, self.scheme, num.petsc_options)
        q = self.dens.quad
        layer = self.smesh.boundary_distance(q.points) < BOUNDARY_LAYER * self.smesh.radius
        self.layer = q.functional(layer.astype(float))
        samples, sample_h = self._sample_points()
        self.bound = StabilityBound(self.dens.operator, samples, sample_h, num.degree, self.dt,
                                    self._stiffness(sample_h.min()))
        X = self.dens.V.tabulate_dof_coordinates()[:self.dens.n_owned, :2]
        self._dof_points = X
        self._node_spacing = self._spacing(X)

    def _stiffness(self, h_min: float) -> float:
        """lambda_max(K, M) of the 2-d Laplacian K over (pi p / h_min)^2 (collective).

        Computed on serial groups up to :data:`LANCZOS_DOFS` (Lanczos, ~0.1 s at 10^4
        dofs); a site split over ranks or a larger mesh (a refinement: its shift-invert
        factors of M would cost GBs) takes the value measured on the box meshes
        (:data:`STIFFNESS`), with a margin.
        """
        from mpi4py import MPI

        op, p = self.dens.operator, self.numerics.degree
        ratio = 0.0
        if op.serial and op.M_csr.shape[0] <= LANCZOS_DOFS:
            from scipy.sparse.linalg import eigsh

            from fpsolver.kinetic.operator import _csr

            K = -(_csr(op.stabilisation_matrices()[0]) + _csr(op.stabilisation_matrices()[1]))
            try:
                lam = eigsh(K, k=1, M=op.M_csr, which="LM", return_eigenvectors=False,
                            tol=1e-3)[0]
                ratio = 1.05 * lam / (np.pi * p / h_min) ** 2
            except Exception:  # noqa: BLE001 -- no convergence: the measured value below
                ratio = 0.0
        if not ratio:
            ratio = STIFFNESS.get(p, max(STIFFNESS.values())) * 1.2
        return self.comm.allreduce(float(ratio), op=MPI.MAX)

    def _spacing(self, X: np.ndarray) -> np.ndarray:
        """Node spacing along each axis at the dofs X (box: the grading), (dofs, 2)."""
        num = self.numerics
        return node_spacing(self.smesh, num.cells, num.grading, num.degree, X,
                            self._min_cell_size())

    def _sample_points(self):
        """Points of the state domain and the local mesh size there (box: the grading)."""
        num, W = self.numerics, self.smesh.radius
        s = np.linspace(-1.0, 1.0, _SAMPLES)
        if self.smesh.kind == "box":
            z = grade(s, W, num.grading)
            sizes = []
            for g in range(2):
                ds = 2.0 / num.cells[g]
                sizes.append(W * num.grading * np.cosh(num.grading * s) / np.sinh(num.grading)
                             * ds if num.grading else np.full_like(s, W * ds))
            Z0, Z1 = np.meshgrid(z, z, indexing="ij")
            H = np.minimum(*np.meshgrid(sizes[0], sizes[1], indexing="ij"))
            return np.column_stack([Z0.ravel(), Z1.ravel()]), H.ravel()
        z = W * s / np.sqrt(2)
        Z0, Z1 = np.meshgrid(z, z, indexing="ij")
        h = self._min_cell_size()
        return np.column_stack([Z0.ravel(), Z1.ravel()]), np.full(Z0.size, h)

    def _min_cell_size(self) -> float:
        from mpi4py import MPI

        x = self.dens.quad.cell_size_min()
        return self.comm.allreduce(x, op=MPI.MIN)

    # -- reductions over comm ----------------------------------------------------------
    def _sum(self, local: np.ndarray) -> np.ndarray:
        """Sum of per-rank partial arrays, identical on every rank (reduce + bcast)."""
        from mpi4py import MPI

        out = np.zeros_like(local)
        self.comm.Reduce(np.ascontiguousarray(local), out, op=MPI.SUM, root=0)
        self.comm.Bcast(out, root=0)
        return out

    @property
    def sites(self) -> np.ndarray:
        """Indices (into this stepper's sites) of the sites this rank advances."""
        return self.dens.sites

    def params(self) -> np.ndarray:
        """P = (vbar, m, ell, d ell/dt) of every site, shape (sites, 8).

        m = <F> + gamma <y>, gamma = |kh| (the frame's contraction rate): <F> alone keeps
        d<y>/dt = 0, so a mean the discretisation made (O(dt^2) per step while <F> changes)
        would stay forever; the pull makes it decay at the drift's own rate (a Baumgarte
        term: zero on the exact solution, whose mean is 0). Measured on `ring-bump`
        (T = 14): |<y>| 1.1e-6 without it.
        """
        return np.hstack([self.vbar, self.mF + self.mean_pull, self.frame.ell,
                          self.frame.ell_dot()])


    # -- expectations -----------------------------------------------------------------
    def _weights(self) -> None:
        """Marginal weights of every local site (after a density or frame change).

        The 1-d rule is refined with the widest frame (G(vbar + ell z) is sharp in z when
        ell is large; Gauss-Legendre converges like rho^(-2 points), rho from tanh's
        poles at distance pi/2): ``npts + 4 ell width`` points per interval.
        """
        d, mr = self.dens, self.dens.marginals
        ell = self.frame.ell.max(axis=0)
        self._rule = []
        self._mw = []
        for b in range(2):
            points = mr.npts + int(np.ceil(4 * ell[b] * mr.max_width(b)))
            self._rule.append(mr.rule(b, points)[0])
            self._mw.append(mr.weights(d.q, b, points))

    def expect(self, vbar: np.ndarray):
        """(g, gp) of MODEL §2a for all sites: <G_ab(vbar_b + y_b)>, <G_ab'>, y = ell z."""
        d = self.dens
        ell = self.frame.ell
        local = np.zeros((2, 2, 2, self.B))
        s = d.sites
        for idx, ab in enumerate(PAIRS):
            a, b = divmod(idx, 2)
            y = ell[s, b][:, None] * self._rule[b][None, :]
            v = vbar[s, b][:, None] + y
            for kind, fun in enumerate((self.model.G[ab], self.model.G_prime[ab])):
                with np.errstate(over="ignore", invalid="ignore"):
                    vals = np.broadcast_to(fun(v, np), v.shape)
                local[kind, a, b, s] = (vals * self._mw[b]).sum(axis=1)
        total = self._sum(local) / self.mass[None, None, None, :]
        return total[0], total[1]

    def _masses(self) -> np.ndarray:
        local = np.zeros(self.B)
        local[self.dens.sites] = self._mw[0].sum(axis=1)
        return self._sum(local)

    def _observe(self, dt: float = 0.0) -> None:
        """Measure the densities now (collective).

        Moments, <F>, frame rates (``dt`` after the last), boundary mass, extreme values.
        """
        d = self.dens
        s = d.sites
        local = np.zeros((self.B, _MOMENTS + _EXTRA + 1))
        local[s, :_MOMENTS] = d.q @ d.quad.C.T
        local[s, _MOMENTS:_MOMENTS + _EXTRA] = d.operator.expectations(d.quad, d.q,
                                                                      self.params()[s])
        local[s, -1] = d.q @ self.layer
        total = self._sum(local)
        mass = total[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            self.raw = total[:, :_MOMENTS] / mass[:, None]
            ex = total[:, _MOMENTS:_MOMENTS + _EXTRA] / mass[:, None]
            self.layer_mass = total[:, -1] / mass
            ell = self.frame.ell
            mean_y = ell * self.raw[:, 1:3]
            var_y = ell**2 * (self.raw[:, [3, 5]] - self.raw[:, 1:3] ** 2)
            kh = -(ex[:, 2:4] - ex[:, 0:2] * mean_y) / var_y
        self.mF = ex[:, 0:2]
        self.mean_pull = np.nan_to_num(np.abs(kh) * mean_y)
        self.frame.set_rates(kh, ex[:, 4:6], dt)
        self.min_density, self.max_density = self._extremes()

    def _extremes(self):
        """Smallest and largest dof value of every site (collective)."""
        from mpi4py import MPI

        d = self.dens
        lo = np.full(self.B, np.inf)
        hi = np.full(self.B, -np.inf)
        with np.errstate(invalid="ignore"):
            lo[d.sites], hi[d.sites] = d.min_density(), d.max_density()
        out_lo, out_hi = np.empty_like(lo), np.empty_like(hi)
        self.comm.Allreduce(lo, out_lo, op=MPI.MIN)
        self.comm.Allreduce(hi, out_hi, op=MPI.MAX)
        return out_lo, out_hi

    # -- consistent initialisation (MODEL §2d) ----------------------------------------
    def _normalise(self) -> None:
        self._weights()
        mass = self._masses()
        self.dens.q /= mass[self.dens.sites, None]
        self.imex.q_old[:] = self.dens.q
        self._weights()
        self.mass = self._masses()

    def _initialise(self) -> None:
        self._normalise()
        self.mF = np.zeros((self.B, 2))
        self.mean_pull = np.zeros((self.B, 2))
        if self.vbar_source is not None:
            self.vbar = np.array(self.vbar_source(0), float)
        else:
            self.vbar, info = self.constraint.solve(self.expect, np.zeros((self.B, 2)),
                                                    where=" at t = 0 (initialisation)")
            self.newton, self.residual = info.iterations, info.residual
        self._observe()
        self.lam = np.zeros((self.B, 2))

    # -- one step ---------------------------------------------------------------------
    def _base(self, dt: float) -> np.ndarray:
        """Predictor of vbar^{n+1}: the free part follows d vbar/dt = <F>.

        Variable-step SBDF2, or Euler for the first step.
        """
        if self.vbar_old is not None and self.scheme == "bdf2":
            w = dt / self.dt_old
            rhs = ((1 + w) * self.vbar - w * w / (1 + w) * self.vbar_old
                   + dt * ((1 + w) * self.mF - w * self.mF_old))
            return rhs * (1 + w) / (1 + 2 * w)
        return self.vbar + dt * self.mF

    def _derivative(self, vbar: np.ndarray, dt: float) -> np.ndarray:
        """Derivative d vbar/dt at the new time level.

        Variable-step BDF2; a difference at the first step or for other schemes.
        """
        if self.vbar_old is None or self.scheme != "bdf2":
            return finite_n.backward_derivative([self.vbar, vbar], dt)
        return finite_n.backward_derivative([self.vbar_old, self.vbar, vbar],
                                            (self.dt_old, dt))

    def step(self, dt: float | None = None) -> None:
        """Advance densities, frames, vbar, <F> and lambda by ``dt`` (collective).

        ``dt`` defaults to the last step, or ``numerics.dt`` before any.
        """
        dt = self.dt if dt is None else float(dt)
        n, t_new = self.step_index + 1, self.t + dt
        self.t_new = t_new  # the time being stepped to (failure messages)
        where = f" at step {n}, t = {t_new:g}"
        if self.max_dofs and self.step_index:
            if self.kappa.any():
                self.stabilise()
            else:
                self._check_resolution()
        P = self.params()
        self.bound.dt = dt
        self.clusters = update_clusters(self.clusters, P, self.weights, self.bound,
                                        self.imex.next_kind())
        refs = self.clusters.site_refs()
        s = self.dens.sites
        with shared_failure(self.comm):
            self.imex.release(np.unique(refs, axis=0), dt)
            self.imex.step(P[s], refs[s], dt, where)
        self.frame.advance(dt)
        with np.errstate(all="ignore"):
            self._weights()
            self.mass = self._masses()
        self._lo_hi = self._extremes()
        check_densities(self, *self._lo_hi)
        if self.vbar_source is not None:
            vbar = np.array(self.vbar_source(n), float)
        else:
            vbar, info = self.constraint.solve(self.expect, self._base(dt), where=where)
            self.newton, self.residual = info.iterations, info.residual
        dvdt = self._derivative(vbar, dt)
        self.vbar_old, self.mF_old = self.vbar, self.mF
        self.vbar = vbar
        self.dt_old, self.dt = dt, dt
        self._observe(dt)
        check_moments(self, self.statistics()["cov"])
        self.lam = finite_n.balance_current(dvdt, self.mF)
        self.step_index, self.t = n, t_new

    # -- resolution -------------------------------------------------------------------
    def peclet(self) -> np.ndarray:
        """Largest cell Peclet number along z_e and z_i over the sites (collective).

        Where the density is above 1e-8 of its peak; identical on every rank.
        """
        from mpi4py import MPI

        local = np.zeros(2)
        coef = self._significant_coefficients()
        if coef is not None:
            b, D, big = coef
            with np.errstate(divide="ignore", invalid="ignore"):
                pe = np.abs(b) * self._node_spacing[None] / (0.5 * D + self._kappa_at())
            pe = np.where(big[..., None] & np.isfinite(pe), pe, 0.0)
            local = pe.max(axis=(0, 1))
        out = np.empty(2)
        self.comm.Allreduce(local, out, op=MPI.MAX)
        return out

    def _significant_coefficients(self):
        """(bt, Dt, significant) at the owned dofs of the local sites, or None if none.

        ``significant``: where a density is above 1e-8 of its peak (sites, dofs).
        """
        d = self.dens
        if not (len(d.sites) and d.n_owned):
            return None
        q = d.owned(d.q)
        b, D = d.operator.coefficients(self.params()[d.sites], self._dof_points)
        return b, D, q > _SIGNIFICANT * q.max(axis=1, keepdims=True)

    def _check_resolution(self) -> None:
        """Refine as soon as a density oscillates (then not again for CHECK_EVERY steps).

        Coarsening is tried every CHECK_EVERY steps.

        Uses the extremes of the last step (identical on every rank).
        """
        lo, hi = self._lo_hi
        if (lo / np.where(hi > 0, hi, 1.0)).min() >= -OSCILLATION:
            if self.step_index % CHECK_EVERY == 0:
                self._check_coarsening()
            return
        last = self.refinements[-1][0] if self.refinements else -CHECK_EVERY
        if self.step_index - last < CHECK_EVERY:
            return  # the nested transfer keeps the old undershoot: let the new mesh act
        cells = list(self.numerics.cells)
        if self._refinable(cells):  # else the Peclet number cannot change the outcome
            for g, pe in enumerate(self.peclet()):
                if pe > PECLET_MAX:
                    cells[g] *= 2
            if tuple(cells) == self.numerics.cells:
                return
            if self._may_refine_to(cells):
                self.remesh(tuple(cells))
                return
        if (lo / np.where(hi > 0, hi, 1.0)).min() < -STABILISE_AT:
            self.stabilise()  # the mesh cannot follow: artificial diffusion instead
        elif not getattr(self, "_warned_resolution", False):
            self._warned_resolution = True
            logger.info("kinetic: cell Peclet number %.3g > %g at step %d (t = %g) and "
                        "the mesh cannot be refined further (dof budget or memory): "
                        "small undershoots (below %g of the peak) are left to the step; "
                        "larger ones get artificial diffusion", self.peclet().max(),
                        PECLET_MAX, self.step_index, self.t, STABILISE_AT)

    def _refinable(self, cells) -> bool:
        """Whether doubling the cells along at least one axis is allowed (collective)."""
        return any(self._may_refine_to([c * (2 if g == h else 1) for h, c in enumerate(cells)])
                   for g in range(2))

    def _may_refine_to(self, cells) -> bool:
        """Whether the dof budget, the mesh kind and the memory allow ``cells`` (collective)."""
        dofs = (self.numerics.degree * cells[0] + 1) * (self.numerics.degree * cells[1] + 1)
        return (dofs * self.model.n_sites <= self.max_dofs and self.smesh.kind == "box"
                and self._memory_allows(dofs))

    def _memory_allows(self, dofs: int) -> bool:
        """Whether the machine has the memory to refine to ``dofs`` per site (collective).

        A refined mesh costs about :data:`MESH_DOF_BYTES` per dof (matrices, factors and
        quadrature tables of the run and of the error estimator's two companions:
        measured 4.7 GB at 192^2 P2 cells, one site) plus the sites' vectors; the sum
        over the ranks must stay below half of the memory available (bistable with 3x
        narrower wells passed 16 GB on the way to 384^2 cells without this limit).
        """
        from mpi4py import MPI

        from fpsolver.preflight import available_memory

        sites = len(self.dens.sites)
        need = dofs * (MESH_DOF_BYTES + SITE_DOF_BYTES * sites)
        need = self.comm.allreduce(float(need), op=MPI.SUM)
        free = self.comm.allreduce(available_memory(), op=MPI.MIN)
        return need <= 0.5 * free

    # -- stabilisation ----------------------------------------------------------------
    @property
    def kappa(self) -> np.ndarray:
        """Artificial diffusion (alpha_e, alpha_i, beta_e, beta_i).

        kappa_g(z) = alpha_g + beta_g z_g^2 (z units); zero unless a transient needs it.
        """
        return self.dens.operator.kappa

    def _kappa_at(self, kappa=None) -> np.ndarray:
        """kappa_g at the owned dofs, (dofs, 2)."""
        k = self.kappa if kappa is None else kappa
        return k[None, 0:2] + k[None, 2:4] * self._dof_points**2

    def kappa_needed(self) -> np.ndarray:
        """Smallest (alpha, beta) with cell Peclet number <= PECLET_MAX (collective).

        Where a density is above 1e-8 of its peak: kappa_g >= |bt_g| h_g / PECLET_MAX
        - Dt_g / 2; alpha from |z_g| <= 1, beta the envelope of the rest over z_g^2.
        """
        from mpi4py import MPI

        d = self.dens
        need = np.zeros((max(d.n_owned, 1), 2))
        coef = self._significant_coefficients()
        if coef is not None:
            b, D, big = coef
            with np.errstate(invalid="ignore"):
                k = np.abs(b) * self._node_spacing[None] / PECLET_MAX - 0.5 * D
            k = np.where(big[..., None] & np.isfinite(k), k, 0.0)
            need = np.maximum(k.max(axis=0), 0.0)
        out = np.zeros(4)
        if d.n_owned:
            z2 = self._dof_points[:, :2] ** 2
            inner = z2 <= 1.0
            for g in range(2):
                out[g] = need[inner[:, g], g].max(initial=0.0)
                rest = ~inner[:, g]
                out[2 + g] = ((need[rest, g] - out[g]) / z2[rest, g]).max(initial=0.0)
        total = np.empty(4)
        self.comm.Allreduce(out, total, op=MPI.MAX)
        return total

    def stabilise(self) -> None:
        """Set the artificial diffusion that keeps the cell Peclet number <= 2 (collective).

        Raised at once to KAPPA_MARGIN x the need; lowered (refactorisation) only when the
        need falls below KAPPA_LAG of the current value; off when nothing is needed. First
        order in the mesh size while on: for transients the mesh cannot resolve (a wide
        initial density under a steep drift), which the relaxation then forgets.
        """
        need = self.kappa_needed()
        need[need < _KAPPA_FLOOR] = 0.0
        cur = self.kappa
        new = cur.copy()
        up = need > cur
        down = need < KAPPA_LAG * cur
        new[up | down] = KAPPA_MARGIN * need[up | down]
        if np.array_equal(new, cur):
            return
        if not cur.any() and self.max_dofs:
            logger.info("kinetic: cell Peclet number above %g at step %d (t = %g) and the "
                        "mesh cannot be refined further: artificial diffusion (first order "
                        "in h, counted in the error estimate) until the transient is over",
                        PECLET_MAX, self.step_index, self.t)
        self.set_kappa(new)

    def set_kappa(self, kappa) -> None:
        """Use the artificial diffusion ``kappa`` from the next step on."""
        kappa = np.asarray(kappa, float)
        if np.array_equal(kappa, self.kappa):
            return
        was = self.kappa.any()
        self.dens.operator.kappa = kappa.copy()
        self.imex.invalidate()
        self.ever_stabilised = self.ever_stabilised or bool(kappa.any())
        self.stabilisations.append((self.step_index, self.t, kappa.copy()))
        if was and not kappa.any() and self.max_dofs:
            logger.info("kinetic: artificial diffusion off at step %d (t = %g)",
                        self.step_index, self.t)

    def _check_coarsening(self) -> None:
        """Undo a refinement along an axis whose Peclet number is back below ``PECLET_MAX / 4``.

        After a transient: halving the cells keeps it below half the limit, so it does not
        oscillate back.
        """
        if tuple(self.numerics.cells) == self._base_cells or self.kappa.any():
            return
        pe = self.peclet()
        cells = [c // 2 if c > b and p < PECLET_MAX / 4 else c
                 for c, b, p in zip(self.numerics.cells, self._base_cells, pe)]
        if tuple(cells) != tuple(self.numerics.cells):
            self.remesh(tuple(cells))

    def remesh(self, cells) -> None:
        """Move every density to a nested refinement with ``cells`` (exact transfer)."""
        from dolfinx import fem

        old_V, old_q, old_q_old = self.dens.V, self.dens.q, self.imex.q_old
        old_cells = self.numerics.cells
        imex_state = self.imex.state()
        self._build(cells)
        new_V = self.dens.V
        tdim = new_V.mesh.topology.dim
        ncells = new_V.mesh.topology.index_map(tdim).size_local
        cell_ids = np.arange(ncells, dtype=np.int32)
        data = fem.create_interpolation_data(new_V, old_V, cell_ids, padding=1e-10)
        src, dst = fem.Function(old_V), fem.Function(new_V)

        def move(rows: np.ndarray) -> np.ndarray:
            out = np.empty((len(rows), len(dst.x.array)))
            for j, row in enumerate(rows):
                src.x.array[:] = row
                dst.interpolate_nonmatching(src, cell_ids, data)
                dst.x.scatter_forward()
                out[j] = dst.x.array
            return out

        coarser = np.prod(cells) < np.prod(old_cells)
        self.dens.q = move(old_q)
        self.imex.restore({**imex_state, "q_old": move(old_q_old),
                           "E_old": np.zeros((len(old_q), self.dens.n_owned))})
        self.imex.E_old_refs = None  # recomputed against the references on the new mesh
        self._weights()
        self.mass = self._masses()
        if coarser:  # nodal injection is not conservative: restore mass 1 (error O(h^3))
            scale = 1.0 / self.mass[self.dens.sites]
            self.dens.q *= scale[:, None]
            self.imex.q_old *= scale[:, None]
            self._weights()
            self.mass = self._masses()
        self.clusters = None
        self.refinements.append((self.step_index, self.numerics.cells))
        logger.info("kinetic: %s the state mesh to %s cells at step %d (t = %g)",
                    "coarsened" if coarser else "refined", self.numerics.cells,
                    self.step_index, self.t)

    # -- observables ------------------------------------------------------------------
    def statistics(self) -> dict:
        """Mean, covariance, skewness, kurtosis of y per site from the z-moments."""
        r, ell = self.raw, self.frame.ell
        idx = {mn: k for k, mn in enumerate(monomials(4))}
        mz = r[:, 1:3]
        cz = np.empty((self.B, 2, 2))
        cz[:, 0, 0] = r[:, idx[(2, 0)]] - mz[:, 0] ** 2
        cz[:, 1, 1] = r[:, idx[(0, 2)]] - mz[:, 1] ** 2
        cz[:, 0, 1] = cz[:, 1, 0] = r[:, idx[(1, 1)]] - mz[:, 0] * mz[:, 1]
        cov = cz * ell[:, :, None] * ell[:, None, :]
        E2 = np.stack([r[:, idx[(2, 0)]], r[:, idx[(0, 2)]]], 1)
        E3 = np.stack([r[:, idx[(3, 0)]], r[:, idx[(0, 3)]]], 1)
        E4 = np.stack([r[:, idx[(4, 0)]], r[:, idx[(0, 4)]]], 1)
        mu = mz
        var = E2 - mu**2
        mu3 = E3 - 3 * mu * E2 + 2 * mu**3
        mu4 = E4 - 4 * mu * E3 + 6 * mu**2 * E2 - 3 * mu**4
        with np.errstate(divide="ignore", invalid="ignore"):
            skew, kurt = mu3 / var**1.5, mu4 / var**2
        return {"mass": self.mass, "mean": mz * ell, "cov": cov, "skewness": skew,
                "kurtosis": kurt}

    def marginals(self, edges: list[np.ndarray]) -> list[np.ndarray]:
        """Marginal densities of z_e and z_i on the bins ``edges`` (z units), (sites, bins)."""
        out = []
        q = self.dens.quad
        for b in range(2):
            local = np.zeros((self.B, len(edges[b]) - 1))
            for j, site in enumerate(self.dens.sites):
                local[site] = q.histogram(self.dens.point_weights(j), edges[b], b)
            out.append(self._sum(local) / np.diff(edges[b])[None, :])
        return out

    # -- checkpoint support -----------------------------------------------------------
    def state(self) -> dict:
        """This rank's arrays that continue the run exactly."""
        s = {"q": self.dens.q.copy(), **{f"imex_{k}": v for k, v in self.imex.state().items()},
             **self.frame.state(), "t": np.array(self.t), "step_index": np.array(self.step_index),
             "vbar": self.vbar.copy(), "mF": self.mF.copy(), "lam": self.lam.copy(),
             "cells": np.array(self.numerics.cells), "dt": np.array(self.dt),
             "kappa": self.kappa.copy(), "ever_stabilised": np.array(self.ever_stabilised),
             "have_old": np.array(self.vbar_old is not None),
             "refinements": np.array([[k, *c] for k, c in self.refinements],
                                     int).reshape(-1, 3)}
        if self.vbar_old is not None:
            s.update({"vbar_old": self.vbar_old, "mF_old": self.mF_old,
                      "dt_old": np.array(self.dt_old)})
        if self.clusters is not None:
            s.update({"cluster_label": self.clusters.label, "cluster_refs": self.clusters.refs})
        return s

    def restore(self, s: dict) -> None:
        """Continue from :meth:`state` (collective)."""
        from fpsolver.kinetic.clusters import Clusters

        cells = tuple(int(c) for c in s["cells"])
        if cells != self.numerics.cells:
            self._build(cells)
        self.dens.q = np.array(s["q"], float)
        self.set_kappa(s.get("kappa", np.zeros(4)))
        self.ever_stabilised = bool(s.get("ever_stabilised", False))
        self.refinements = [(int(r[0]), (int(r[1]), int(r[2])))
                            for r in np.array(s.get("refinements", np.zeros((0, 3))))]
        self.imex.restore({k[5:]: v for k, v in s.items() if k.startswith("imex_")})
        self.frame.restore(s)
        self.t, self.step_index = float(s["t"]), int(s["step_index"])
        self.vbar, self.lam = np.array(s["vbar"]), np.array(s["lam"])
        self.mF = np.array(s["mF"])
        self.dt = float(s["dt"])
        if bool(s["have_old"]):
            self.vbar_old, self.mF_old = np.array(s["vbar_old"]), np.array(s["mF_old"])
            self.dt_old = float(s["dt_old"])
        self.clusters = None
        if "cluster_label" in s:
            self.clusters = Clusters(np.array(s["cluster_label"], int),
                                     np.array(s["cluster_refs"], float))
        self._weights()
        self.mass = self._masses()
        self._lo_hi = self._extremes()
        rates = self.frame.rates, self.frame.rates_old, self.frame.gap
        self._observe()
        self.frame.rates, self.frame.rates_old, self.frame.gap = rates
