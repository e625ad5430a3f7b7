"""Sites made identical by the lattice translations are solved once (kinetic/symmetry.py)."""

import numpy as np
import pytest
from mpi4py import MPI

from fpsolver import load_scenario
from fpsolver.balance import BalanceConstraint
from fpsolver.kinetic import run_kinetic
from fpsolver.kinetic.symmetry import reduced_model, site_orbits
from fpsolver.model import build_model


def _sheet(m: int, *sets):
    return load_scenario("sheet", [f"space.sites={m}", f"n={100 * m * m}", *sets])


def test_a_stripe_input_makes_every_column_of_the_torus_one_orbit():
    model = build_model(_sheet(8))
    orbits = site_orbits(model)
    assert orbits.axes == (1,) and len(orbits.representatives) == 8
    grid = orbits.index.reshape(8, 8)  # sites in C order: (x_1, x_2)
    assert (grid == np.arange(8)[:, None]).all()  # one orbit per x_1, along x_2


def test_without_input_modulation_every_site_is_one_orbit():
    model = build_model(_sheet(6, "populations.e.input_cos=0", "populations.i.input_cos=0"))
    orbits = site_orbits(model)
    assert orbits.axes == (0, 1) and len(orbits.representatives) == 1


def test_no_orbits_on_a_ring_with_modulated_input_or_a_broken_kernel():
    ring = build_model(load_scenario("ring-bump"))
    assert site_orbits(ring) is None  # cos(x) input: no translation leaves it unchanged
    model = build_model(_sheet(6))
    model.kernel[0, 0, 2, 9] *= 1.001  # no longer translation invariant
    assert site_orbits(model) is None


def test_reduced_balance_sum_equals_the_full_one_on_orbit_constant_gains():
    """W_red g_red = (W g) at the representatives when g is constant on orbits.

    To 1e-13: round-off of sums of 64 terms of size <= 1.
    """
    model = build_model(_sheet(8))
    orbits = site_orbits(model)
    small = reduced_model(model, orbits)
    g_red = np.random.default_rng(0).uniform(0.1, 1.0, (2, 2, small.n_sites))
    full = BalanceConstraint(model).residual(g_red[:, :, orbits.index])
    red = BalanceConstraint(small).residual(g_red)
    assert np.abs(red - full[orbits.representatives]).max() < 1e-13
    assert np.isclose(small.sites.weights.sum(), 1.0)


def test_orbit_run_equals_the_run_of_every_site():
    """6 x 6 sheet to t = 0.1, with and without orbits.

    The two runs share mesh, refinement budget and steps but group sites differently for
    the IMEX split: they differ by discretisation error, so by at most the sum of the two
    runs' own error estimates.
    """
    sc = _sheet(6, "t_end=0.1", "record.every=0.05", "record.snapshots=[0.1]")
    orb = run_kinetic(sc, comm=MPI.COMM_SELF, progress=False)
    every = run_kinetic(sc, comm=MPI.COMM_SELF, progress=False, symmetry=False)
    assert orb.info["distinct_sites"] == 6 and "distinct_sites" not in every.info
    assert orb.vbar.shape == every.vbar.shape == (3, 36, 2)
    est = [r.info["error_estimate"] for r in (orb, every)]
    dv = np.abs(orb.vbar - every.vbar).max() / max(1.0, np.abs(every.vbar).max())
    dk = (np.abs(orb.cov - every.cov).max(axis=(2, 3)) / np.abs(every.cov).max(axis=(2, 3))).max()
    assert dv <= est[0]["vbar"] + est[1]["vbar"], (dv, est)
    assert dk <= est[0]["K"] + est[1]["K"], (dk, est)
    for name in ("kurtosis", "min_density", "marginal_e"):
        assert orb.extra[name][1].shape == every.extra[name][1].shape, name
    sites = orb.extra["density_site"][1]
    assert set(sites.tolist()) <= set(range(36))
    assert np.allclose(orb.extra["marginal_e"][1][:, sites], every.extra["marginal_e"][1][:, sites],
                       atol=1e-4 * np.abs(every.extra["marginal_e"][1]).max())


@pytest.mark.mpi
def test_orbit_run_is_rank_independent():
    sc = _sheet(6, "t_end=0.05", "record.every=0.025", "record.snapshots=[]", "kinetic.dt=0.005")
    res = run_kinetic(sc, comm=MPI.COMM_WORLD, progress=False)
    ser = run_kinetic(sc, comm=MPI.COMM_SELF, progress=False)
    assert np.abs(res.vbar - ser.vbar).max() <= 1e-12
    assert np.abs(res.cov - ser.cov).max() <= 1e-12
