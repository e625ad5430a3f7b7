"""The literate demos (demos/demo_*.py): run in quick mode, assert on the data they plot.

Each demo exposes ``main(quick) -> dict`` with the plotted data. The full runs need the
particle simulator and the kinetic solver and take minutes: they are ``slow``. The fast
tests check the demos' own helpers against exact answers.
"""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMOS = ROOT / "demos"
sys.path.insert(0, str(DEMOS))


def _demo(name):
    return importlib.import_module(name)


@pytest.mark.parametrize("name", ["demo_paper_figures", "demo_density_evolution",
                                  "demo_spatial", "demo_bifurcation", "demo_sheet"])
def test_demo_is_a_literate_script_with_a_quick_mode(name):
    text = (DEMOS / f"{name}.py").read_text()
    assert "format_name: light" in text and "def main(quick: bool" in text
    assert 'os.environ.get("CI")' in text and "--full" in text
    assert f'Path("out_{name.removeprefix("demo_")}")' in text


def test_density_moments_of_a_gridded_gaussian_are_exact():
    d = _demo("demo_density_evolution")
    ye, yi = np.linspace(-6, 6, 241), np.linspace(-5, 5, 201)
    K = np.array([[0.8, 0.3], [0.3, 0.5]])
    E, I = np.meshgrid(ye, yi, indexing="ij")
    Y = np.stack([E - 0.2, I + 0.1], axis=-1)
    p = np.exp(-0.5 * np.einsum("...a,ab,...b->...", Y, np.linalg.inv(K), Y))
    p /= 2 * np.pi * np.sqrt(np.linalg.det(K))
    mass, mean, cov = d.moments(ye, yi, p)
    assert abs(mass - 1) < 1e-6
    np.testing.assert_allclose(mean, [0.2, -0.1], atol=1e-6)
    np.testing.assert_allclose(cov, K, atol=1e-5)


def _check_paper_figures(data, tmp_path):
    assert all((tmp_path / p).stat().st_size > 10_000 for p in data["figures"])
    # Fig 5: the mode-1 spectral peak at the predicted sqrt(n) (docs/model.md §4)
    for n, d in data["ring"].items():
        assert abs(d["predicted"] - np.sqrt(n)) < 1e-6
        assert abs(d["peak"] - d["predicted"]) < 0.1 * d["predicted"], (n, d["peak"])
    for name in ("linear", "tanh"):
        d = data[name]
        g, p, k = d["gaussian"], d["particles"], d["kinetic"]
        late = p["t"] >= 0.5 * p["t"][-1]
        gl = np.interp(p["t"][late], g["t"], g["vbar"][:, 0]), \
            np.interp(p["t"][late], g["t"], g["vbar"][:, 1])
        offset = d["offset"] if d["offset"] is not None else np.zeros(2)
        for a in range(2):
            # particles: limit + finite-n offset, within a few sampling errors
            err = np.mean(p["vbar"][late, a] - gl[a] - offset[a])
            assert abs(err) < 4 * np.sqrt(1.0 / d["n"]), (name, a, err)
            Kg = np.interp(p["t"][late], g["t"], g["K"][:, a])
            assert abs(np.mean(p["K"][late, a] / Kg) - 1) < 0.05, (name, a)
            # finite elements on the Gaussian limit (exact here)
            np.testing.assert_allclose(k["vbar"][:, a], np.interp(k["t"], g["t"], g["vbar"][:, a]),
                                       atol=2e-3)
            np.testing.assert_allclose(k["K"][:, a], np.interp(k["t"], g["t"], g["K"][:, a]),
                                       rtol=0.02)


def _check_density_evolution(data, tmp_path):
    gif = tmp_path / "out_density_evolution" / "density.gif"
    from PIL import Image
    with Image.open(gif) as im:
        assert im.n_frames == len(data["times"]) > 10
    np.testing.assert_allclose(data["mass"], 1, atol=5e-3)  # densities integrate to 1
    # the gridded density's variances are the ones the solver reports (the ellipse's K)
    for a in range(2):
        np.testing.assert_allclose(data["fe_cov"][:, a, a], data["solver_cov"][:, a, a],
                                   rtol=0.03)
    # the finite network's fluctuations have the same covariance, within sampling error
    np.testing.assert_allclose(data["particle_cov"][-1], data["solver_cov"][-1], atol=0.08)
    # not Gaussian: the e-marginal at the end has negative excess kurtosis (two lobes)
    y, pe = data["y_e"], data["marginal_e_final"]
    m2 = np.trapezoid(y**2 * pe, y)
    assert np.trapezoid(y**4 * pe, y) / m2**2 - 3 < -0.3


def _check_spatial(data, tmp_path):
    assert data["mass"].shape[1] == len(data["x"]) > 1
    np.testing.assert_allclose(data["mass"], 1, atol=5e-3)
    k, p = data["kinetic"], data["particles"]
    # a bump: vbar_e follows the cos-modulated input, in both solvers
    for d in (k, p):
        assert np.corrcoef(d["vbar"][-1, :, 0], data["input_e"])[0, 1] > 0.8
    np.testing.assert_allclose(p["vbar"][-1], k["vbar"][-1],
                               atol=0.05 + 0.2 * np.ptp(k["vbar"][-1]))


def _check_bifurcation(data, tmp_path):
    assert all((tmp_path / p).stat().st_size > 10_000 for p in data["figures"])
    b, st = data["branch"], data["states"]
    # two folds, opposite (the model is odd in (A_e, vbar) with A_i = 0)
    assert len(b["folds"]) == 2 and abs(b["folds"][0] + b["folds"][1]) < 1e-6
    lo, hi = b["folds"]
    p, v = b["p"], b["vbar"][:, 0]
    # the branch goes from lower to upper: stable outside the folds' vbar, unstable inside
    v_fold = sorted(vk for kind, _, vk in b["special"] if kind == "fold")
    inner = (v > v_fold[0] + 0.2) & (v < v_fold[1] - 0.2)
    outer = (v < v_fold[0] - 0.2) | (v > v_fold[1] + 0.2)
    assert not b["stable"][inner].any() and b["stable"][outer].all()
    # every steady state drawn lies on the branch: a segment at its A_e through its vbar
    for pk, vb in zip(st["p"], st["vbar"]):
        assert lo < pk < hi or abs(pk) > hi
        hits = [v[k] + (pk - p[k]) * (v[k + 1] - v[k]) / (p[k + 1] - p[k])
                for k in range(len(p) - 1) if (p[k] - pk) * (p[k + 1] - pk) <= 0
                and p[k + 1] != p[k]]
        assert min(abs(h - vb[0]) for h in hits) < 0.05, (pk, vb, hits)
        assert abs(vb[0] - vb[1]) < 1e-8          # v_i = v_e (A_i = 0, linear G_ie = G_ii)
    # three states at A_e = 0.3, the densities integrate to 1
    at = [vb[0] for pk, vb in zip(st["p"], st["vbar"]) if pk == 0.3]
    assert len(at) == 3 and at[0] < at[1] < at[2]
    for y, pe in zip(st["y_e"], st["p_e"]):
        assert abs(np.trapezoid(pe, y) - 1) < 1e-3
    # the two stable states: slow spectrum in the left half-plane, resolved
    for s in st["spectra"].values():
        assert s["eigenvalues"].real.max() < 0 and s["residuals"].max() < 1e-6


def _check_sheet(data, tmp_path):
    gif = tmp_path / "out_sheet" / "sheet.gif"
    if gif.exists():  # pillow: an animation, one frame per snapshot
        from PIL import Image
        with Image.open(gif) as im:
            assert im.n_frames == len(data["times"]) > 5
    assert all((tmp_path / p).stat().st_size > 10_000 for p in data["figures"])
    np.testing.assert_allclose(data["mass"], 1, atol=5e-3)  # densities integrate to 1
    assert data["estimate"]["within_tol"], data["estimate"]
    side, v = data["side"], data["vbar"][-1, :, 0]
    # a stripe: vbar_e follows the input along x_1 and is constant along x_2
    assert np.corrcoef(v, data["input_e"])[0, 1] > 0.9
    img = v.reshape(side, side)
    assert np.ptp(img, axis=1).max() < 1e-5 * np.ptp(img[:, 0])
    # the marked sites start from one Gaussian and relax to different densities
    y, p = data["grid"], data["marginal_e"]  # (snapshot, marked site, grid)
    var = np.trapezoid(y**2 * p, y, axis=-1) / np.trapezoid(p, y, axis=-1)
    np.testing.assert_allclose(var[0], 0.5, rtol=1e-3)
    assert (var[-1] < 0.6 * var[0]).all() and np.ptp(var[-1]) > 0.01 * var[-1].mean()


CHECKS = {"demo_paper_figures": _check_paper_figures,
          "demo_density_evolution": _check_density_evolution,
          "demo_spatial": _check_spatial,
          "demo_bifurcation": _check_bifurcation,
          "demo_sheet": _check_sheet}


def _run_as_a_user(name: str, tmp_path: Path, ranks: int) -> dict:
    """The demo in its own process (``mpirun -n 2`` for two ranks), quick mode (CI=1).

    Rank 0 pickles main()'s data for the checks.
    """
    script = (f"import sys, pickle; sys.path.insert(0, {str(DEMOS)!r}); import {name} as d; "
              "r = d.main(quick=True); from mpi4py import MPI; "
              "MPI.COMM_WORLD.rank == 0 and pickle.dump(r, open('data.pkl', 'wb'))")
    words = [sys.executable, "-c", script]
    if ranks > 1:
        words = [str(Path(sys.executable).parent / "mpirun"), "-n", str(ranks)] + words
    env = {**os.environ, "CI": "1"}
    proc = subprocess.run(words, cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import pickle
    return pickle.loads((tmp_path / "data.pkl").read_bytes())


@pytest.mark.slow
@pytest.mark.parametrize("ranks", [1, 2])
@pytest.mark.parametrize("name", list(CHECKS))
def test_demo_quick_run(name, ranks, tmp_path):
    """The quick run (CI=1) plots data that passes the demo's checks.

    In its own process as a user runs it: on 1 rank and under mpirun -n 2.
    """
    data = _run_as_a_user(name, tmp_path, ranks)
    CHECKS[name](data, tmp_path)
    if name in ("demo_spatial", "demo_sheet"):
        assert data["ranks"] == ranks
