"""Fast polynomial terms (fpsolver.kinetic.polynomial) against the UFL forms.

The fast path must give the same explicit IMEX term E = (a_site - a_ref)(p, .) and the
same <F(vbar + .)> as assembling the forms of fpsolver.kinetic.forms, to round-off, for
every built-in drift/noise family; its coefficients are the model's exact ones; user
callables must keep the generic path, and a user callable equal to a built-in family
gives the built-in result to round-off.
"""

import numpy as np
import pytest
from mpi4py import MPI

from fpsolver.families import evaluate_polynomial
from fpsolver.kinetic import KineticStepper
from fpsolver.kinetic.group import SiteGroup
from fpsolver.kinetic.meshing import state_mesh
from fpsolver.model import build_model
from fpsolver.scenario import load_scenario

SMALL = ["kinetic.cells=8", "kinetic.half_width=3.0", "kinetic.grading=0"]
CASES = {
    "linear-multiplicative": ("bistable", ["dynamics.family=linear"]),
    "double_well-diagonal": ("bistable", ["noise.family=diagonal",
                                          "dynamics.center=[0.2, -0.1]"]),
    "double_well-multiplicative": ("bistable", ["noise.kappa=[0.3, 0.7]",
                                                "dynamics.center=[0.2, -0.1]"]),
    "cubic-diagonal": ("ring-bump", ["space.sites=4", "dynamics.coupling=[[0.1, 0.3], "
                                     "[-0.2, 0.05]]"]),
    "cubic-multiplicative": ("ring-bump", ["space.sites=4", "noise.family=multiplicative",
                                           "noise.kappa=[0.4, 0.2]"]),
}
VBAR = np.array([[0.3, -0.7], [-1.1, 0.4], [0.9, 1.3]])
MF = np.array([[0.2, -0.5], [0.6, 0.1], [-0.3, 0.8]])


def _group(name, sets, degree):
    sc = load_scenario(name, SMALL + [f"kinetic.degree={degree}"] + sets)
    model = build_model(sc)
    smesh = state_mesh(MPI.COMM_SELF, "box", 3.0, 8)
    g = SiteGroup(MPI.COMM_SELF, np.arange(len(VBAR)), model, smesh)
    rng = np.random.default_rng(1)
    g.p = g.p * (1 + 0.5 * rng.random(g.p.shape))  # different, non-Gaussian densities
    g.set_reference(np.array([-0.4, 0.25]), np.array([0.15, -0.35]))
    return g


def _rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


@pytest.mark.parametrize("degree", [1, 2])
@pytest.mark.parametrize("case", list(CASES))
def test_fast_terms_equal_forms(case, degree):
    """E and <F> of the fast path equal the assembled UFL forms to round-off."""
    g = _group(*CASES[case], degree)
    assert g.fast is not None
    E_fast = g.explicit(g.p, VBAR, MF)
    E_form = np.array([g._explicit_form(g.p[j], VBAR[j], MF[j]) for j in range(len(VBAR))])
    assert np.abs(E_form).max() > 1e-3  # the sites really differ from the reference
    assert _rel(E_fast, E_form) < 1e-12
    mF_fast = g.mean_F(VBAR)
    g.fast = None
    mF_form = g.mean_F(VBAR)
    assert _rel(mF_fast, mF_form) < 1e-12


def test_reference_equal_site_gives_zero():
    """A site at the reference has E = 0 (only differences of coefficients enter)."""
    g = _group(*CASES["cubic-multiplicative"], 2)
    E = g.explicit(g.p[:1], g.vbar_r[None, :], g.mF_r[None, :])
    assert np.abs(E).max() < 1e-13


def test_user_callables_use_generic_path():
    """F or S given as callables (even polynomial ones) fall back to form assembly."""
    sc = load_scenario("bistable", SMALL)
    smesh = state_mesh(MPI.COMM_SELF, "box", 3.0, 8)
    assert build_model(sc).builtin("F", "S")
    F = build_model(sc).F
    for model in (build_model(sc, F=F), build_model(sc, S_diag=build_model(sc).S_diag)):
        assert not model.builtin("F", "S")
        assert SiteGroup(MPI.COMM_SELF, np.array([0]), model, smesh).fast is None


@pytest.mark.parametrize("case", list(CASES))
def test_coefficients_are_the_families(case):
    """The model's exact coefficients of F and D = S^2 reproduce its callables (to
    round-off on [-3, 3]^2), and are None for user callables."""
    name, sets = CASES[case]
    model = build_model(load_scenario(name, SMALL + sets))
    ve, vi = np.meshgrid(np.linspace(-3, 3, 13), np.linspace(-3, 2, 11), indexing="ij")
    F, S = model.F(ve, vi, np), model.S_diag(ve, vi, np)
    Fc = evaluate_polynomial(model.drift_coefficients(), ve, vi)
    Dc = evaluate_polynomial(model.diffusion_coefficients(), ve, vi)
    for g in range(2):
        assert np.abs(Fc[g] - F[g]).max() < 1e-12 * (1 + np.abs(F[g]).max())
        assert np.abs(Dc[g] - S[g] ** 2).max() < 1e-12 * (1 + np.abs(S[g] ** 2).max())
    user = build_model(load_scenario(name, SMALL + sets), F=model.F, S_diag=model.S_diag)
    assert user.drift_coefficients() is None and user.diffusion_coefficients() is None


def _user_copy(sc):
    """The scenario's F and S written as plain user callables (same formulas)."""
    d, pops, kap = sc.dynamics, sc.populations, sc.noise.kappa
    tau, L, m, w = (pops.e.tau, pops.i.tau), d.coupling, d.center, d.width
    assert d.family == "double_well" and sc.noise.family == "multiplicative"

    def F(ve, vi, xp=np):
        ue, ui = ve - m[0], vi - m[1]
        return ((ue - ue**3 / w[0] ** 2) / tau[0] + L[0][0] * ve + L[0][1] * vi,
                (ui - ui**3 / w[1] ** 2) / tau[1] + L[1][0] * ve + L[1][1] * vi)

    def S(ve, vi, xp=np):
        return (pops.e.sigma * xp.sqrt(1.0 + kap[0] * ve**2),
                pops.i.sigma * xp.sqrt(1.0 + kap[1] * vi**2))
    return build_model(sc, F=F, S_diag=S)


def test_user_copy_of_builtin_gives_builtin_result():
    """A kinetic run with user callables equal to the built-in families (generic UFL
    path) gives the built-in run (fast polynomial path) to 1e-12."""
    name, sets = CASES["double_well-multiplicative"]
    sc = load_scenario(name, SMALL + ["kinetic.degree=1", "kinetic.dt=0.01"] + sets)
    fast = KineticStepper(build_model(sc), MPI.COMM_SELF)
    slow = KineticStepper(_user_copy(sc), MPI.COMM_SELF)
    assert fast.group.fast is not None and slow.group.fast is None
    for _ in range(4):
        fast.step()
        slow.step()
    for a, b in ((fast.group.p, slow.group.p), (fast.vbar, slow.vbar), (fast.lam, slow.lam),
                 (fast.mF, slow.mF)):
        assert np.abs(a - b).max() < 1e-12 * (1 + np.abs(b).max())


@pytest.mark.parametrize("case", ["double_well-multiplicative", "cubic-multiplicative"])
def test_fast_run_equals_generic_run(case):
    """A few coupled steps (densities + Newton) agree with the generic path (the same
    model's callables assembled as UFL forms)."""
    name, sets = CASES[case]
    sc = load_scenario(name, SMALL + ["kinetic.degree=1", "kinetic.dt=0.01"] + sets)
    model = build_model(sc)
    fast = KineticStepper(model, MPI.COMM_SELF)
    slow = KineticStepper(build_model(sc, F=model.F, S_diag=model.S_diag), MPI.COMM_SELF)
    assert fast.group.fast is not None and slow.group.fast is None
    for _ in range(4):
        fast.step()
        slow.step()
    assert np.abs(fast.group.p - slow.group.p).max() < 1e-11
    assert np.abs(fast.vbar - slow.vbar).max() < 1e-11


def _interp(V, f):
    from dolfinx import fem

    u = fem.Function(V)
    u.interpolate(f)
    return u.x.array.copy()


@pytest.mark.mpi
def test_layouts_under_mpi():
    """Sites split over ranks: serial groups use the fast path; one site on a distributed
    mesh falls back to the forms, and its E(p)(q), <F> equal the serial fast values."""
    comm = MPI.COMM_WORLD
    ring = load_scenario("ring-bump", SMALL + ["space.sites=4", "kinetic.degree=1"])
    assert KineticStepper(build_model(ring), comm).group.fast is not None
    name, sets = CASES["double_well-multiplicative"]
    model = build_model(load_scenario(name, SMALL + sets))
    out = {}
    for c in (comm, MPI.COMM_SELF):
        g = SiteGroup(c, np.array([0]), model, state_mesh(c, "box", 3.0, 8))
        assert (g.fast is None) == (c.size > 1)
        g.p[0] = _interp(g.V, lambda x: np.exp(-(x[0] - 0.3) ** 2 - 0.5 * x[1] ** 2))
        q = _interp(g.V, lambda x: np.sin(x[0]) + x[1] ** 2)[:g.n_local]
        g.set_reference(np.array([-0.4, 0.25]), np.array([0.15, -0.35]))
        E = g.explicit(g.p, VBAR[:1], MF[:1])[0]
        out[c.size] = (c.allreduce(float(E @ q)), c.allreduce(g.mean_F(VBAR[:1])[0]))
    ref = out[1]
    for par, ser in zip(out[comm.size], ref):
        assert np.abs(np.asarray(par) - ser).max() < 1e-12 * (1 + np.abs(ser).max())
