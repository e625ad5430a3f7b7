"""Fast tests of the particle simulator (MODEL §1): layout, determinism, schemes, paths.

Tolerances: sampling error of a per-bin mean is sqrt(K / N) for N pairs (K ~ 0.5 here);
paths that share the same normals must agree to round-off (1e-10 after a few hundred
steps of a contracting system).
"""

import json
import math
from pathlib import Path

import numba
import numpy as np
import pytest

from fpsolver import ScenarioError, load_scenario
from fpsolver.gaussian import run_gaussian
from fpsolver.model import build_model
from fpsolver.output import read_observables, write_outputs
from fpsolver.particles import noise, run_particles
from fpsolver.particles.noise import NormalStream
from fpsolver.runtime.health import NumericalError

REFERENCE = Path(__file__).parent / "data" / "particle_reference.json"


def _run(name, *overrides, **kwargs):
    return run_particles(load_scenario(name, list(overrides)), progress=False, **kwargs)


def test_layout_and_outputs(tmp_path):
    sc = load_scenario("ring-bump", ["n=4096", "t_end=0.1", "space.sites=16",
                                     "record.snapshots=[0.0, 0.1]"])
    r = run_particles(sc, progress=False)
    T = len(r.t)
    assert r.vbar.shape == (T, 16, 2) and r.cov.shape == (T, 16, 2, 2)
    assert np.isfinite(r.vbar).all() and np.isfinite(r.cov).all()
    assert r.extra["skewness"][1].shape == (T, 16, 2)
    assert (r.extra["count"][1] == 256).all()
    assert r.extra["state"][1].shape == (2, 4096, 2)
    assert r.extra["fourier1_re"][0] == ("time", "population")
    assert "plain" in r.extra["kurtosis"][2]["long_name"]
    # the initial fluctuations are N(0, K0): kurtosis 3 within 6 standard errors
    # (se of the plain kurtosis of N = 256 Gaussians is sqrt(24/256) ~ 0.31; site average /4)
    assert abs(np.nanmean(r.extra["kurtosis"][1][0]) - 3) < 6 * 0.31 / 4
    # the snapshot at t = 0 holds the state the t = 0 record was taken from
    v0 = r.extra["state"][1][0]
    assert np.allclose(v0[:256].mean(axis=0), r.vbar[0, 0])
    for key in ("wall_time", "steps", "neuron_steps_per_second", "seed"):
        assert key in r.info
    write_outputs(tmp_path, sc, r)
    ds = read_observables(tmp_path)
    assert ds["state"].dims == ("snapshot_time", "pair", "population")
    assert np.allclose(ds["vbar"].values, r.vbar)


def test_snapshots_are_subsampled_deterministically():
    r = _run("tanh", "n=250000", "t_end=0.002", "kinetic.dt=0.001", "record.snapshots=[0.002]")
    idx = r.extra["pair_index"][1]
    assert len(idx) <= 100_000 and idx[0] == 0 and np.all(np.diff(idx) == idx[1])


def test_same_seed_identical_different_seed_different():
    a = _run("tanh", "n=20000", "t_end=0.2")
    b = _run("tanh", "n=20000", "t_end=0.2")
    c = _run("tanh", "n=20000", "t_end=0.2", "seed=2")
    assert np.array_equal(a.vbar, b.vbar) and np.array_equal(a.cov, b.cov)
    assert not np.allclose(a.vbar[1:], c.vbar[1:])


@pytest.mark.parametrize("name, overrides", [
    ("ring-bump", ["space.sites=64"]),  # cosine features
    ("tanh", []),  # mean-field: bin features
])
def test_independent_of_thread_count(name, overrides):
    # n spans many blocks (generators and summation blocks, ~8192 pairs); 1 and 2 numba
    # threads draw the same normals and add the same sums in the same order
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has a single thread here")
    args = [*overrides, "n=131072", "t_end=0.02"]
    a = _run(name, *args, threads=2)
    b = _run(name, *args, threads=1)
    assert (a.info["threads"], b.info["threads"]) == (2, 1)
    assert np.array_equal(a.vbar, b.vbar) and np.array_equal(a.cov, b.cov)
    assert np.array_equal(a.extra["kurtosis"][1], b.extra["kurtosis"][1])


def test_generator_is_numpy_sfc64_and_ziggurat():
    # the compiled SFC64 is numpy's bit for bit (same seeding); the compiled ziggurat is
    # numpy's standard_normal algorithm with tables computed here: equal up to the table
    # round-off (~1e-14), so every accept/reject decision (wedge ~1%, tail 2.6e-4 of
    # draws: ~50 tail draws in 2e5) agrees
    child = np.random.SeedSequence([3, 0]).spawn(1)[0]
    s = NormalStream(100_000, 3, 100_000)
    assert np.array_equal(noise._raw(s.state.copy(), 1000), np.random.SFC64(child).random_raw(1000))
    x = s.draw().ravel()
    y = np.random.Generator(np.random.SFC64(child)).standard_normal(x.size)
    assert np.abs(x - y).max() < 1e-13


def test_normals_statistics():
    # 2 draws (steps) of n = 2^17 pairs in blocks of 8192: N = 2^19 numbers. Each check is
    # within 5 standard errors (a false alarm has probability ~6e-7 per check): mean
    # (se 1/sqrt N), variance (sqrt(2/N)), plain kurtosis 3 (sqrt(24/N)), the fraction beyond
    # the ziggurat's tail edge r, 2 Phi(-r) = 2.58e-4 (binomial se), and correlations
    # (se 1/sqrt of the sample) between e and i of a pair, neighbouring pairs, the two
    # steps and the first pairs of different blocks (different generators)
    n = 1 << 17
    s = NormalStream(n, 5, 8192)
    x1, x2 = s.draw(), s.draw()
    z = np.concatenate([x1.ravel(), x2.ravel()])
    N = z.size
    assert abs(z.mean()) < 5 / np.sqrt(N)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / N)
    assert abs(np.mean(z**4) - 3) < 5 * np.sqrt(24 / N)
    p_tail = math.erfc(noise.ZIGGURAT_R / math.sqrt(2))
    assert abs(np.mean(np.abs(z) > noise.ZIGGURAT_R) - p_tail) < 5 * np.sqrt(p_tail / N)
    firsts = x1[:, 0].reshape(-1, 8192)  # (blocks, pairs in block)
    for a, b in ((x1[:, 0], x1[:, 1]), (x1[:-1, 0], x1[1:, 0]), (x1.ravel(), x2.ravel()),
                 (firsts[:-1].ravel(), firsts[1:].ravel())):
        assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(a.size)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the blow-up
def test_explicit_blows_up_where_implicit_does_not():
    # linear, n = 1e5, dt = 1e-2: dt sqrt(n) = 3.2 and DPhi = [[0, -1], [1, -0.5]] has
    # |eig| = 1, so explicit Euler multiplies the balance error by |1 + 3.2 eig| ~ 3 per
    # step and overflows (> 1e100) within ~210 steps; the linearly implicit step damps it.
    args = ("linear", "n=100000", "dt=0.01", "t_end=3.0", "record.every=0.5")
    with pytest.raises(NumericalError, match=r"step \d+ \(t = "):
        _run(*args, implicit=False)
    r = _run(*args)
    # limit (0.5, 1.0) plus the 2c offset (~0.0024); time-discretisation bias of the OU
    # variance is O(dt) = 1%: 0.5 +- 0.05 is loose, 0.02 on the means is ~6 sampling errors
    # sqrt(0.5/1e5) = 0.0022 plus the offset
    assert np.allclose(r.vbar[-1, 0], [0.5, 1.0], atol=0.02)
    assert np.allclose(np.diagonal(r.cov[-1, 0]), 0.5, atol=0.05)


@pytest.mark.parametrize("name, overrides", [
    ("tanh", ["n=3000"]),
    ("bistable", ["n=3000"]),
    ("ring-bump", ["n=4096", "space.sites=16"]),
    ("ring-oscillation", ["n=100"]),
])
def test_numpy_path_matches_numba(name, overrides):
    # the same normals drive both paths: differences are round-off only
    sc = load_scenario(name, overrides + ["t_end=0.3"])
    a = run_particles(sc, progress=False)
    b = run_particles(sc, progress=False, backend="numpy")
    assert a.info["backend"] == "numba" and b.info["backend"] == "numpy"
    assert np.allclose(a.vbar, b.vbar, rtol=0, atol=1e-10)
    assert np.allclose(a.cov, b.cov, rtol=0, atol=1e-10)


def test_user_callable_drift_uses_numpy_path():
    # F = -v (tau = 1) written by the user equals the built-in linear family: the numpy
    # path evaluates the callable and gives the built-in result; same seed -> same
    # normals, so the agreement is far better than the sampling error sqrt(K/n)
    sc = load_scenario("tanh", ["n=5000", "t_end=0.5"])
    model = build_model(sc, F=lambda ve, vi, xp=np: (-ve, -vi))
    a = run_particles(sc, model=model, progress=False)
    b = run_particles(sc, progress=False)
    assert a.info["backend"] == "numpy"
    assert np.allclose(a.vbar, b.vbar, atol=1e-10) and np.allclose(a.cov, b.cov, atol=1e-10)
    with pytest.raises(ScenarioError, match="dynamics.family.*F is a user callable"):
        run_particles(sc, model=model, progress=False, backend="numba")
    user_G = build_model(sc, G={"ee": (np.tanh, lambda z: 1 - np.tanh(z) ** 2)})
    with pytest.raises(ScenarioError, match="gains.family.*G is a user callable"):
        run_particles(sc, model=user_G, progress=False, backend="numba")
    # a different user drift (tau = 0.5) changes the answer: the callable is really used
    c = run_particles(sc, model=build_model(sc, F=lambda ve, vi, xp=np: (-2 * ve, -2 * vi)),
                      progress=False)
    assert abs(c.cov[-1, 0, 0, 0] - a.cov[-1, 0, 0, 0]) > 0.05


def test_issue_12_user_drift_is_not_ignored():
    # issue 12: the drift of a tau = 0.25 model given as a user callable on `tanh` was
    # replaced by the scenario's own (tau = 1) on the numba path: K_ee(1) 0.571 vs 0.125.
    # Every backend must now simulate the user's drift: K_ee(1) of the Gaussian limit with
    # tau = 0.25, 0.125 + 0.875 exp(-8) = 0.12529, within 5 sampling errors K sqrt(2/n)
    # plus the O(dt / tau) Euler-Maruyama bias of the variance (0.2%)
    sc = load_scenario("tanh", ["t_end=1.0", "n=20000"])
    fast = load_scenario("tanh", ["t_end=1.0", "populations.e.tau=0.25",
                                  "populations.i.tau=0.25"])
    model = build_model(sc, F=build_model(fast).F)
    assert not model.builtin("F") and model.builtin("S", "G", "J")
    exact = run_gaussian(fast).cov[-1, 0]
    runs = {b: run_particles(sc, model=model, backend=b, progress=False)
            for b in ("auto", "numpy")}
    for r in runs.values():
        assert r.info["backend"] == "numpy"
        se = np.diagonal(exact) * np.sqrt(2 / sc.n)
        assert np.all(np.abs(np.diagonal(r.cov[-1, 0]) - np.diagonal(exact))
                      < 5 * se + 0.002 * np.diagonal(exact))
    assert np.allclose(runs["auto"].cov, runs["numpy"].cov, rtol=0, atol=1e-12)


def test_dense_kernel_path_matches_cosine_features():
    # grid positions: the dense sites x sites kernel (the cosine kernel given as a user J)
    # and the exact cosine features give the same network; same normals -> round-off
    sc = load_scenario("ring-bump", ["n=4096", "space.sites=16", "t_end=0.3"])
    a = run_particles(sc, progress=False)
    c = {ab: getattr(sc.kernel, ab) for ab in ("ee", "ei", "ie", "ii")}
    model = build_model(sc, J=lambda a, b, x, y: c["ei"[a] + "ei"[b]][0]
                        + c["ei"[a] + "ei"[b]][1] * np.cos(x[..., 0] - y[..., 0]))
    assert model.kernel_modes is None and np.allclose(model.kernel, build_model(sc).kernel)
    b = run_particles(sc, model=model, progress=False)
    assert (a.info["kernel_features"], b.info["kernel_features"]) == ("cosine", "bins")
    assert np.allclose(a.vbar, b.vbar, atol=1e-10)


def test_grid_and_regular_positions_agree():
    # same ring-bump network, pairs on 16 sites vs evenly spaced: the site-bin means agree
    # within sampling error. Per-bin se ~ sqrt(0.3 / 1024) = 0.017, difference of two runs
    # x sqrt(2); 5 se + the O(bin width) shift of binned regular positions (bump slope
    # ~0.1 x half bin 0.2 = 0.02)
    common = ["n=16384", "space.sites=16", "t_end=1.0"]
    g = _run("ring-bump", *common)
    r = _run("ring-bump", *common, "space.positions=regular")
    assert r.info["kernel_exact"]
    assert np.abs(g.vbar[-1] - r.vbar[-1]).max() < 5 * 0.017 * np.sqrt(2) + 0.02
    # the mode-1 profile (the bump) agrees much better than one bin (se / sqrt(16))
    f_g = g.extra["fourier1_re"][1][-1]
    f_r = r.extra["fourier1_re"][1][-1]
    assert np.abs(f_g - f_r).max() < 0.03


@pytest.mark.parametrize("n", [100, 400])
def test_ring_oscillation_frequency(n):
    # MODEL §5: mode 1 of DPhi has eigenvalues +-i, so the mode-1 amplitude oscillates at
    # angular frequency sqrt(n). The peak of the power spectrum (resolution 2 pi / T =
    # 0.31 rad/s at T = 20) must be within 10% of sqrt(n).
    r = _run("ring-oscillation", f"n={n}", "t_end=20.0")
    z = r.extra["fourier1_re"][1][:, 0] + 1j * r.extra["fourier1_im"][1][:, 0]
    z = z - z.mean()
    spec = np.abs(np.fft.fft(z * np.hanning(len(z)))) ** 2
    omega = 2 * np.pi * np.fft.fftfreq(len(z), d=r.t[1] - r.t[0])
    peak = abs(omega[np.argmax(spec * (omega != 0))])
    assert abs(peak - np.sqrt(n)) < 0.1 * np.sqrt(n), peak


def test_unsupported_combinations_name_the_field():
    sc = load_scenario("linear", ["space.kind=torus", "space.sites=4", "space.positions=regular",
                                  "kernel.family=gaussian", "n=64"])
    with pytest.raises(ScenarioError, match="space.positions"):
        run_particles(sc, progress=False)


def test_reference_file_layout():
    data = json.loads(REFERENCE.read_text())
    assert REFERENCE.stat().st_size < 300 * 1024
    assert data["format"] == "fpsolver-particle-reference/1"
    assert set(data["scenarios"]) == {"bistable", "ring-bump"}
    for case in data["scenarios"].values():
        T, S = len(case["times"]), len(case["sites"])
        ns = [run["n"] for run in case["runs"]]
        assert len(ns) == 3 and ns == sorted(ns)
        assert len(case["x"]) == S
        for run in case["runs"]:
            for key in ("mean", "var", "skewness", "kurtosis", "se_mean", "se_var"):
                assert np.shape(run[key]) == (T, S, 2), key
            for key in ("cov_ei", "se_skewness", "se_kurtosis"):
                assert np.shape(run[key]) == (T, S), key
            assert np.all(np.array(run["se_mean"]) > 0) and np.all(np.array(run["var"]) > 0)
            assert run["dt"] > 0 and isinstance(run["seed"], int)
