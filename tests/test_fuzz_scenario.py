"""Fuzzed scenarios: every input builds and runs a cheap solver, or raises a clear error.

Random ``--set`` overrides (schema keys and typos, values of every TOML type) and random
TOML documents go through ``load_scenario`` -> ``build_model`` -> ``analyse_stability`` (a
short Gaussian run for linear scenarios). Allowed outcomes: success, or an
:class:`FpsolverError` (``ScenarioError`` for bad input; ``BalanceError`` when a valid model
has no balanced state) whose message is one line naming the problem -- never a raw
exception from numpy, scipy or the TOML parser.
"""

import dataclasses
import math
import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fpsolver.errors import FpsolverError, ScenarioError
from fpsolver.model import build_model
from fpsolver.scenario import Scenario, load_scenario, scenario_names
from fpsolver.stability import analyse_stability


def _leaves(cls, prefix=""):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _leaves(hints[f.name], path + ".")
        else:
            yield path, hints[f.name]


LEAVES = dict(_leaves(Scenario))
FAMILIES = ["linear", "double_well", "cubic", "diagonal", "multiplicative", "tanh",
            "mean_field", "cosine", "gaussian", "exponential", "matrix", "point", "ring",
            "torus", "mesh", "grid", "regular", "iid", "box", "disk", "bdf2", "cn", "euler"]

ints = st.one_of(st.integers(-3, 70), st.sampled_from([0, 1, 2, 10**6, 2**63 - 1, -(2**63)]))
floats = st.one_of(st.floats(-5, 5), st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([0.0, -0.0, 1e-300, 1e300, 5e-324, 0.5, 1.0, 2.0]))
strings = st.one_of(st.sampled_from(FAMILIES + ["", "nope", "/no/such/file.msh"]),
                    st.text(max_size=12))
scalars = st.one_of(ints, floats, strings, st.booleans(), st.dates(), st.datetimes())
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.sampled_from(["a", "e", "tau", "ee", "ksp_type"]), inner, max_size=3)),
    max_leaves=8)


def _toml(value) -> str:
    """TOML text of a Python value (inline form), including nan/inf and dates."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.encode("unicode_escape").decode().replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return value.isoformat()


def _typed(tp):
    """Values of the schema type ``tp``, edge cases included (most inputs reach the model)."""
    if tp is float:
        return floats
    if tp is int:
        return ints
    if tp is str:
        return strings
    if tp is dict:
        return st.dictionaries(st.sampled_from(["ksp_type", "pc_type", "x"]), scalars, max_size=2)
    (item,) = typing.get_args(tp)
    return st.lists(_typed(item), min_size=0, max_size=3) | st.lists(_typed(item), min_size=2,
                                                                    max_size=2)


typed_override = st.sampled_from(sorted(LEAVES.items())).flatmap(
    lambda kv: _typed(kv[1]).map(lambda v, k=kv[0]: f"{k}={_toml(v)}"))

keys = st.one_of(st.sampled_from(sorted(LEAVES)),
                 st.sampled_from(sorted(LEAVES)).map(lambda k: k + "x"),      # typo'd leaf
                 st.sampled_from(["populations", "kernel", "space.kind.deeper", "=", "",
                                  "populations..tau", "a.b.c"]))
override = st.one_of(
    typed_override, typed_override, typed_override,
    st.tuples(keys, values).map(lambda kv: f"{kv[0]}={_toml(kv[1])}"),
    st.tuples(keys, st.text(max_size=10)).map(lambda kv: f"{kv[0]}={kv[1]}"),  # raw text
    st.text(max_size=20))


def _cheap_enough(sc: Scenario) -> bool:
    sites = sc.space.sites ** (2 if sc.space.kind == "torus" else 1)
    step = sc.kinetic.dt or 0.01  # automatic: the Gaussian's substeps are ~1% of 1/|Lambda|
    return sites <= 64 and sc.record.every / step <= 500


def _exercise(load):
    """Run the pipeline; return the error, or None on success."""
    try:
        sc = load()
        if not _cheap_enough(sc):
            return None
        model = build_model(sc)
        analyse_stability(sc, model=model)
    except FpsolverError as exc:
        message = str(exc)
        assert message and "Traceback" not in message
        return exc
    return None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(scenario_names()), overrides=st.lists(override, max_size=4))
def test_fuzzed_overrides_build_or_raise_clearly(base, overrides):
    _exercise(lambda: load_scenario(base, overrides))


def _section(section):
    leaves = {k.split(".")[-1]: tp for k, tp in LEAVES.items()
              if k.rsplit(".", 1)[0] == section}
    typed = st.fixed_dictionaries({}, optional={k: _typed(tp) for k, tp in leaves.items()})
    return typed | st.dictionaries(st.one_of(st.sampled_from(sorted(leaves)),
                                             st.text(min_size=1, max_size=6)), values, max_size=4)


tables = st.fixed_dictionaries({}, optional={
    section: _section(section)
    for section in ["populations.e", "populations.i", "dynamics", "noise", "gains", "kernel",
                    "space", "initial", "record", "kinetic"]})
top = st.fixed_dictionaries({}, optional={k: _typed(tp) for k, tp in LEAVES.items()
                                          if "." not in k}) | st.dictionaries(
    st.sampled_from([k for k in LEAVES if "." not in k] + ["bogus"]), values, max_size=4)


def _document(top_values: dict, sections: dict) -> str:
    lines = [f"{k} = {_toml(v)}" for k, v in top_values.items()]
    for section, body in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{_toml(k) if not k.isidentifier() else k} = {_toml(v)}"
                  for k, v in body.items()]
    return "\n".join(lines) + "\n"


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(top_values=top, sections=tables, garbage=st.one_of(st.just(""), st.text(max_size=30)))
def test_fuzzed_documents_build_or_raise_clearly(tmp_path, top_values, sections, garbage):
    path = tmp_path / "fuzz.toml"
    path.write_text(_document(top_values, sections) + garbage)
    _exercise(lambda: load_scenario(path))


def test_too_many_sites_is_refused_before_allocating():
    sc = load_scenario("linear", ["space.kind='torus'", "space.sites=100000",
                                  "space.positions='iid'"])
    with pytest.raises(ScenarioError, match="GiB"):
        build_model(sc)


def test_singular_fast_jacobian_reports_no_offset():
    sc = load_scenario("linear", ["gains.ie=0.0", "gains.ii=0.0", "populations.e.input=0.0",
                                  "populations.i.input=0.0"])
    report = analyse_stability(sc)
    assert report.verdict == "unstable" and report.offset is None


@pytest.mark.parametrize("coupling", ["[[0.0, 0.0], [0.0, 1.0]]",      # Lambda singular
                                      "[[0.0, 0.0], [0.0, 7099.0]]"])  # K overflows
def test_non_contracting_linear_drift_is_a_scenario_error(coupling):
    sc = load_scenario("linear", [f"dynamics.coupling={coupling}"])
    with pytest.raises(ScenarioError) as info:
        analyse_stability(sc)
    assert info.value.field == "dynamics.coupling"


def test_unreadable_space_mesh_is_a_mesh_error(tmp_path):
    from fpsolver.errors import MeshError

    (tmp_path / "junk.msh").write_text("not a mesh")
    sc = load_scenario("linear", ["space.kind='mesh'", f"space.mesh='{tmp_path}/junk.msh'",
                                  "space.sites=1"])
    with pytest.raises(MeshError, match="cannot read"):
        build_model(sc)
