"""Fuzzed kinetic settings: a few steps of the FE solver either run or raise FpsolverError.

Random ``kinetic.*`` values (cells, degree, domain, half width, dt, scheme, PETSc options)
on a cheap mean-field scenario; a raw PETSc/DOLFINx/numpy exception is a failure.
"""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fpsolver.errors import FpsolverError
from fpsolver.scenario import load_scenario

petsc_options = st.dictionaries(
    st.sampled_from(["ksp_type", "pc_type", "pc_factor_mat_solver_type", "ksp_rtol",
                     "ksp_max_it", "bogus_option"]),
    st.one_of(st.sampled_from(["preonly", "gmres", "lu", "ilu", "jacobi", "mumps", "petsc",
                               "nonsense", ""]), st.integers(-2, 50),
              st.floats(-1, 1, allow_nan=False)), max_size=2)
kinetic = st.fixed_dictionaries({}, optional={
    "kinetic.cells": st.integers(-1, 10),
    "kinetic.degree": st.integers(0, 3),
    "kinetic.domain": st.sampled_from(["box", "disk", "nowhere.msh", "", "BOX"]),
    "kinetic.half_width": st.one_of(st.floats(-1, 12), st.sampled_from([1e-6, 1e6])),
    "kinetic.dt": st.sampled_from([0.05, 0.1, 1.0, 1e-9, -0.1]),
    "kinetic.scheme": st.sampled_from(["bdf2", "cn", "euler", "rk4"]),
    "kinetic.petsc_options": petsc_options,
})


def _toml(value):
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return repr(value)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(settings_=kinetic)
def test_fuzzed_kinetic_settings_run_or_raise_clearly(settings_):
    from fpsolver.kinetic import run_kinetic

    overrides = ["kinetic.cells=6", "kinetic.degree=1", "t_end=0.2", "record.every=0.1"]
    overrides += [f"{k}={_toml(v)}" for k, v in settings_.items()]
    try:
        sc = load_scenario("linear", overrides)
        sc = sc.replace(t_end=max(sc.t_end, 2 * sc.kinetic.dt))
        if sc.kinetic.cells > 8 or (sc.kinetic.dt and sc.t_end / sc.kinetic.dt > 50):
            return  # valid but not cheap (kinetic.dt = 0: automatic steps, cheap here)
        run_kinetic(sc, progress=False)
    except FpsolverError as exc:
        assert str(exc)
