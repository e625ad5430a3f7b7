"""The fast polynomial operator against the UFL form (fpsolver.kinetic.operator).

`PolynomialOperator` (fixed monomial matrices times per-site scalars, built from the
model's exact family coefficients) is the implementation; `FormOperator` (the weak form
of MODEL §2b assembled from the model's callables) is the reference. They must give the
same implicit matrix, the same explicit differences and the same expectations to
round-off, for every built-in drift/noise family and for sites with frames ell != 1 in
motion; user callables always take the generic path, and a user callable equal to a
built-in family gives the built-in result to 1e-12.
"""

import numpy as np
import pytest
from mpi4py import MPI

from fpsolver.families import evaluate_polynomial
from fpsolver.kinetic import KineticStepper
from fpsolver.kinetic.densities import SiteDensities
from fpsolver.kinetic.meshing import state_mesh
from fpsolver.kinetic.operator import FormOperator, PolynomialOperator, build_operator
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
# site parameters P = (vbar_e, vbar_i, <F_e>, <F_i>, ell_e, ell_i, elld_e, elld_i)
P = np.array([[0.3, -0.7, 0.2, -0.5, 0.8, 1.3, 0.1, -0.2],
              [-1.1, 0.4, 0.6, 0.1, 1.5, 0.6, -0.3, 0.05],
              [0.9, 1.3, -0.3, 0.8, 0.4, 2.0, 0.0, 0.4]])
REF = np.array([-0.4, 0.25, 0.15, -0.35, 1.0, 0.9, 0.05, 0.0])


def _operators(name, sets, degree):
    model = build_model(load_scenario(name, SMALL + sets))
    smesh = state_mesh(MPI.COMM_SELF, "box", 3.0, 8)
    dens = SiteDensities(MPI.COMM_SELF, np.arange(3), model, smesh, degree, np.eye(2))
    rng = np.random.default_rng(1)
    Q = dens.q[:, :dens.n_owned] * (1 + 0.5 * rng.random((3, dens.n_owned)))
    fast = dens.operator
    form = FormOperator(dens.V, model, fast.qdeg)
    return dens, fast, form, Q


def _dense(mat):
    return mat.convert("dense").getDenseArray()


def _rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


@pytest.mark.parametrize("degree", [1, 2])
@pytest.mark.parametrize("case", list(CASES))
def test_polynomial_operator_equals_form(case, degree):
    """Matrix, explicit differences and expectations equal the UFL form to round-off."""
    dens, fast, form, Q = _operators(*CASES[case], degree)
    assert isinstance(fast, PolynomialOperator)
    assert _rel(_dense(fast.matrix(REF)), _dense(form.matrix(REF))) < 1e-12
    refs = np.tile(REF, (3, 1))
    E_fast, E_form = fast.difference(Q, P, refs), form.difference(Q, P, refs)
    assert np.abs(E_form).max() > 1e-3  # the sites really differ from the reference
    assert _rel(E_fast, E_form) < 1e-12
    assert np.abs(fast.difference(Q, refs, refs)).max() < 1e-13  # a site at its reference
    X_fast = fast.expectations(dens.quad, Q, P)
    X_form = form.expectations(dens.quad, Q, P)
    assert _rel(X_fast, X_form) < 1e-11


def test_user_callables_use_generic_path():
    """F or S given as callables (even polynomial ones) take the form assembly."""
    sc = load_scenario("bistable", SMALL)
    model = build_model(sc)
    V = SiteDensities(MPI.COMM_SELF, np.array([0]), model, state_mesh(
        MPI.COMM_SELF, "box", 3.0, 8), 1, np.eye(2)).V
    assert isinstance(build_operator(V, model, 4), PolynomialOperator)
    for user in (build_model(sc, F=model.F), build_model(sc, S_diag=model.S_diag)):
        assert not user.builtin("F", "S")
        assert isinstance(build_operator(V, user, 4), FormOperator)


@pytest.mark.parametrize("case", list(CASES))
def test_coefficients_are_the_families(case):
    """The model's exact coefficients of F and D = S^2 reproduce its callables.

    To round-off on [-3, 3]^2; they are None for user callables.
    """
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


@pytest.mark.parametrize("user", ["copy", "callables"])
def test_generic_run_equals_fast_run(user):
    """The generic UFL path gives the fast polynomial path's run to 1e-12.

    A few coupled steps (densities, frames, Newton) with user callables equal to the
    built-in families (a hand-written copy, or the model's own callables) against the
    built-in run.
    """
    name, sets = CASES["double_well-multiplicative"]
    sc = load_scenario(name, ["kinetic.cells=16", "kinetic.dt=0.01"] + sets)
    model = build_model(sc)
    other = (_user_copy(sc) if user == "copy"
             else build_model(sc, F=model.F, S_diag=model.S_diag))
    fast = KineticStepper(model, MPI.COMM_SELF)
    slow = KineticStepper(other, MPI.COMM_SELF)
    assert isinstance(fast.dens.operator, PolynomialOperator)
    assert isinstance(slow.dens.operator, FormOperator)
    for _ in range(4):
        fast.step()
        slow.step()
    for a, b in ((fast.dens.q, slow.dens.q), (fast.vbar, slow.vbar), (fast.lam, slow.lam),
                 (fast.mF, slow.mF), (fast.frame.ell, slow.frame.ell)):
        assert np.abs(a - b).max() < 1e-12 * (1 + np.abs(b).max())
