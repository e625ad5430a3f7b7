"""The model of MODEL §1 as data: the families of F, S, G, J, the inputs A and the sites.

Built from a :class:`~fpsolver.scenario.Scenario` by :func:`build_model`; the Python API
can replace any term by a user callable (or by a :class:`~fpsolver.families.Family`).
The model owns its families: a solver asks the model, never the scenario, for a term's
callable, parameters or polynomial coefficients, and :meth:`Model.builtin` says whether
a fast path may be used. The pointwise maps take the two components ``(v_e, v_i)``
separately and an array namespace ``xp`` (``numpy`` by default, ``ufl`` for the
finite-element forms), so one definition serves the particle simulator, the
quadratures and the weak forms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from fpsolver import families
from fpsolver.errors import ScenarioError
from fpsolver.families import Family
from fpsolver.scenario import PAIRS, Scenario
from fpsolver.space import Sites, make_sites

__all__ = ["Model", "build_model", "SIGNS", "Family"]

SIGNS = np.array([1.0, -1.0])  # s_e = +1, s_i = -1

Pointwise = Callable  # (v_e, v_i, xp) -> (out_e, out_i)


@dataclass
class Model:
    """Everything the solvers need to evaluate the model of MODEL §1.

    Attributes:
        families: the terms ``{"F", "S", "G", "J"}`` -> :class:`~fpsolver.families.Family`
            (name and parameters, or a user callable): the one source of every term.
        sites: positions, quadrature weights and geometry of E.
        input_modes: (2, 2) array, A_a(x) = input_modes[a, 0] + input_modes[a, 1] cos(x_1)
            (voltage / time).
        kernel: J_ab(x_j, x_k) evaluated on the sites, shape ``(2, 2, sites, sites)``,
            built on first use (32 sites^2 bytes; the FFT route of a lattice never
            builds it: :meth:`kernel_rows`).
        scenario: the scenario it was built from, for run settings only (n, dt,
            kinetic.*); the model's terms are read from ``families``, never from it.
    """

    families: dict
    sites: Sites
    input_modes: np.ndarray
    scenario: Scenario
    _kernel: np.ndarray | None = field(default=None, repr=False)

    @property
    def kernel(self) -> np.ndarray:
        """J_ab(x_j, x_k), shape ``(2, 2, sites, sites)`` (dense; built on first use)."""
        if self._kernel is None:
            _check_size(self.sites.kind, self.n_sites, "the dense kernel", KERNEL_BYTES, 2)
            self._kernel = families.kernel_matrix(self.family("J"), self.sites)
        return self._kernel

    @property
    def kernel_built(self) -> bool:
        """Whether the dense kernel exists (then rows are read from it)."""
        return self._kernel is not None

    def kernel_rows(self, rows) -> np.ndarray:
        """J_ab(x_j, x_k) for the sites j in ``rows``, shape ``(2, 2, len(rows), sites)``."""
        rows = np.asarray(rows, dtype=np.int64)
        if self._kernel is not None:
            return self._kernel[:, :, rows]
        return families.kernel_matrix(self.family("J"), self.sites, rows)

    # -- the families ------------------------------------------------------------------
    def family(self, term: str) -> Family:
        """The family of ``term`` (``F``, ``S``, ``G`` or ``J``)."""
        try:
            return self.families[term]
        except KeyError:
            raise KeyError(f"no model term {term!r}: the terms are {families.TERMS}") from None

    def builtin(self, *terms: str) -> bool:
        """True if every term named (default: all four) is a built-in family.

        A built-in family has a name and parameters that a fast path can use; False if any
        term is a user callable.
        """
        return all(self.family(t).builtin for t in (terms or families.TERMS))

    def drift_coefficients(self) -> np.ndarray | None:
        """Exact c[g, k, l], shape (2, 4, 4), of F_g(v) = sum c[g, k, l] v_e^k v_i^l.

        Degree 3; None for a user F.
        """
        return families.drift_coefficients(self.family("F"))

    def diffusion_coefficients(self) -> np.ndarray | None:
        """Exact c[g, k, l], shape (2, 3, 3), of D_gg(v) = S_gg(v)^2.

        D_gg(v) = sum c[g, k, l] v_e^k v_i^l (degree 2); None for a user S.
        """
        return families.diffusion_coefficients(self.family("S"))

    # -- the callables -----------------------------------------------------------------
    @property
    def F(self) -> Pointwise:
        """Intrinsic drift ``F(v_e, v_i, xp) -> (F_e, F_i)`` (voltage / time)."""
        return self.families["F"].func

    @property
    def S_diag(self) -> Pointwise:
        """Diagonal noise ``S_diag(v_e, v_i, xp) -> (S_ee, S_ii)``; D = diag(S^2)."""
        return self.families["S"].func

    @property
    def G(self) -> dict:
        """Gains ``G[ab](z, xp)``, keys ``"ee", "ei", "ie", "ii"``."""
        return {ab: g[0] for ab, g in self.families["G"].func.items()}

    @property
    def G_prime(self) -> dict:
        """Derivatives ``G_prime[ab](z, xp)`` of the gains."""
        return {ab: g[1] for ab, g in self.families["G"].func.items()}

    # -- structure the solvers exploit, derived from the families ----------------------
    @property
    def linear_drift(self) -> tuple | None:
        """``(Lambda, f0)`` if F is the built-in ``linear`` family, else None.

        F(v) = -Lambda v + f0 with Lambda = diag(1/tau) - L and f0 = 0.
        """
        F = self.families["F"]
        if F.name != "linear":
            return None
        return np.diag(1.0 / np.array(F.params["tau"])) - np.array(F.params["coupling"]), \
            np.zeros(2)

    @property
    def additive_noise(self) -> np.ndarray | None:
        """The constant S = diag(sigma) (2x2) if S is built in with kappa = 0, else None."""
        S = self.families["S"]
        if not S.builtin or any(S.params["kappa"]):
            return None
        return np.diag(S.params["sigma"])

    @property
    def kernel_modes(self) -> dict | None:
        """``{ab: (c0, c1)}`` if J is the built-in ``cosine`` family, else None."""
        J = self.families["J"]
        return {ab: J.params[ab] for ab in PAIRS} if J.name == "cosine" else None

    @property
    def inputs(self) -> np.ndarray:
        """A_a(x_j), shape ``(sites, 2)``."""
        x1 = self.sites.points[:, 0]
        return np.stack([m[0] + m[1] * np.cos(x1) for m in self.input_modes], axis=1)

    @property
    def n_sites(self) -> int:
        """Number of sites x_j."""
        return self.sites.count

    def coupling(self) -> np.ndarray:
        """W[a, b, j, k] = s_b J_ab(x_j, x_k) rho_k: the balance sum is W @ <G>."""
        return SIGNS[None, :, None, None] * self.kernel * self.sites.weights[None, None, None, :]


KERNEL_BYTES = 32  # per sites^2: J_ab(x_j, x_k), (2, 2, sites, sites) doubles
SITE_BYTES = 64    # per site: positions, weights and the lattice's grids (make_sites)


def _check_size(kind: str, count: int, what: str, unit: float, power: int) -> None:
    """Refuse ``count`` sites if ``what``, ``unit * count**power`` bytes, exceeds the memory.

    Checked before allocating, so that an absurd ``space.sites`` fails naming the field
    instead of exhausting the machine. Whether a whole run fits is the preflight's
    estimate (:mod:`fpsolver.preflight`); this is the floor below it.
    """
    from fpsolver.preflight import available_memory

    need, free = unit * float(count) ** power, available_memory()
    if need <= free:
        return
    fit = int((free / unit) ** (1 / power))
    fix = (f"space.sites = {math.isqrt(fit)} or fewer (its square is the torus' sites)"
           if kind == "torus" else f"at most {fit} sites")
    raise ScenarioError("space.sites", f"{count} sites on the {kind}: {what} alone would "
                        f"need {need / 2**30:.3g} GiB of memory, {free / 2**30:.3g} GiB "
                        "available", fix)


def scenario_families(sc: Scenario) -> dict:
    """The built-in families the scenario names, with its parameters.

    The one place that reads the scenario's model sections.
    """
    pops, d, g, k = (sc.populations.e, sc.populations.i), sc.dynamics, sc.gains, sc.kernel
    return {
        "F": families.drift_family(d.family, tau=[p.tau for p in pops], coupling=d.coupling,
                                   center=d.center, width=d.width, cubic=d.cubic),
        "S": families.noise_family(sc.noise.family, sigma=[p.sigma for p in pops],
                                   kappa=sc.noise.kappa),
        "G": families.gain_family(g.family, [[g.ee, g.ei], [g.ie, g.ii]], g.slope),
        "J": families.kernel_family(k.family, coefficients={ab: getattr(k, ab) for ab in PAIRS},
                                    width=k.width, file=k.file),
    }


def _term(term: str, given, builtin: Family) -> Family:
    """The family of a term: the scenario's, a Family given as is, or a user callable."""
    if given is None:
        return builtin
    if isinstance(given, Family):
        if given.term != term:
            raise ValueError(f"a family of term {given.term!r} was given for {term!r}")
        return given
    return families.user_family(term, given)


def build_model(sc: Scenario, *, F: Pointwise | Family | None = None,
                S_diag: Pointwise | Family | None = None, G: dict | Family | None = None,
                J: Callable | Family | None = None) -> Model:
    """Build the :class:`Model` of a scenario; any term may be replaced.

    A callable always makes the term a ``user`` family: every solver then evaluates the
    callable (generic path), even when it equals a built-in family. A
    :class:`~fpsolver.families.Family` (e.g. ``families.drift_family("cubic", ...)``) is
    used as given.

    Args:
        sc: the scenario.
        F: user drift ``F(v_e, v_i, xp) -> (F_e, F_i)``; disables the Gaussian reduction.
        S_diag: user diagonal noise ``S(v_e, v_i, xp) -> (S_ee, S_ii)``.
        G: user gains ``{ab: (G, G_prime)}`` for some or all pairs ``ab`` (the others keep
            the scenario's gains; the G term is then ``user`` as a whole).
        J: user kernel ``J(a, b, x, x') -> array``, evaluated on the site grid.
    """
    _check_size(sc.space.kind, sc.space.sites ** (2 if sc.space.kind == "torus" else 1),
                "the sites", SITE_BYTES, 1)
    sites = make_sites(sc.space)
    own = scenario_families(sc)
    if G is not None and not isinstance(G, Family):
        G = {**own["G"].func, **G}
    fams = {"F": _term("F", F, own["F"]), "S": _term("S", S_diag, own["S"]),
            "G": _term("G", G, own["G"]), "J": _term("J", J, own["J"])}
    pops = (sc.populations.e, sc.populations.i)
    input_modes = np.array([[p.input, p.input_cos] for p in pops], dtype=float)
    return Model(families=fams, sites=sites, input_modes=input_modes, scenario=sc)
