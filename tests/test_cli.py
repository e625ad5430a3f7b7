"""The command line: every subcommand that needs no heavy solver, and the output files."""

import json
import re

import numpy as np

from fpsolver.cli import main
from fpsolver.output import read_observables


def test_gaussian_writes_summary_and_observables(tmp_path, capsys):
    assert main(["gaussian", "tanh", "--set", "t_end=1", "--out", str(tmp_path)]) == 0
    assert "0.082605" in capsys.readouterr().out  # vbar_e(0) of MODEL §5's table
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["solver"] == "gaussian" and summary["scenario"]["t_end"] == 1.0
    assert set(summary["series"]) == {"t", "vbar_e", "vbar_i", "K_ee", "K_ii", "K_ei"}
    ds = read_observables(tmp_path)
    assert ds["vbar"].dims == ("time", "site", "population")
    assert ds["cov"].dims == ("time", "site", "population", "population_")
    np.testing.assert_allclose(ds["vbar"].values[:, 0, 0], summary["series"]["vbar_e"])
    assert "name = \"tanh\"" in (tmp_path / "scenario.toml").read_text()


def test_stability_json(capsys):
    assert main(["stability", "ring-oscillation", "--set", "n=400", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "oscillating"
    assert abs(report["frequency"] - 20.0) < 1e-9
    assert {"re", "im"} == set(report["modes"]["1"][0])


def test_stability_text(capsys):
    assert main(["stability", "linear"]) == 0
    out = capsys.readouterr().out
    assert "attracting" in out and "+0.003750" in out


def test_bad_override_is_a_clear_error(capsys):
    assert main(["gaussian", "tanh", "--set", "populations.e.tau=-1"]) == 2
    err = capsys.readouterr().err
    assert "populations.e.tau" in err and "fix:" in err


def test_show_and_scenarios(capsys):
    assert main(["show", "tanh", "--set", "n=77"]) == 0
    assert "n = 77" in capsys.readouterr().out
    assert main(["scenarios"]) == 0
    assert "ring-bump" in capsys.readouterr().out


def test_kinetic_writes_netcdf_after_dolfinx_ran(tmp_path, capsys):
    # Regression: DOLFINx's HDF5 broke NetCDF-4 writes once a kinetic run had happened.
    out = tmp_path / "k"
    assert main(["kinetic", "tanh", "--set", "t_end=0.05", "--set", "kinetic.cells=16",
                 "--quiet", "--out", str(out)]) == 0
    ds = read_observables(out)
    assert ds.attrs["solver"] == "kinetic" and ds["vbar"].shape[1:] == (1, 2)
    # the peak memory, printed beside the preflight estimate and kept in the summary
    summary = json.loads((out / "summary.json").read_text())
    assert summary["peak_memory"] >= summary["peak_memory_rank"] > 0
    assert summary["peak_memory_per_site"] == summary["peak_memory"]  # one site
    assert summary["memory_estimate"] > 0
    line = r"^memory: peak \S+ [kMG]B \(\S+ [kMG]B per site; estimate \S+ [kMG]B[^)]*\)$"
    assert re.search(line, capsys.readouterr().out, re.MULTILINE)  # [^)]: refined mesh


def test_demo_runs_all_three_solvers_on_a_small_grid(tmp_path, capsys):
    """`fpsolver demo` (what `make demo` runs; the full run is in .ci/run), shortened."""
    from fpsolver.output import read_observables

    assert main(["demo", "--out", str(tmp_path), "--set", "kinetic.cells=24",
                 "--set", "t_end=0.2", "--set", "kinetic.dt=0.02", "--n", "4000"]) == 0
    text = capsys.readouterr().out
    assert "figures:" in text and "not applicable here" in text  # no Gaussian for bistable
    kin = read_observables(tmp_path / "kinetic")
    par = read_observables(tmp_path / "particles")
    assert len(list((tmp_path / "figures").glob("*.png"))) >= 2
    # both start from the same initial covariance (0.25 I): within sampling error of n=4000
    var0 = par["cov"].values[0, 0, 0, 0]
    assert abs(kin["cov"].values[0, 0, 0, 0] - 0.25) < 1e-3
    assert abs(var0 - 0.25) < 5 * 0.25 * (2 / 4000) ** 0.5
