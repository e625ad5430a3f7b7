"""Kinetic solver (MODEL §2): exact OU solutions, the Gaussian limit, parallel layout.

Tolerances are bounds on discretisation errors measured and explained next to each one;
the default suite uses coarse meshes / short times, `test_kinetic_accuracy.py` the
defaults.
"""

import numpy as np
import pytest
from mpi4py import MPI

from fpsolver.gaussian import run_gaussian
from fpsolver.kinetic import KineticStepper, run_kinetic
from fpsolver.kinetic.ou import solve_ou
from fpsolver.model import build_model
from fpsolver.scenario import load_scenario


def _order(e_coarse, e_fine, ratio=2.0):
    return np.log(e_coarse / e_fine) / np.log(ratio)


@pytest.mark.mpi
@pytest.mark.parametrize("degree, cells, expected", [(1, 32, 2.0), (2, 16, 3.0)])
def test_ou_space_order(degree, cells, expected):
    """Density L1 error falls like h^(k+1): P1 ~2, P2 ~3 (dt small: time error << space)."""
    coarse = solve_ou(MPI.COMM_WORLD, degree, cells, dt=0.005, t_end=1.0)
    fine = solve_ou(MPI.COMM_WORLD, degree, 2 * cells, dt=0.005, t_end=1.0)
    # measured 1.97 (P1) and 2.95 (P2); the pre-asymptotic band is well inside +-0.3
    assert abs(_order(coarse["l1"], fine["l1"]) - expected) < 0.3
    # a conservative Galerkin flux keeps the discrete mean/covariance free of the O(h^2)
    # bias NOTES-peers found in other codes: P2 at h = 1/8 leaves < 1e-5 (time error
    # 2e-6 at dt = 0.005); P1 at h = 1/8 has an O(h^2) error, measured 3.5e-4 = h^2 / 45
    tol = 1e-5 if degree == 2 else 1e-3
    assert np.abs(fine["mean"] - fine["mean_exact"]).max() < tol
    assert np.abs(fine["cov"] - fine["cov_exact"]).max() < tol
    # zero flux: mass is conserved up to round-off of the direct solves
    assert abs(fine["mass"] - fine["mass0"]) < 1e-10


@pytest.mark.parametrize("scheme, expected", [("bdf2", 2.0), ("cn", 2.0), ("euler", 1.0)])
def test_ou_time_order(scheme, expected):
    """Mean error (time-dominated at P2 32^2) falls like dt^2 (BDF2, CN) or dt (BE)."""
    e = [solve_ou(MPI.COMM_SELF, 2, 32, dt=dt, scheme=scheme, t_end=1.0)
         for dt in (0.1, 0.05)]
    err = [np.abs(r["mean"] - r["mean_exact"]).max() for r in e]
    # mean errors at dt=0.05 are 1e-4..3e-3, far above the spatial floor (~2e-6);
    # measured orders 1.9-2.0 and 1.0
    assert abs(_order(err[0], err[1]) - expected) < 0.25


def _short(name, *sets):
    base = ["t_end=0.5", "record.every=0.1", "kinetic.cells=48", "kinetic.grading=0",
            "kinetic.dt=0.01"]
    return load_scenario(name, base + list(sets))


@pytest.mark.parametrize("name", ["linear", "tanh"])
def test_gaussian_limit_coarse(name):
    """linear/tanh: FE covariance and vbar follow the exact Gaussian limit (MODEL §3).

    half_width 8 keeps the truncated tail of K_i(0) = 2 below 1e-7 of the variance; at
    P2 48^2 (h = 1/3) the covariance error is dominated by h^3 interpolation ~1e-4.
    """
    sc = _short(name, "kinetic.half_width=8")
    kin = run_kinetic(sc, comm=MPI.COMM_WORLD, progress=False)
    ref = run_gaussian(sc)
    assert kin.t.shape == ref.t.shape
    assert np.abs(kin.cov - ref.cov).max() < 5e-4
    assert np.abs(kin.vbar - ref.vbar).max() < 1e-4
    ex = kin.extra
    assert np.abs(ex["mass"][1] - 1).max() < 1e-10
    assert ex["mean_drift"][1].max() < 1e-10
    assert np.abs(ex["kurtosis"][1] - 3).max() < 5e-3
    assert np.abs(ex["skewness"][1]).max() < 1e-6
    assert ex["newton_iterations"][1].max() < 10
    # lambda = d vbar/dt - <F>; Gaussian's comes from a different difference formula
    assert np.abs(ex["lambda_"][1][1:] - ref.extra["lambda_"][1][1:]).max() < 5e-2
    assert kin.info["steps"] == 50 and kin.info["dofs"] == 97**2


def test_stepper_state_restore():
    """state()/restore() continue a nonlinear run exactly (checkpoint support)."""
    sc = load_scenario("bistable", ["kinetic.cells=24", "kinetic.degree=1"])
    model = build_model(sc)
    a = KineticStepper(model, MPI.COMM_SELF)
    for _ in range(3):
        a.step()
    saved = {k: np.copy(v) for k, v in a.state().items()}
    a.step()
    a.step()
    b = KineticStepper(model, MPI.COMM_SELF)
    b.restore(saved)
    b.step()
    b.step()
    assert b.step_index == a.step_index
    assert np.allclose(b.group.p, a.group.p, rtol=0, atol=1e-12)
    assert np.allclose(b.vbar, a.vbar, rtol=0, atol=1e-12)


def test_truncation_warning(caplog):
    """A box too small for the density warns and says to raise kinetic.half_width."""
    sc = load_scenario("tanh", ["t_end=0.05", "kinetic.cells=16", "kinetic.half_width=2.5"])
    with caplog.at_level("WARNING"):
        res = run_kinetic(sc, comm=MPI.COMM_SELF, progress=False)
    assert "kinetic.half_width" in caplog.text
    assert res.extra["boundary_mass"][1].max() > 1e-4


def test_snapshots(tmp_path):
    """Marginals at snapshot times integrate to 1; VTX files appear for ParaView."""
    sc = load_scenario("tanh", ["t_end=0.1", "kinetic.cells=16", "record.snapshots=[0.0, 0.1]"])
    res = run_kinetic(sc, comm=MPI.COMM_SELF, progress=False, snapshot_dir=tmp_path)
    dims, marg, _ = res.extra["marginal_e"]
    assert dims == ("snapshot", "site", "grid_e")
    width = np.diff(res.extra["edges_e"][1])  # the graded box's columns
    assert width.max() > 1.5 * width.min()
    assert np.allclose((marg * width).sum(axis=-1), 1.0, atol=1e-9)
    assert (tmp_path / "site_0000.bp").exists()


@pytest.mark.mpi
def test_rank_independent_ring():
    """Multi-site ring: the same on any rank count (sites split over ranks)."""
    comm = MPI.COMM_WORLD
    sc = load_scenario("ring-bump", ["t_end=0.1", "space.sites=4", "kinetic.cells=12",
                                     "kinetic.degree=1", "record.every=0.05"])
    res = run_kinetic(sc, comm=comm, progress=False)
    ser = run_kinetic(sc, comm=MPI.COMM_SELF, progress=False)
    # direct solves: differences are round-off of the reductions and Newton tolerance
    assert np.abs(res.vbar - ser.vbar).max() < 1e-10
    assert np.abs(res.cov - ser.cov).max() < 1e-10
    assert res.info["ranks"] == comm.size


@pytest.mark.mpi
def test_rank_independent_mean_field():
    """Mean-field: one site, its mesh distributed over all ranks."""
    comm = MPI.COMM_WORLD
    sc = load_scenario("bistable", ["t_end=0.1", "kinetic.cells=16", "kinetic.degree=1"])
    res = run_kinetic(sc, comm=comm, progress=False)
    ser = run_kinetic(sc, comm=MPI.COMM_SELF, progress=False)
    assert np.abs(res.vbar - ser.vbar).max() < 1e-10
    assert np.abs(res.extra["kurtosis"][1] - ser.extra["kurtosis"][1]).max() < 1e-9


def test_preonly_with_a_non_direct_preconditioner_is_refused():
    # preonly + jacobi would apply one Jacobi sweep and report success: silently wrong.
    from fpsolver.errors import ScenarioError
    from fpsolver.kinetic import run_kinetic

    sc = load_scenario("linear", ["t_end=0.02", "kinetic.cells=6", "kinetic.degree=1",
                                  "kinetic.petsc_options={pc_type = 'jacobi'}"])
    with pytest.raises(ScenarioError, match="preonly"):
        run_kinetic(sc, progress=False)


def test_iterative_solver_matches_direct():
    # GMRES + ILU to rtol 1e-12 solves the same systems as LU: same result to ~1e-10.
    from fpsolver.kinetic import run_kinetic

    base = ["t_end=0.1", "kinetic.cells=8", "kinetic.degree=1"]
    lu = run_kinetic(load_scenario("tanh", base), progress=False)
    it = run_kinetic(load_scenario("tanh", base + [
        "kinetic.petsc_options={ksp_type = 'gmres', pc_type = 'ilu', ksp_rtol = 1e-13}"]),
        progress=False)
    np.testing.assert_allclose(it.cov, lu.cov, atol=1e-9)
    np.testing.assert_allclose(it.vbar, lu.vbar, atol=1e-9)
