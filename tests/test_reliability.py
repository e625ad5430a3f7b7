"""fpsolver.runtime in one process: checkpoints, stop requests, bad numbers, shared errors."""

import json
import os
import signal

import numpy as np
import pytest

from fpsolver.errors import FpsolverError, ScenarioError
from fpsolver.runtime import (
    CheckpointError,
    Interrupted,
    NumericalError,
    RunControl,
    StopRequest,
    check_state,
    find_bad_numbers,
    load_checkpoint,
    read_manifest,
    run_shared,
    save_checkpoint,
)
from fpsolver.runtime.parallel import _describe, _rebuild
from fpsolver.scenario import load_scenario, to_toml

TOML = to_toml(load_scenario("linear"))


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {"u": rng.normal(size=(3, 17)), "history": rng.normal(size=5), "k": np.arange(4)}


def test_checkpoint_round_trip_is_exact(tmp_path):
    arrays = _arrays()
    save_checkpoint(tmp_path, arrays, step=12, time=0.12, scenario_toml=TOML,
                    meta={"scheme": "bdf2"})
    ck = load_checkpoint(tmp_path, scenario_toml=TOML)
    assert (ck.step, ck.time, ck.meta) == (12, 0.12, {"scheme": "bdf2"})
    assert set(ck.arrays) == set(arrays)
    for name, value in arrays.items():
        assert ck.arrays[name].dtype == value.dtype
        np.testing.assert_array_equal(ck.arrays[name], value)


def test_newer_checkpoint_replaces_older_one(tmp_path):
    save_checkpoint(tmp_path, _arrays(0), step=1, time=0.1, scenario_toml=TOML)
    save_checkpoint(tmp_path, _arrays(1), step=2, time=0.2, scenario_toml=TOML)
    ck = load_checkpoint(tmp_path, scenario_toml=TOML)
    assert ck.step == 2
    np.testing.assert_array_equal(ck.arrays["u"], _arrays(1)["u"])
    assert [p.name for p in tmp_path.glob("step-*")] == ["step-000000002"]


def test_interrupted_save_leaves_previous_checkpoint(tmp_path):
    save_checkpoint(tmp_path, _arrays(0), step=5, time=0.5, scenario_toml=TOML)
    # a save killed after writing its rank file but before the manifest moved:
    stale = tmp_path / "step-000000006"
    stale.mkdir()
    (stale / "rank-0000.npz").write_bytes(b"half a file")
    ck = load_checkpoint(tmp_path, scenario_toml=TOML)
    assert ck.step == 5
    np.testing.assert_array_equal(ck.arrays["u"], _arrays(0)["u"])
    save_checkpoint(tmp_path, _arrays(2), step=7, time=0.7, scenario_toml=TOML)
    assert not stale.exists()


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint in .*does not exist"):
        load_checkpoint(tmp_path / "nowhere", scenario_toml=TOML)
    with pytest.raises(CheckpointError, match="no manifest"):
        load_checkpoint(tmp_path, scenario_toml=TOML)


def test_checkpoint_of_another_scenario_is_refused(tmp_path):
    save_checkpoint(tmp_path, _arrays(), step=3, time=0.3, scenario_toml=TOML)
    other = to_toml(load_scenario("linear", ["populations.e.tau=0.25"]))
    with pytest.raises(CheckpointError, match=r"populations\.e\.tau: 1\.0 in the checkpoint, "
                                              r"0\.25 now"):
        load_checkpoint(tmp_path, scenario_toml=other)
    longer = to_toml(load_scenario("linear", ["t_end=50"]))  # extending a run is allowed
    assert load_checkpoint(tmp_path, scenario_toml=longer).step == 3


def test_checkpoint_of_another_rank_count_is_refused(tmp_path):
    save_checkpoint(tmp_path, _arrays(), step=3, time=0.3, scenario_toml=TOML)
    manifest = read_manifest(tmp_path)
    manifest["ranks"] = 2
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"written by 2 rank\(s\), this run has 1 -- "
                                              r"resume with `mpirun -n 2"):
        load_checkpoint(tmp_path, scenario_toml=TOML)


def test_layout_mismatch_and_damaged_file_are_refused(tmp_path):
    save_checkpoint(tmp_path, _arrays(), step=3, time=0.3, scenario_toml=TOML,
                    layout={"dofs": 289})
    with pytest.raises(CheckpointError, match="layout of rank 0 differs"):
        load_checkpoint(tmp_path, scenario_toml=TOML, layout={"dofs": 1089})
    assert load_checkpoint(tmp_path, layout={"dofs": 289}).step == 3
    rank_file = next(tmp_path.glob("step-*/rank-0000.npz"))
    rank_file.write_bytes(rank_file.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="missing or unreadable"):
        load_checkpoint(tmp_path, scenario_toml=TOML)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(tmp_path, scenario_toml=TOML)


def test_find_bad_numbers_names_site_and_quantity():
    assert find_bad_numbers({"density": np.ones((4, 9))}, {"density": np.ones(4)}) is None
    u = np.ones((4, 9))
    u[2, 5] = np.inf
    assert find_bad_numbers({"density": u}, site_offset=10) == {
        "problem": "Inf value", "site": 12, "quantity": "density"}
    found = find_bad_numbers({(7, "vbar"): np.array([0.1, np.nan])})
    assert found == {"problem": "NaN value", "site": 7, "quantity": "vbar"}
    found = find_bad_numbers({}, {"density": np.array([1.0, 0.99, -1e-3])})
    assert found["site"] == 2 and "mass -0.001" in found["problem"]


def test_check_state_raises_with_step_time_site_quantity():
    check_state({"u": np.zeros((2, 3))}, step=4, time=0.4)
    with pytest.raises(NumericalError, match=r"NaN value in vbar at site 1 at step 4 "
                                             r"\(t = 0\.4\)") as info:
        check_state({"vbar": np.array([[0.0, 0.0], [np.nan, 0.0]])}, step=4, time=0.4)
    assert (info.value.step, info.value.site, info.value.quantity) == (4, 1, "vbar")


def test_stop_request_catches_sigterm_and_restores_handler():
    before = signal.getsignal(signal.SIGTERM)
    with StopRequest() as stop:
        assert not stop.requested()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested() and stop.signal_name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before


def test_second_sigint_interrupts_at_once():
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.local
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


def _toy_run(steps, ctl, stop_at=None):
    """A two-level scheme with history, as the kinetic stepper has (BDF2-like)."""
    saved = ctl.resume_state()
    if saved is None:
        x = np.linspace(0, 1, 40)
        u, u_prev, step = np.sin(3 * x), np.sin(3 * x), 0
    else:
        u, u_prev, step = saved.arrays["u"], saved.arrays["u_prev"], saved.step
    while step < steps:
        u, u_prev = (4 * u - u_prev) / 3 + 2e-3 / 3 * (-(u**3) + u.mean()), u
        step += 1
        if step == stop_at:
            ctl.stop.request()
        ctl.end_of_step(step, step * 1e-3, {"u": u, "u_prev": u_prev})
    ctl.finish(step, step * 1e-3, {"u": u, "u_prev": u_prev})
    return u


@pytest.mark.parametrize("stop_at", [1, 17, 59])
def test_interrupt_and_resume_gives_the_same_result(tmp_path, stop_at):
    with RunControl(TOML) as ctl:
        reference = _toy_run(60, ctl)
    with RunControl(TOML, checkpoint_dir=tmp_path, every=7) as ctl:
        with pytest.raises(Interrupted, match=f"after step {stop_at} .*--resume {tmp_path}"):
            _toy_run(60, ctl, stop_at=stop_at)
    assert read_manifest(tmp_path)["step"] == stop_at
    with RunControl(TOML, resume=tmp_path, every=7) as ctl:
        resumed = _toy_run(60, ctl)
    np.testing.assert_array_equal(resumed, reference)
    assert read_manifest(tmp_path)["step"] == 60


def test_bad_step_saves_last_good_state(tmp_path):
    with RunControl(TOML, checkpoint_dir=tmp_path) as ctl:
        ctl.end_of_step(1, 0.1, {"u": np.ones(3)})
        ctl.end_of_step(2, 0.2, {"u": np.full(3, 2.0)})
        with pytest.raises(NumericalError, match=r"NaN value in u at site 1 at step 3 .*saved "
                                                 r"in .* \(step 2, t = 0\.2\)"):
            ctl.end_of_step(3, 0.3, {"u": np.array([1.0, np.nan, 1.0])})
    ck = load_checkpoint(tmp_path, scenario_toml=TOML)
    assert ck.step == 2
    np.testing.assert_array_equal(ck.arrays["u"], np.full(3, 2.0))


def test_shared_failure_rebuilds_the_exception_type():
    err = ScenarioError("kinetic.domain", "mesh has no cells", "give a 2-d mesh")
    rebuilt = _rebuild(*_describe(err, 1, 2))
    assert type(rebuilt) is ScenarioError and rebuilt.field == "kinetic.domain"
    assert str(rebuilt) == str(err) + " [rank 1 of 2]"
    with pytest.raises(ZeroDivisionError):
        run_shared(None, lambda: 1 / 0)
    assert run_shared(None, lambda a, b: a + b, 2, b=3) == 5
    assert isinstance(_rebuild(b"garbage", "msg", b""), FpsolverError)


@pytest.mark.mpi
def test_failure_on_last_rank_is_raised_on_every_rank():
    from mpi4py import MPI

    comm = MPI.COMM_WORLD

    def local():
        if comm.rank == comm.size - 1:
            raise ScenarioError("kinetic.domain", "cannot read mesh.msh", "give a mesh")
        return comm.rank

    with pytest.raises(ScenarioError, match="cannot read mesh.msh") as info:
        run_shared(comm, local)
    assert info.value.field == "kinetic.domain"
    assert comm.allreduce(1) == comm.size  # every rank is still in step
    assert run_shared(comm, lambda: comm.rank) == comm.rank


@pytest.mark.mpi
def test_checkpoint_round_trip_on_every_rank(shared_tmp_path):
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    mine = {"u": np.arange(5.0) + 10 * comm.rank, "k": np.array([comm.rank])}
    save_checkpoint(shared_tmp_path / "ck", mine, step=4, time=0.4, scenario_toml=TOML,
                    comm=comm, layout={"n": 5})
    ck = load_checkpoint(shared_tmp_path / "ck", scenario_toml=TOML, comm=comm, layout={"n": 5})
    np.testing.assert_array_equal(ck.arrays["u"], mine["u"])
    assert ck.step == 4
    wrong = {"n": 5 + (comm.rank == comm.size - 1)}  # one rank's layout differs
    with pytest.raises(CheckpointError, match="layout"):
        load_checkpoint(shared_tmp_path / "ck", comm=comm, layout=wrong)


@pytest.mark.mpi
def test_stop_requested_on_one_rank_stops_all():
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    stop = StopRequest(every=2)
    if comm.rank == comm.size - 1:
        stop.request()
    answers = [stop.requested(comm) for _ in range(3)]
    assert answers == ([False, True, True] if comm.size > 1 else [True, True, True])


def test_checkpoint_flags_make_a_run_control(tmp_path):
    import argparse

    from fpsolver.runtime.cliargs import add_checkpoint_args, resume_command, run_control

    p = argparse.ArgumentParser()
    p.add_argument("command")
    p.add_argument("scenario")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--out", type=lambda s: tmp_path / s)
    add_checkpoint_args(p)
    args = p.parse_args(["kinetic", "linear", "--set", "kinetic.cells=16", "--out", "o",
                         "--checkpoint-every", "5"])
    sc = load_scenario("linear", args.overrides)
    ctl = run_control(args, sc)
    assert ctl.checkpoint_dir == tmp_path / "o" / "checkpoint" and ctl.every == 5
    assert ctl.resume is None
    assert resume_command(args, "ck") == (f"fpsolver kinetic linear --set kinetic.cells=16 "
                                          f"--out {tmp_path / 'o'} --checkpoint-every 5 "
                                          "--resume ck")
    args = p.parse_args(["kinetic", "linear", "--resume", str(tmp_path / "ck")])
    ctl = run_control(args, sc)
    assert ctl.checkpoint_dir == ctl.resume == tmp_path / "ck"
    with pytest.raises(CheckpointError, match="no checkpoint"):
        ctl.resume_state()
