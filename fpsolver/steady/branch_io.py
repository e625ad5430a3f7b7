"""A branch of stationary states as ``branch.nc`` (NetCDF), and back.

Variables along ``point`` (in continuation order): the parameter ``p``, ``vbar(point,
site, population)``, ``cov(point, site, population, population_)``, the leading slow
eigenvalues ``slow_re/slow_im(point, eigenvalue)``, the largest real part of the fast
ones ``fast_max_re(point)``, ``stable(point)`` (1: both time scales attracting) and
``tangent_p(point)``. Special points along ``special``: ``special_kind`` (fold, hopf,
fast-fold, fast-hopf, slow-real-crossing), ``special_p``, ``special_frequency`` (NaN if
none) and ``special_vbar(special, site, population)``. Attributes: the parameter's key,
the scenario (TOML), the run id and status.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["branch_dataset", "read_branch", "BRANCH_FILE"]

BRANCH_FILE = "branch.nc"


def branch_dataset(branch, key: str, scenario, run_attrs: dict):
    """The xarray Dataset of a :class:`~fpsolver.steady.continuation.Branch`."""
    import xarray as xr

    from fpsolver.scenario import to_toml

    count = max(len(s) for s in branch.slow)
    slow = np.full((len(branch.p), count), np.nan + 0j)
    for k, s in enumerate(branch.slow):
        slow[k, :len(s)] = s
    sp = branch.special
    data = {
        "p": (("point",), np.array(branch.p), {"long_name": key}),
        "vbar": (("point", "site", "population"), np.array(branch.vbar),
                 {"long_name": "stationary mean activity"}),
        "cov": (("point", "site", "population", "population_"), np.array(branch.cov),
                {"long_name": "stationary covariance of y"}),
        "slow_re": (("point", "eigenvalue"), slow.real,
                    {"long_name": "leading eigenvalues of the kinetic limit, real part"}),
        "slow_im": (("point", "eigenvalue"), slow.imag, {"long_name": "imaginary part"}),
        "fast_max_re": (("point",), np.array([f.real.max() for f in branch.fast]),
                        {"long_name": "largest real part of the balance Jacobian (fast)"}),
        "stable": (("point",), branch.stable().astype(np.int8),
                   {"long_name": "1: attracting on both time scales"}),
        "tangent_p": (("point",), np.array(branch.tangent_p),
                      {"long_name": "parameter component of the unit tangent"}),
        "special_kind": (("special",), np.array([s["kind"] for s in sp], dtype=str)),
        "special_p": (("special",), np.array([s["p"] for s in sp], dtype=float)),
        "special_frequency": (("special",), np.array(
            [np.nan if s["frequency"] is None else s["frequency"] for s in sp], dtype=float)),
        "special_vbar": (("special", "site", "population"),
                         np.array([s["vbar"] for s in sp], dtype=float).reshape(
                             len(sp), len(branch.vbar[0]), 2)),
    }
    attrs = {"parameter": key, "scenario_name": scenario.name,
             "scenario_toml": to_toml(scenario), "solver": "continuation", **run_attrs,
             **{f"info_{k}": str(v) for k, v in branch.info.items()}}
    return xr.Dataset(data, coords={"population": ["e", "i"], "population_": ["e", "i"]},
                      attrs=attrs)


def read_branch(out_dir, *, verify: bool = True):
    """Open ``branch.nc`` of a continuation run (the folder verified first)."""
    import xarray as xr

    from fpsolver.output import NETCDF_ENGINE

    out = Path(out_dir)
    if verify:
        from fpsolver.rundir import verify_run_folder

        verify_run_folder(out)
    with xr.open_dataset(out / BRANCH_FILE, engine=NETCDF_ENGINE) as ds:
        return ds.load()
