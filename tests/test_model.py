"""The model owns its families (issue 12): one source for every term, one "built in" test.

Solvers read F, S, G, J and the inputs from ``Model.families`` / ``Model.input_modes``,
never from the scenario's model sections; a user callable is always the generic path.
"""

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from fpsolver import families, load_scenario
from fpsolver.gaussian import run_gaussian
from fpsolver.kinetic import KineticStepper
from fpsolver.model import build_model
from fpsolver.particles import run_particles
from fpsolver.particles.steppers import kernel_params
from fpsolver.stability import analyse_stability

PACKAGE = Path(__file__).resolve().parent.parent / "fpsolver"
# the scenario's model sections, read only by model.py (scenario_families) and scenario.py
MODEL_FIELDS = re.compile(r"\.(populations|dynamics|gains)\b|\.noise\.(family|kappa)\b"
                          r"|\.kernel\.(family|ee|ei|ie|ii|width|file)\b|\.input(_cos)?\b")


def test_solvers_never_read_the_scenarios_model_sections():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        # plotting reads output files; paths checks the input files a scenario names
        if rel in ("scenario.py", "model.py", "plotting.py", "paths.py"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if MODEL_FIELDS.search(code) and not code.lstrip().startswith(("-", "*")):
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_builtin_is_answered_by_the_families():
    sc = load_scenario("bistable")
    model = build_model(sc)
    assert model.builtin() and model.builtin("F", "S", "G", "J")
    assert model.family("F").name == "double_well"
    assert model.family("F").params["center"] == tuple(sc.dynamics.center)
    assert model.family("S").params["kappa"] == tuple(sc.noise.kappa)
    assert model.family("G").params["C"] == ((sc.gains.ee, sc.gains.ei),
                                             (sc.gains.ie, sc.gains.ii))
    # any callable is a user family, even the built-in's own function
    for kwargs, term in (({"F": model.F}, "F"), ({"S_diag": model.S_diag}, "S"),
                         ({"G": {"ee": (model.G["ee"], model.G_prime["ee"])}}, "G"),
                         ({"J": lambda a, b, x, y: 1.0 + 0.0 * x[..., 0]}, "J")):
        user = build_model(sc, **kwargs)
        assert not user.builtin(term) and not user.family(term).params
        assert user.builtin(*(t for t in families.TERMS if t != term))
    # a Family is used as given: built in, its own parameters
    cubic = families.drift_family("cubic", tau=(1.0, 2.0), coupling=[[0, 0], [0, 0]],
                                  cubic=(0.3, 0.1))
    model = build_model(sc, F=cubic)
    assert model.builtin("F") and model.drift_coefficients()[1, 0, 3] == -0.1
    with pytest.raises(KeyError, match="terms are"):
        model.family("A")


def test_sites_beyond_the_memory_are_refused_before_allocating(monkeypatch):
    """The dense kernel, 32 sites^2 bytes, is refused before it is built, naming the field."""
    import fpsolver.preflight
    from fpsolver.errors import ScenarioError

    monkeypatch.setattr(fpsolver.preflight, "available_memory", lambda: 1e6)
    model = build_model(load_scenario("ring-bump", ["space.sites=1000",
                                                    "space.positions='regular'"]))
    monkeypatch.setattr(families, "kernel_matrix", lambda *args: pytest.fail("allocated"))
    with pytest.raises(ScenarioError, match="the dense kernel alone") as info:
        model.kernel
    assert info.value.field == "space.sites" and "at most 176 sites" in str(info.value)
    with pytest.raises(ScenarioError, match="the sites alone"):  # 40000 sites, 64 B each
        build_model(load_scenario("sheet", ["space.sites=200"]))


def test_structure_derived_from_families():
    lin = build_model(load_scenario("linear"))
    Lambda, f0 = lin.linear_drift
    assert np.allclose(Lambda, np.eye(2)) and not f0.any()
    assert np.allclose(lin.additive_noise, np.eye(2))
    user = build_model(load_scenario("linear"), F=lin.F, S_diag=lin.S_diag)
    assert user.linear_drift is None and user.additive_noise is None
    ring = build_model(load_scenario("ring-bump", ["space.sites=8"]))
    assert ring.kernel_modes == {"ee": (0.5, 0.5), "ei": (1.5, 1.0), "ie": (1.5, 1.0),
                                 "ii": (1.0, 1.0)}
    x = ring.sites.points[:, 0]
    assert np.allclose(ring.inputs[:, 0], 0.2 + 0.1 * np.cos(x))


def _other(sc):
    """A scenario differing from ``sc`` in every model section (run settings kept)."""
    return sc.replace(
        populations=dataclasses.replace(sc.populations, e=dataclasses.replace(
            sc.populations.e, tau=0.3, sigma=2.0, input=0.05)),
        dynamics=dataclasses.replace(sc.dynamics, family="cubic", cubic=[0.7, 0.2]),
        noise=dataclasses.replace(sc.noise, family="multiplicative", kappa=[0.5, 0.5]),
        gains=dataclasses.replace(sc.gains, family="linear", ee=0.3))


@pytest.mark.parametrize("name", ["tanh", "ring-bump"])
def test_solvers_read_the_model_not_its_scenario(name):
    # a model whose .scenario says something else entirely gives the same results: every
    # solver takes the terms from the model's families (numba particles bit for bit)
    sc = load_scenario(name, ["n=4096", "t_end=0.2", "space.sites=8"] if name == "ring-bump"
                       else ["n=4096", "t_end=0.2"])
    model = build_model(sc)
    lying = dataclasses.replace(model, scenario=_other(sc))
    assert np.array_equal(kernel_params(model, 1e-3), kernel_params(lying, 1e-3))
    a = run_particles(sc, model=model, progress=False)
    b = run_particles(sc, model=lying, progress=False)
    assert a.info["backend"] == b.info["backend"] == "numba"
    assert np.array_equal(a.vbar, b.vbar) and np.array_equal(a.cov, b.cov)
    ra, rb = analyse_stability(sc, model=model), analyse_stability(sc, model=lying)
    assert np.array_equal(ra.eigenvalues, rb.eigenvalues)
    if name == "tanh":
        ga, gb = run_gaussian(sc, model), run_gaussian(sc, lying)
        assert np.array_equal(ga.vbar, gb.vbar) and np.array_equal(ga.cov, gb.cov)


def test_kinetic_reads_the_model_not_its_scenario():
    sc = load_scenario("bistable", ["kinetic.cells=16", "kinetic.half_width=5.0",
                                    "kinetic.grading=0", "kinetic.degree=1"])
    model = build_model(sc)
    lying = dataclasses.replace(model, scenario=_other(sc))
    a, b = KineticStepper(model, MPI.COMM_SELF), KineticStepper(lying, MPI.COMM_SELF)
    from fpsolver.kinetic.operator import PolynomialOperator

    assert isinstance(a.dens.operator, PolynomialOperator)
    assert isinstance(b.dens.operator, PolynomialOperator)
    for _ in range(2):
        a.step()
        b.step()
    assert np.array_equal(a.dens.q, b.dens.q) and np.array_equal(a.vbar, b.vbar)
