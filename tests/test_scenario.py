"""Scenario schema: loading, overrides, round trip, and one test per validation rule."""

import tomllib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fpsolver.errors import ScenarioError
from fpsolver.scenario import load_scenario, scenario_from_dict, scenario_names, to_toml

SHIPPED = ["bistable", "bistable-balance", "linear", "ring-bump", "ring-oscillation", "sheet",
           "tanh"]


def test_shipped_scenarios_load_and_round_trip():
    assert set(SHIPPED) <= set(scenario_names())
    for name in SHIPPED:
        sc = load_scenario(name)
        assert sc.name == name
        assert scenario_from_dict(tomllib.loads(to_toml(sc))) == sc


@pytest.mark.parametrize("name, description", [
    ("two words", 'say "hi"\nthen \\ backslash'),
    ("tab and 'single' quotes", "trailing backslash \\"),
    ('"""', "'''"),
    ("unicode: σ_e ≥ 0", "control \x01 \x7f chars"),
])
def test_strings_and_dotted_keys_round_trip(tmp_path, name, description):
    """Names with quotes, descriptions with newlines and PETSc options round-trip.

    They survive to_toml -> file -> load_scenario unchanged (a name is one line: see
    test_hostile_inputs).
    """
    options = {"ksp_type": "preonly", "pc_factor_mat_solver_type": "mumps",
               "mat_mumps_icntl_14": 50, "ksp_rtol": 1e-10}
    sc = load_scenario("linear", ["n=123"]).replace(name=name, description=description)
    sc.kinetic.petsc_options = options
    path = tmp_path / "round.toml"
    path.write_text(to_toml(sc), encoding="utf-8")
    back = load_scenario(path)
    assert back == sc
    assert back.name == name and back.kinetic.petsc_options == options


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=40), name=st.text(max_size=40).filter(str.isprintable))
def test_any_text_round_trips(tmp_path, text, name):
    sc = load_scenario("linear").replace(name=name, description=text + "\n" + text)
    sc.kinetic.petsc_options = {"ksp_type": "gmres", "ksp_rtol": 1e-9}
    path = tmp_path / "any.toml"
    path.write_text(to_toml(sc), encoding="utf-8")
    assert load_scenario(path) == sc


def test_overrides_dotted_and_top_level():
    sc = load_scenario("tanh", ["populations.e.tau=0.5", "n=400", "seed=7", "t_end=2",
                                "dt=0.01", "gains.family=linear", "kernel.ee=[2.0]"])
    assert sc.populations.e.tau == 0.5 and sc.n == 400 and sc.seed == 7
    assert sc.t_end == 2.0 and sc.dt == 0.01 and sc.gains.family == "linear"
    assert sc.kernel.ee == [2.0]


def test_load_by_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(to_toml(load_scenario("linear", ["n=123"])))
    assert load_scenario(path).n == 123


@pytest.mark.parametrize("override, field", [
    ("bogus=1", "bogus"),                                  # unknown key
    ("populations.e.taux=1", "populations.e.taux"),        # unknown nested key
    ("populations.e.tau='fast'", "populations.e.tau"),     # wrong type
    ("n=2.5", "n"),                                        # wrong type (not an integer)
    ("populations.e.tau=0", "populations.e.tau"),          # tau <= 0
    ("populations.i.tau=-1", "populations.i.tau"),         # tau <= 0
    ("populations.e.sigma=-0.1", "populations.e.sigma"),   # sigma < 0
    ("n=0", "n"),                                          # n < 1
    ("dt=0", "dt"),                                        # dt <= 0
    ("dt=-1e-3", "dt"),                                    # dt <= 0
    ("kernel.ei=[-1.0]", "kernel.ei"),                     # negative kernel
    ("gains.ie=-1.0", "gains.ie"),                         # decreasing gain
    ("t_end=0.0001", "t_end"),                             # t_end < dt
    ("gains.family='tanhh'", "gains.family"),              # unknown family
    ("dynamics.family='quartic'", "dynamics.family"),      # unknown family
    ("noise.family='colored'", "noise.family"),            # unknown family
    ("kernel.family='box'", "kernel.family"),              # unknown family
    ("initial.cov=[[1.0, 2.0], [2.0, 1.0]]", "initial.cov"),  # not positive definite
    ("kinetic.degree=5", "kinetic.degree"),
    ("kinetic.half_width=1e6", "kinetic.half_width"),  # adaptive frame: sd, not volts
    ("kinetic.scheme='rk4'", "kinetic.scheme"),
    # gaps found by the fuzz tests (tests/test_fuzz_scenario.py), closed
    ("initial.cov=[[inf, 0.0], [0.0, inf]]", "initial.cov"),
    ("dynamics.coupling=[[nan, 0.0], [0.0, 0.0]]", "dynamics.coupling"),
    ("dynamics.center=[inf, 0.0]", "dynamics.center"),
    ("record.snapshots=[-1.0]", "record.snapshots"),
    ("seed=-1", "seed"),
    ("kernel.ee=[nan]", "kernel.ee"),
    ("kinetic.petsc_options={ksp_type = [1, 2]}", "kinetic.petsc_options.ksp_type"),
    ("record.every=1e-300", "record.every"),
    ("dt=1e-300", "dt"),
])
def test_bad_input_names_the_field(override, field):
    with pytest.raises(ScenarioError) as info:
        load_scenario("tanh", [override])
    assert info.value.field == field
    assert f"'{field}'" in str(info.value) and "fix:" in str(info.value)


def test_unknown_family_suggests_the_closest_name():
    with pytest.raises(ScenarioError, match="did you mean 'tanh'"):
        load_scenario("tanh", ["gains.family=tanhh"])


def test_unknown_scenario_and_missing_file(tmp_path):
    with pytest.raises(ScenarioError, match="no scenario named"):
        load_scenario("nope")
    with pytest.raises(ScenarioError, match="not found"):
        load_scenario(tmp_path / "missing.toml")


def test_malformed_override_and_toml(tmp_path):
    with pytest.raises(ScenarioError, match="key.path=value"):
        load_scenario("tanh", ["n"])
    bad = tmp_path / "bad.toml"
    bad.write_text("n = = 3")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(bad)


def test_grid_positions_need_divisible_n():
    with pytest.raises(ScenarioError) as info:
        load_scenario("ring-bump", ["n=1000"])
    assert info.value.field == "n"


def test_kinetic_step_longer_than_the_run():
    with pytest.raises(ScenarioError) as info:
        load_scenario("tanh", ["t_end=0.002", "kinetic.dt=0.01"])
    assert info.value.field == "kinetic.dt"
