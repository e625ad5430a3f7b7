"""Fast polynomial terms (fpsolver.kinetic.polynomial) against the UFL forms.

The fast path must give the same explicit IMEX term E = (a_site - a_ref)(p, .) and the
same <F(vbar + .)> as assembling the forms of fpsolver.kinetic.forms, to round-off, for
every built-in drift/noise family; user callables must keep the generic path.
"""

import dataclasses

import numpy as np
import pytest
from mpi4py import MPI

from fpsolver.kinetic import KineticStepper
from fpsolver.kinetic.group import SiteGroup
from fpsolver.kinetic.meshing import state_mesh
from fpsolver.kinetic.polynomial import fit_polynomial
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
    assert build_model(sc).builtin_terms
    F = build_model(sc).F
    for model in (build_model(sc, F=F), build_model(sc, S_diag=build_model(sc).S_diag)):
        assert not model.builtin_terms
        assert SiteGroup(MPI.COMM_SELF, np.array([0]), model, smesh).fast is None


def test_non_polynomial_is_not_fitted():
    assert fit_polynomial(lambda ve, vi, xp=np: (xp.tanh(ve), vi), 3) is None
    c = fit_polynomial(lambda ve, vi, xp=np: (ve**3 - 2 * vi, 0.5 + ve * vi), 3)
    assert c[0, 3, 0] == pytest.approx(1) and c[0, 0, 1] == pytest.approx(-2)
    assert c[1, 0, 0] == pytest.approx(0.5) and c[1, 1, 1] == pytest.approx(1)


@pytest.mark.parametrize("case", ["double_well-multiplicative", "cubic-multiplicative"])
def test_fast_run_equals_generic_run(case):
    """A few coupled steps (densities + Newton) agree with the generic path."""
    name, sets = CASES[case]
    sc = load_scenario(name, SMALL + ["kinetic.degree=1", "kinetic.dt=0.01"] + sets)
    fast = KineticStepper(build_model(sc), MPI.COMM_SELF)
    slow = KineticStepper(dataclasses.replace(build_model(sc), builtin_terms=False),
                          MPI.COMM_SELF)
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
