"""Reliability under `mpirun -n 2`, launched as subprocesses from a normal pytest run.

- a failure on one rank ends the job (nonzero exit, message on stderr) instead of hanging;
- SIGTERM at a random step writes a checkpoint; resuming gives bit-identical results;
- a NaN on one rank stops every rank with the last good state saved.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from processes import communicate_or_fail

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = Path(__file__).resolve().parent / "programs"
BIN = Path(sys.executable).parent
MPIRUN = str(BIN / "mpirun")  # from the mpich wheel in the venv


# `make test-mpi` runs this module under `mpirun -n 2`: rank 0 launches the jobs (each its
# own mpirun, without the outer job's launcher variables), the other ranks skip.
pytestmark = pytest.mark.mpi


@pytest.fixture(autouse=True)
def _rank0_launches():
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    if comm.size > 1 and comm.rank != 0:
        pytest.skip("rank 0 launches these jobs (each with its own mpirun)")
    yield


def _clean_env(env):
    """The environment without the variables of an enclosing MPI job (PMI, Hydra)."""
    return {k: v for k, v in env.items()
            if not k.startswith(("PMI_", "PMIX_", "HYDRA_", "MPIR_", "MPICH_", "OMPI_"))}


def _launch(ranks, args, **kwargs):
    kwargs["env"] = _clean_env(kwargs.get("env") or os.environ)
    args = list(map(str, args))
    exe = [] if args[0].endswith("fpsolver") else [sys.executable]  # the console script
    cmd = ([MPIRUN, "-n", str(ranks)] if ranks > 1 else []) + exe + args
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


def _run(ranks, args, timeout=30, env=None, cwd=None):
    proc = _launch(ranks, args, env={**os.environ, **(env or {})}, cwd=cwd)
    return communicate_or_fail(proc, timeout, f"{args} hung")


@pytest.mark.parametrize("kind, message", [
    ("fpsolver", "error on rank 1 of 2: kinetic.domain: test failure on rank 1"),
    ("python", "error on rank 1 of 2: ZeroDivisionError"),
])
def test_failure_on_one_rank_ends_the_job(kind, message):
    rc, out, err = _run(2, [PROGRAMS / "fail_on_rank.py", "kinetic", "linear", "--quiet"],
                        env={"FPSOLVER_FAIL_ON_RANK": "1", "FPSOLVER_FAIL_KIND": kind})
    assert rc != 0
    assert message in err and "aborting all 2 ranks" in err


def test_shared_failure_exits_cleanly_on_every_rank():
    rc, out, err = _run(2, [PROGRAMS / "fail_on_rank.py", "kinetic", "linear", "--quiet"],
                        env={"FPSOLVER_FAIL_ON_RANK": "1", "FPSOLVER_FAIL_KIND": "shared"})
    assert rc == 2
    assert err.count("test failure on rank 1 [rank 1 of 2]") == 1  # printed once, by rank 0
    assert "Abort" not in err


def _toy(ranks, tmp, *extra, timeout=60):
    return _run(ranks, [PROGRAMS / "toy_loop.py", *extra], timeout=timeout, cwd=tmp)


@pytest.mark.parametrize("ranks", [1, 2])
def test_sigterm_then_resume_matches_uninterrupted_run(tmp_path, ranks):
    steps = 150
    rc, out, err = _toy(ranks, tmp_path, "--steps", steps, "--out", "ref.npy")
    assert rc == 0, err
    stop_after = random.Random().randint(5, 120)
    proc = _launch(ranks, [PROGRAMS / "toy_loop.py", "--steps", steps, "--every", 13,
                           "--sleep", 0.02, "--dir", "ck", "--out", "cut.npy"], cwd=tmp_path)
    for line in proc.stdout:
        if line.strip() == f"step {stop_after}":
            proc.send_signal(signal.SIGTERM)
            break
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    assert "interrupted by SIGTERM after step" in err and "--resume ck" in err
    assert not (tmp_path / "cut.npy").exists()
    rc, out, err = _toy(ranks, tmp_path, "--steps", steps, "--every", 13, "--resume", "ck",
                        "--out", "resumed.npy")
    assert rc == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "resumed.npy"),
                                  np.load(tmp_path / "ref.npy"))


def test_nan_on_one_rank_stops_all_with_last_good_state(tmp_path):
    rc, out, err = _toy(2, tmp_path, "--steps", 60, "--dir", "ck", "--nan-at", 31)
    assert rc == 3
    assert "NaN value in u at site 3 at step 31 (t = 0.031)" in err
    assert "saved in ck (step 30, t = 0.03)" in err
    # the saved state continues: resuming up to step 30 reproduces it
    rc, out, err = _toy(2, tmp_path, "--steps", 30, "--resume", "ck", "--out", "a.npy")
    assert rc == 0, err
    rc, out, err = _toy(2, tmp_path, "--steps", 30, "--out", "b.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def test_resume_on_another_rank_count_is_refused(tmp_path):
    rc, out, err = _toy(2, tmp_path, "--steps", 10, "--dir", "ck")
    assert rc == 0, err
    rc, out, err = _toy(1, tmp_path, "--steps", 20, "--resume", "ck")
    assert rc == 3 and "written by 2 rank(s), this run has 1" in err


# -- the kinetic solver: SIGTERM at a random step, resume, same final fields ---------------

KINETIC = ["kinetic", "linear", "--set", "kinetic.cells=16",
           "--set", "kinetic.dt=0.01", "--set", "t_end=0.5", "--quiet",
           "--set", "record.snapshots=[0.0, 0.25, 0.5]"]  # 50 steps of dt = 0.01


def _final(directory: Path, ranks: int) -> list[dict]:
    files = [next(directory.glob(f"step-*/rank-{r:04d}.npz")) for r in range(ranks)]
    out = []
    for f in files:
        with np.load(f) as data:
            out.append({k: data[k] for k in data.files})
    return out


def _assert_same_final(tmp_path: Path, ranks: int, step: int, names) -> None:
    """The final checkpoints in ref/ and cut/ agree to 1e-12 relative, field by field."""
    for ref, resumed in zip(_final(tmp_path / "ref", ranks), _final(tmp_path / "cut", ranks)):
        assert int(ref["step_index"]) == int(resumed["step_index"]) == step
        for name in names:
            scale = np.abs(ref[name]).max()
            assert np.abs(resumed[name] - ref[name]).max() <= 1e-12 * scale, name


@pytest.mark.parametrize("ranks", [1, 2])
def test_kinetic_sigterm_then_resume_matches_uninterrupted_run(tmp_path, ranks):
    program = PROGRAMS / "kinetic_sigterm.py"
    rc, out, err = _run(ranks, [program, *KINETIC, "--checkpoint-dir", "ref", "--out",
                                "out_ref"], timeout=300, cwd=tmp_path)
    assert rc == 0, err
    stop = random.Random().randint(1, 49)
    rc, out, err = _run(ranks, [program, *KINETIC, "--checkpoint-every", 7, "--checkpoint-dir",
                                "cut"], timeout=300, cwd=tmp_path,
                        env={"FPSOLVER_TEST_SIGTERM_STEP": str(stop)})
    assert rc == 3, err
    assert f"interrupted by SIGTERM after step {stop} " in err
    assert "resume with `fpsolver kinetic linear --set kinetic.cells=16" in err
    assert json.loads((tmp_path / "cut" / "manifest.json").read_text())["step"] == stop
    rc, out, err = _run(ranks, [program, *KINETIC, "--checkpoint-every", 7, "--resume", "cut",
                                "--out", "out_cut"], timeout=300, cwd=tmp_path)
    assert rc == 0, err
    from fpsolver.output import read_observables

    ref_ds, cut_ds = read_observables(tmp_path / "out_ref"), read_observables(tmp_path / "out_cut")
    # the whole recorded history, not only the end, and the marginals of every snapshot
    assert ref_ds["marginal_e"].shape[0] == 3
    for name in ("vbar", "cov", "mass", "marginal_e", "marginal_i"):
        a, b = ref_ds[name].values, cut_ds[name].values
        assert a.shape == b.shape and np.abs(a - b).max() <= 1e-12 * np.abs(a).max(), name
    _assert_same_final(tmp_path, ranks, 50, ("q", "vbar", "rec_vbar", "rec_cov",
                                             "rec_mass"))


def test_kinetic_resume_with_other_scenario_is_refused(tmp_path):
    program = PROGRAMS / "kinetic_sigterm.py"
    rc, out, err = _run(1, [program, *KINETIC, "--checkpoint-dir", "ck"], timeout=300,
                        cwd=tmp_path)
    assert rc == 0, err
    rc, out, err = _run(1, [program, *KINETIC, "--set", "populations.e.sigma=0.5", "--resume",
                            "ck"], timeout=300, cwd=tmp_path)
    assert rc == 2
    assert "belongs to a different scenario: populations.e.sigma: 1.0 in the checkpoint" in err


@pytest.mark.parametrize("points, cell, message", [
    ([[2.0, -1, 0], [4, -1, 0], [4, 1, 0], [2, 1, 0]], ("triangle", [[0, 1, 2], [0, 2, 3]]),
     "does not contain the origin"),
    ([[-1.0, -1, 0], [1, -1, 0], [0, 1, 0], [0, 0, 1]], ("tetra", [[0, 1, 2, 3]]), "not planar"),
])
def test_kinetic_bad_state_mesh_is_a_clear_error_on_every_rank(tmp_path, points, cell, message):
    import meshio

    meshio.write_points_cells(tmp_path / "bad.msh", np.array(points),
                              [(cell[0], np.array(cell[1]))], file_format="gmsh22")
    rc, out, err = _run(2, [Path(BIN) / "fpsolver", *KINETIC[:2], "--set",
                            "kinetic.domain='bad.msh'", "--quiet"], timeout=120, cwd=tmp_path)
    assert rc == 2
    assert "kinetic.domain: " in err and message in err and "Traceback" not in err


@pytest.mark.parametrize("ranks", [1, 2])
def test_kinetic_nan_stops_every_rank_with_last_good_state(tmp_path, ranks):
    rc, out, err = _run(ranks, [PROGRAMS / "kinetic_nan.py", *KINETIC, "--checkpoint-dir",
                                "ck"], timeout=300, cwd=tmp_path,
                        env={"FPSOLVER_TEST_NAN_STEP": "12"})
    assert rc == 2, err
    assert "NaN value in density at site 0 at step 12 (t = 0.12)" in err
    assert "the last good state is saved in ck (step 11, t = 0.11)" in err
    assert "Abort" not in err and "Traceback" not in err
    saved = _final(tmp_path / "ck", ranks)
    assert all(int(s["step_index"]) == 11 and np.isfinite(s["q"]).all() for s in saved)


@pytest.mark.slow
def test_kinetic_external_sigterm_to_mpirun_then_resume(tmp_path):
    """SIGTERM sent to `mpirun` from outside at a random moment (forwarded to the ranks)."""
    args = [Path(BIN) / "fpsolver", "kinetic", "linear", "--set", "kinetic.cells=16",
            "--set", "t_end=0.5", "--set", "kinetic.dt=0.001"]
    rc, out, err = _run(2, [*args, "--quiet", "--checkpoint-dir", "ref"], timeout=300,
                        cwd=tmp_path)
    assert rc == 0, err
    proc = _launch(2, [*args, "--checkpoint-every", 50, "--checkpoint-dir", "cut"],
                   cwd=tmp_path)
    for line in proc.stderr:  # progress is logged every 10% of the steps
        if "kinetic step" in line:
            break
    time.sleep(random.uniform(0.0, 0.3))
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert proc.returncode == 3, err
    assert "interrupted by SIGTERM after step" in err
    rc, out, err = _run(2, [*args, "--quiet", "--resume", "cut"], timeout=300, cwd=tmp_path)
    assert rc == 0, err
    _assert_same_final(tmp_path, 2, 500, ("q", "vbar", "rec_vbar", "rec_cov"))


def test_kinetic_resume_extends_a_finished_run_but_never_shortens_it(tmp_path):
    program = PROGRAMS / "kinetic_sigterm.py"
    rc, out, err = _run(1, [program, *KINETIC, "--checkpoint-dir", "ck"], timeout=300,
                        cwd=tmp_path)
    assert rc == 0, err
    rc, out, err = _run(1, [program, *KINETIC, "--set", "t_end=0.25", "--resume", "ck"],
                        timeout=300, cwd=tmp_path)
    assert rc == 2 and "scenario field 't_end': the checkpoint is at t = 0.5" in err
    rc, out, err = _run(1, [program, *KINETIC, "--set", "t_end=0.7", "--resume", "ck"],
                        timeout=300, cwd=tmp_path)
    assert rc == 0, err
    assert "t = 0.7:" in out
    assert json.loads((tmp_path / "ck" / "manifest.json").read_text())["step"] == 70


def test_kinetic_resume_keeps_the_earlier_density_snapshots(tmp_path):
    """VTX files written before the interruption stay; the resumed run writes new ones."""
    program = PROGRAMS / "kinetic_sigterm.py"
    args = [program, *KINETIC, "--out", "out", "--snapshots"]
    rc, out, err = _run(1, args, timeout=300, cwd=tmp_path,
                        env={"FPSOLVER_TEST_SIGTERM_STEP": "30"})
    assert rc == 3, err
    before = tmp_path / "out" / "snapshots" / "site_0000.bp"
    assert before.is_dir()
    files_before = {p: p.stat().st_size for p in before.rglob("*") if p.is_file()}
    rc, out, err = _run(1, [*args, "--resume", "out/checkpoint"], timeout=300, cwd=tmp_path)
    assert rc == 0, err
    assert {p: p.stat().st_size for p in before.rglob("*") if p.is_file()} == files_before
    assert (tmp_path / "out" / "snapshots" / "site_0000-from-step-31.bp").is_dir()


def test_edited_step_in_one_rank_file_is_one_clear_error_not_a_deadlock(tmp_path):
    """A step_index edited in rank 1's file stops every rank with the same error.

    The checksum is forged too; the ranks agree on the step before any collective.
    """
    from fpsolver.runtime.checkpoint import array_checksum

    args = ["kinetic", "linear", "--set", "t_end=0.1", "--set", "kinetic.dt=0.05", "--quiet"]
    rc, out, err = _run(2, [BIN / "fpsolver", *args, "--checkpoint-dir", "ck"], timeout=300,
                        cwd=tmp_path)
    assert rc == 0, err
    path = next((tmp_path / "ck").glob("step-*/rank-0001.npz"))
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["step_index"] = np.array(int(arrays["step_index"]) + 5)
    meta = json.loads(bytes(arrays["__meta__"]).decode())
    meta["sha256"]["step_index"] = array_checksum(arrays["step_index"])
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    rc, out, err = _run(2, [BIN / "fpsolver", *args[:2], "--set", "t_end=0.2",
                            *args[4:], "--resume", "ck"], timeout=300, cwd=tmp_path)
    assert rc == 2 and "checkpoint is inconsistent" in err and "Traceback" not in err, err
