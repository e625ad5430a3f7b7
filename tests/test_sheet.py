"""The shipped `sheet`: its setup, and per site against particles (slow).

`sheet` is a 32 x 32 torus with an exponential kernel and cubic F. Its input varies along
x_1 only, so the kinetic run solves one site per column (32 of 1024,
fpsolver/kinetic/symmetry.py): ~1.5 min to t = 5 on one core. The run of all 1024 sites
(``symmetry=False``: 41 min on one loaded core, 2026-12-07) passed the same particle
checks and differs from it by 6.7e-8 in vbar and 4.4e-7 (relative) in K over t <= 5.
The comparison also does what
tests/test_kinetic_accuracy.py::test_every_shipped_scenario_stays_positive does for the
other shipped scenarios (densities positive to 1e-6 of the peak, mass 1 to 1e-10,
estimate within kinetic.tol).
Reference: ``tests/data/sheet_particle_reference.json`` (tests/programs/
make_sheet_reference.py: 1100 pairs per site, n = 1126400).
"""

import json
from pathlib import Path

import numpy as np
import pytest

from fpsolver import load_scenario
from fpsolver.model import build_model

REFERENCE = Path(__file__).parent / "data" / "sheet_particle_reference.json"


def test_sheet_is_a_32_by_32_torus_with_cubic_dynamics_and_a_stripe_input():
    sc = load_scenario("sheet")
    assert (sc.space.kind, sc.space.sites, sc.kernel.family) == ("torus", 32, "exponential")
    assert sc.dynamics.family == "cubic" and min(sc.dynamics.cubic) > 0
    model = build_model(sc)
    assert model.n_sites == 1024
    x = model.sites.points
    A = model.inputs[:, 0].reshape(32, 32)
    assert np.ptp(A, axis=1).max() < 1e-12 < np.ptp(A[:, 0])  # varies along x_1 only
    assert np.allclose(x[33], 2 * np.pi / 32)  # site k at 2 pi (k // 32, k % 32) / 32


def test_sheet_kernel_spectrum_is_positive():
    """The kernel is circulant on the torus: its eigenvalues are the FFT of one row.

    All positive (smallest/largest ~4e-3): every spatial mode of the fast Jacobian is
    damped, the balance constraint has full rank and is well conditioned.
    """
    model = build_model(load_scenario("sheet"))
    w = model.sites.weights
    for a in range(2):
        for b in range(2):
            row = (model.kernel[a, b, 0] * w).reshape(32, 32)
            eig = np.fft.fft2(row)
            assert np.abs(eig.imag).max() < 1e-12
            assert 3e-3 < eig.real.min() / eig.real.max() < 6e-3


@pytest.mark.slow
def test_sheet_balanced_state_is_attracting():
    from fpsolver.stability import analyse_stability

    report = analyse_stability(load_scenario("sheet"))
    assert report.verdict == "attracting"
    assert -1e-3 < report.eigenvalues[0].real < -1e-4  # the slowest, a short-wave mode


def test_sheet_reference_is_complete_and_small():
    ref = json.loads(REFERENCE.read_text())
    assert REFERENCE.stat().st_size < 300_000
    assert ref["pairs_per_site"] >= 1000 and ref["n"] >= 1_100_000
    assert ref["times"][-1] == load_scenario("sheet").t_end
    for key in ("mean", "var", "se_mean", "se_var"):
        assert np.shape(ref[key]) == (len(ref["times"]), 1024, 2), key


@pytest.mark.slow
def test_sheet_against_particles_per_site():
    """Default numerics to t = 5; vbar and variance at every site within the bound.

    5 standard errors of the particle estimate plus the O(n^-1/2) offset, at t = 0.5 and
    5 (tests/test_kinetic_accuracy.py explains the bound). ``_run`` also asks densities
    positive to 1e-6 of the peak and the run's estimate within kinetic.tol.
    """
    from test_kinetic_accuracy import _check_moments, _run

    ref = json.loads(REFERENCE.read_text())
    res = _run("sheet", (), tuple(ref["times"]))
    assert np.abs(res.extra["mass"][1] - 1).max() < 1e-10
    _check_moments(res, ref, ref["times"], slice(None), ref["n"])


@pytest.mark.mpi
def test_sheet_rank_independent():
    """The sheet's sites split over the ranks give the one-rank result to 1e-12.

    Each site's partial sums are nonzero on one rank only (the reductions add zeros), and
    Newton, frames and clusters run on identical numbers on every rank: the split changes
    nothing but the order of independent per-site work.
    """
    from mpi4py import MPI

    from fpsolver.kinetic import run_kinetic

    sc = load_scenario("sheet", ["space.sites=6", "n=36000", "t_end=0.05", "record.every=0.025",
                                 "record.snapshots=[]", "kinetic.dt=0.005"])
    comm = MPI.COMM_WORLD
    res = run_kinetic(sc, comm=comm, progress=False)
    ser = run_kinetic(sc, comm=MPI.COMM_SELF, progress=False)
    assert res.info["ranks"] == comm.size
    assert np.abs(res.vbar - ser.vbar).max() <= 1e-12
    assert np.abs(res.cov - ser.cov).max() <= 1e-12
