"""Run outputs shared by every solver: ``summary.json``, ``observables.nc``, ``scenario.toml``.

The same names serve the particle simulator (per site or site bin), the Gaussian limit
and the kinetic solver, so any two runs compare directly:

- ``vbar(time, site, population)``: mean activity (voltage);
- ``cov(time, site, population, population_)``: covariance of the fluctuations
  (voltage^2);
- site coordinates ``x(site, dim)`` and quadrature weights ``weight(site)``;
- solver-specific variables (``skewness``, ``kurtosis``, ``lambda_``, diagnostics, ...)
  passed in :attr:`RunResult.extra`.

Every file is written to a temporary name and renamed, so an interrupted write leaves
the previous file intact; the folder's ``manifest.json`` (:mod:`fpsolver.rundir`) is
removed first and written last, listing the files with their checksums and the run id
they all carry, so a folder whose writing was cut is recognisably incomplete and
:func:`read_observables` refuses it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fpsolver.scenario import Scenario, to_toml
from fpsolver.space import Sites

__all__ = ["RunResult", "write_outputs", "atomic_write", "read_observables"]

# NetCDF-3 (64-bit offset) through scipy: no HDF5 library involved, so writing works after
# DOLFINx has loaded its own HDF5 (the netCDF4 library then fails with "NetCDF: HDF error").
NETCDF_ENGINE = "scipy"


@dataclass
class RunResult:
    """What a solver computed, on a common layout.

    Attributes:
        kind: ``particles``, ``gaussian`` or ``kinetic``.
        t: recording times, shape ``(T,)``.
        vbar: means, shape ``(T, sites, 2)``.
        cov: covariances, shape ``(T, sites, 2, 2)``.
        sites: the sites (or particle bins) the rows refer to.
        extra: more variables, ``name -> (dims, array, attrs)``.
        info: scalars for ``summary.json`` (wall time, steps, diagnostics ...).
    """

    kind: str
    t: np.ndarray
    vbar: np.ndarray
    cov: np.ndarray
    sites: Sites
    extra: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def site_average(self) -> dict:
        """Site-averaged series (weights rho) for ``summary.json``."""
        w = self.sites.weights
        vbar = np.einsum("tsa,s->ta", self.vbar, w)
        cov = np.einsum("tsab,s->tab", self.cov, w)
        return {"t": self.t, "vbar_e": vbar[:, 0], "vbar_i": vbar[:, 1],
                "K_ee": cov[:, 0, 0], "K_ii": cov[:, 1, 1], "K_ei": cov[:, 0, 1]}


_UMASK = os.umask(0o022)  # read once (the only way): mkstemp files are 0600, outputs
os.umask(_UMASK)           # get the permissions an ordinary open() would give them


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path`` (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _to_dataset(scenario: Scenario, result: RunResult, run_attrs: dict):
    import xarray as xr

    pops = ["e", "i"]
    data = {
        "vbar": (("time", "site", "population"), result.vbar,
                 {"long_name": "mean activity vbar_a(x, t)", "units": "voltage"}),
        "cov": (("time", "site", "population", "population_"), result.cov,
                {"long_name": "covariance of the fluctuations y", "units": "voltage^2"}),
        "x": (("site", "dim"), result.sites.points, {"long_name": "site coordinates"}),
        "weight": (("site",), result.sites.weights, {"long_name": "quadrature weight rho"}),
    }
    for name, (dims, array, attrs) in result.extra.items():
        data[name] = (dims, np.asarray(array), attrs)
    coords = {"time": ("time", result.t, {"units": "time (units of tau)"}),
              "population": pops, "population_": pops}
    attrs = {"scenario_name": scenario.name, "scenario_toml": to_toml(scenario),
             "solver": result.kind, "fpsolver_version": _version(),
             "space": result.sites.kind, **run_attrs}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _version() -> str:
    from fpsolver import __version__
    return __version__


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def write_outputs(out_dir: str | Path, scenario: Scenario, result: RunResult, *,
                  run_id: str | None = None, status: str = "complete",
                  also: tuple[str, ...] = ("snapshots",), command: str = "") -> dict:
    """Write a run's files into ``out_dir``, ``manifest.json`` last.

    First ``summary.json``, ``observables.nc`` and ``scenario.toml``, then
    ``manifest.json`` listing them (and the folders ``also`` names, if present). Call it on
    one rank (under MPI the results are complete on every rank; the CLI writes on rank 0):
    ranks writing one folder together would mix their run ids.

    Args:
        out_dir: the output folder (created if missing).
        scenario: the resolved scenario (``scenario.toml`` and the summary).
        result: the run's records and information.
        run_id: the id every file carries (default: a new one).
        status: ``complete``, or ``interrupted`` for the records an interrupted run
            reached (also in every file's attributes).
        also: more files or folders below ``out_dir`` for the manifest, if present.
        command: the command line, recorded in the manifest.

    Returns:
        The paths written, by name.
    """
    from fpsolver.rundir import MANIFEST, new_run_id, write_manifest

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run_id = run_id or new_run_id()
    run_attrs = {"run_id": run_id, "status": status}
    summary = {"solver": result.kind, "scenario": scenario.to_dict(),
               "fpsolver_version": _version(), "seed": scenario.seed, **result.info,
               **run_attrs, "series": result.site_average()}
    paths = {"summary": out / "summary.json", "observables": out / "observables.nc",
             "scenario": out / "scenario.toml"}
    if len(summary["series"]["t"]) != len(result.vbar):  # never write a mixed set
        raise ValueError(f"{len(summary['series']['t'])} record times for "
                         f"{len(result.vbar)} records")
    dataset = _to_dataset(scenario, result, run_attrs)
    (out / MANIFEST).unlink(missing_ok=True)  # the folder is incomplete until the end
    toml = f"# fpsolver run {run_id} ({status})\n" + to_toml(scenario)
    atomic_write(paths["scenario"], lambda p: p.write_text(toml, encoding="utf-8"))
    atomic_write(paths["summary"],
                 lambda p: p.write_text(json.dumps(summary, indent=1, default=_jsonable)))
    atomic_write(paths["observables"], lambda p: dataset.to_netcdf(p, engine=NETCDF_ENGINE))
    paths["manifest"] = write_manifest(out, run_id, [p.name for p in paths.values()]
                                       + list(also), status=status, command=command)
    return paths


def read_observables(out_dir: str | Path, *, verify: bool = True):
    """Open ``observables.nc`` of a run as an ``xarray.Dataset`` (loaded into memory).

    With ``verify`` (default) the folder must hold one complete run: its manifest
    present and every file matching its checksum (:func:`fpsolver.rundir.verify_run_folder`),
    else :class:`~fpsolver.rundir.RunFolderError`.
    """
    import xarray as xr

    out = Path(out_dir)
    if verify and out.is_dir():
        from fpsolver.rundir import verify_run_folder

        manifest = verify_run_folder(out)
        if "observables.nc" not in manifest["files"]:
            from fpsolver.rundir import RunFolderError

            raise RunFolderError(f"{out} holds a run without observables.nc (a stability "
                                 "analysis?) -- fix: give the --out folder of a solver run")
    with xr.open_dataset(out / "observables.nc", engine=NETCDF_ENGINE) as ds:
        return ds.load()
