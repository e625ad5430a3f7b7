"""Figures from run outputs (`fpsolver plot`), on small synthetic and Gaussian runs."""

import numpy as np
import pytest

from fpsolver.cli import main
from fpsolver.gaussian import run_gaussian
from fpsolver.output import RunResult, write_outputs
from fpsolver.plotting import load_runs, mode1_spectrum, particle_fluctuations, plot_run
from fpsolver.scenario import load_scenario
from fpsolver.space import make_sites


def test_mode1_spectrum_peaks_at_the_rotation_frequency():
    t = np.arange(0, 20, 0.01)
    rng = np.random.default_rng(0)
    for w in (10.0, -20.0):  # either rotation sense lands on |w|
        z = np.exp(1j * w * t) + 0.3 * (rng.normal(size=t.size) + 1j * rng.normal(size=t.size))
        omega, power = mode1_spectrum(t, z, discard=1.0)
        assert abs(omega[np.argmax(power)] - abs(w)) < 2 * np.pi / 19


def _fake_run(tmp_path, name, kind, sc, extra):
    sites = make_sites(sc.space)
    t = np.linspace(0, sc.t_end, 11)
    B = sites.count
    vbar = np.zeros((t.size, B, 2)) + np.linspace(0, 1, B)[None, :, None]
    cov = np.broadcast_to(np.eye(2) * 0.5, (t.size, B, 2, 2)).copy()
    result = RunResult(kind=kind, t=t, vbar=vbar, cov=cov, sites=sites, extra=extra)
    write_outputs(tmp_path / name, sc, result)
    return tmp_path / name


def test_plot_overlays_particles_kinetic_and_gaussian(tmp_path, capsys):
    sc = load_scenario("tanh", ["t_end=1", "record.snapshots=[0.0, 1.0]"])
    gauss = tmp_path / "gauss"
    write_outputs(gauss, sc, run_gaussian(sc))
    rng = np.random.default_rng(1)
    v = rng.normal(size=(2, 4000, 2)) + np.array([0.3, -0.2])
    part = _fake_run(tmp_path, "part", "particles", sc, {
        "snapshot": (("snapshot_time", "pair", "population"), v, {}),
        "skewness": (("time", "site", "population"), np.zeros((11, 1, 2)), {})})
    y = np.linspace(-4, 4, 81)
    p = np.exp(-y**2) / np.sqrt(np.pi)
    marg = np.broadcast_to(p, (2, 1, y.size))
    kin = _fake_run(tmp_path, "kin", "kinetic", sc, {
        "marginal_e": (("snapshot_time", "site", "grid"), marg, {}),
        "marginal_i": (("snapshot_time", "site", "grid"), marg, {}),
        "kurtosis": (("time", "site", "population"), np.ones((11, 1, 2)), {})})
    paths = plot_run(kin, compare=[part, gauss])
    names = {q.name for q in paths}
    assert names == {"means_variances.png", "moments.png", "marginals.png"}
    assert all(q.parent == kin / "figures" and q.stat().st_size > 10_000 for q in paths)
    runs = load_runs(kin, [part, gauss])
    assert [r.solver for r in runs] == ["kinetic", "particles", "gaussian"]
    assert runs[1].label == f"particles (n = {sc.n})"
    yk = particle_fluctuations(runs[1], 1)  # the means are removed
    np.testing.assert_allclose(yk.mean(axis=0), 0, atol=1e-12)
    assert main(["plot", str(gauss), "--compare", str(part)]) == 0
    assert "means_variances.png" in capsys.readouterr().out


def test_spatial_run_gets_a_space_time_image_and_spectrum(tmp_path):
    sc = load_scenario("ring-oscillation", ["t_end=2", "n=400"])
    t = np.linspace(0, 2, 201)
    z = np.exp(1j * 20 * t)
    run = _fake_run(tmp_path, "ring", "particles", sc.replace(t_end=2.0), {})
    # overwrite with a run on the recording grid that carries mode 1
    sites = make_sites(sc.space)
    result = RunResult(kind="particles", t=t, vbar=np.zeros((t.size, sites.count, 2)),
                       cov=np.zeros((t.size, sites.count, 2, 2)), sites=sites, extra={
                           "fourier1_re": (("time", "population"), np.c_[z.real, z.real], {}),
                           "fourier1_im": (("time", "population"), np.c_[z.imag, z.imag], {})})
    write_outputs(run, sc, result)
    names = {q.name for q in plot_run(run)}
    assert {"spacetime_vbar.png", "spectrum_mode1.png"} <= names


def test_plot_of_a_missing_run_is_a_clear_error(tmp_path, capsys):
    assert main(["plot", str(tmp_path)]) == 2
    assert "observables.nc" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        plot_run(tmp_path / "nothing")
