"""Kinetic solver with default numerics on non-Gaussian scenarios, against particles (slow).

The particle simulator is an independent method (Monte Carlo of the finite network); its
answers are stored in ``tests/data`` (``particle_reference.json``:
benchmarks/make_particle_reference.py; ``kinetic_particle_reference.json``:
tests/programs/make_kinetic_references.py). Agreement is asked within 5 standard errors
of the particle estimate (i.i.d. sampling) plus the finite-n offset of MODEL §2c, which
is O(n^-1/2): |vbar_n - vbar| <= C / sqrt(n) with C = |U (U^T DPhi U)^-1 U^T lambda| < 3
on these scenarios (the variances move by the same order). The FE error itself is
estimated by every run and must be below kinetic.tol = 1e-4.

Every run must also keep its densities positive: min density >= -1e-6 x peak.
"""

import functools
import json
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from fpsolver.kinetic import run_kinetic
from fpsolver.scenario import load_scenario, scenario_names

DATA = Path(__file__).parent / "data"
REFERENCE = DATA / "particle_reference.json"
KINETIC_REFERENCE = DATA / "kinetic_particle_reference.json"
OFFSET = 3.0   # C of the finite-n offset bound C / sqrt(n)
pytestmark = pytest.mark.slow


@functools.cache
def _run(scenario: str, overrides: tuple, times: tuple, snapshot: float | None = None):
    """Kinetic run recording at ``times`` (and a snapshot): the result, on every rank."""
    every = 0.5 if len(times) > 1 else max(times)  # the reference times are on this grid
    sets = list(overrides) + [f"t_end={max(times)}", f"record.every={every}"]
    sets.append(f"record.snapshots=[{snapshot}]" if snapshot is not None
                else "record.snapshots=[]")
    res = run_kinetic(load_scenario(scenario, sets), comm=MPI.COMM_WORLD, progress=False)
    assert res.info["min_density_relative"] >= -1e-6, res.info["min_density_relative"]
    est = res.info["error_estimate"]
    if res.info["stabilised"]:  # a transient carried by artificial diffusion: its (first
        # order) error is estimated and decays; within tol at the end
        assert max(est["K_final"], est["vbar_final"]) <= est["tol"], est
    else:
        assert est["within_tol"], est
    return res


def _at(res, times):
    return [int(np.argmin(np.abs(res.t - t))) for t in times]


def _check_moments(res, ref, times, sites, n):
    ti = _at(res, times)
    mean = res.vbar[ti][:, sites]
    var = np.stack([res.cov[ti][:, sites, 0, 0], res.cov[ti][:, sites, 1, 1]], -1)
    bias = OFFSET / np.sqrt(n)
    dm = np.abs(mean - np.array(ref["mean"])) - 5 * np.array(ref["se_mean"]) - bias
    dv = np.abs(var - np.array(ref["var"])) - 5 * np.array(ref["se_var"]) - bias
    assert dm.max() < 0, f"vbar off by {dm.max():.3g} beyond the sampling bound"
    assert dv.max() < 0, f"variance off by {dv.max():.3g} beyond the sampling bound"


def _shipped(name: str):
    """The shipped scenario's whole run (one run serves every test).

    Recorded at its particle reference's times (if any) and, for ``bistable``, with a
    snapshot at t = 4.
    """
    scenarios = json.loads(REFERENCE.read_text())["scenarios"]
    times = (tuple(scenarios[name]["times"]) if name in scenarios
             else (load_scenario(name).t_end,))
    return _run(name, (), times, snapshot=4.0 if name == "bistable" else None)


@pytest.mark.parametrize("name", ["bistable", "ring-bump"])
def test_shipped_against_particles(name):
    """Shipped non-Gaussian scenarios: moments within the particles' sampling bound."""
    data = json.loads(REFERENCE.read_text())["scenarios"][name]
    assert not data["overrides"]
    run = data["runs"][-1]
    _check_moments(_shipped(name), run, data["times"], data["sites"], run["n"])


@pytest.mark.mpi
def test_user_scenario_against_particles(name="ring-mod"):
    """A user-written scenario: per-site vbar and variance against particles.

    `ring-mod` (24-site cubic ring, tanh gains, cosine kernels and cosine-modulated inputs
    that make the sites differ strongly) with default numerics, on any number of ranks,
    against 10^4 particle pairs per site. (`torus-cubic`: tests/test_kinetic_steep.py,
    the last of the slow suite.)
    """
    ref = json.loads(KINETIC_REFERENCE.read_text())["cases"][name]
    res = _run(str(DATA / f"{name}.toml"), (), tuple(ref["times"]))
    _check_moments(res, ref, ref["times"], slice(None), ref["n"])


def _ks(res, ref) -> tuple[float, float]:
    """Kolmogorov-Smirnov distance of the FE marginals to the particle histograms.

    At the last snapshot, with its 99.9% bound for the sample size plus the finite-n term.
    """
    worst = 0.0
    for b, pop in enumerate("ei"):
        y = res.extra[f"grid_{pop}"][1]
        m = res.extra[f"marginal_{pop}"][1][-1, 0]
        cdf_fe = np.concatenate([[0.0], np.cumsum(0.5 * (m[1:] + m[:-1]) * np.diff(y))])
        edges = np.array(ref[f"edges_{pop}"])
        cdf_p = np.concatenate([[0.0], np.cumsum(ref[f"counts_{pop}"])]) / ref["pairs"]
        worst = max(worst, np.abs(np.interp(edges, y, cdf_fe) - cdf_p).max())
    # 1.95 / sqrt(N): 99.9% quantile of the KS statistic; the finite-n change of the
    # variance, O(n^-1/2) relative, moves the CDF by at most that times a density <= 0.5
    return worst, 1.95 / np.sqrt(ref["pairs"]) + 0.5 * OFFSET / np.sqrt(ref["n"])


@pytest.mark.parametrize("name", ["bistable-narrow", "bistable-wide"])
def test_bistable_well_widths_marginals(name):
    """Bistable with its wells 3x narrower / wider: marginals against n = 10^6 particles.

    KS distance within the sampling bound, moments as above. Narrower wells: drifts
    u^3 / w^2 up to ~100 across the initial density (cell Peclet 33 on 192^2 cells), so
    the mesh refines to what the dof budget and the memory allow (192^2 with >= 9 GB free;
    docs/numerics.md); wider wells refine along y_i to 96 x 384.
    """
    ref = json.loads(KINETIC_REFERENCE.read_text())["cases"][name]
    sets = tuple(s for s in ref["overrides"] if s.startswith("dynamics."))
    res = _run("bistable", sets, tuple(ref["times"]), snapshot=max(ref["times"]))
    ks, bound = _ks(res, ref)
    assert ks < bound, (ks, bound)
    _check_moments(res, ref, ref["times"], slice(None), ref["n"])


def test_bistable_marginals_are_not_gaussian():
    """The shipped bistable at t = 4 against its n = 10^6 particle histograms.

    The FE marginals are within the KS bound, the Gaussian of the same variance far
    outside it.
    """
    from scipy.stats import norm

    ref = json.loads(REFERENCE.read_text())["marginals"]
    res = _shipped("bistable")
    edges = np.array(ref["edges"])
    hist = {"pairs": ref["pairs"], "n": ref["n"],
            **{f"edges_{p}": edges for p in "ei"},
            **{f"counts_{p}": ref[f"counts_{p}"] for p in "ei"}}
    ks, bound = _ks(res, hist)
    assert ks < bound, (ks, bound)
    for b, pop in enumerate("ei"):
        cdf_p = np.cumsum(ref[f"counts_{pop}"]) / ref["pairs"]
        sd = np.sqrt(res.cov[-1][0, b, b])
        assert np.abs(norm.cdf(edges[1:], scale=sd) - cdf_p).max() > 5 * bound


# `sheet`: tests/test_sheet.py makes the same checks on the run it compares with particles
@pytest.mark.parametrize("name", sorted(set(scenario_names()) - {"sheet"}))
def test_every_shipped_scenario_stays_positive(name):
    """Default numerics, the whole shipped run: densities stay positive.

    Positive to 1e-6 of the peak (checked in _run), mass 1 to 1e-10, and the run's
    estimate within kinetic.tol.
    """
    res = _shipped(name)
    assert np.abs(res.extra["mass"][1] - 1).max() < 1e-10
