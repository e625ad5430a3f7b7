"""Hostile and broken inputs (issue 9): each is refused cleanly, before any work.

A clean refusal is exit code 2 and exactly one ``fpsolver: error: ...`` line naming the
field or file and the fix, no traceback; or, for outputs, an intact folder. The cases
are the attacks of the hostile-input campaign (tests/programs/hostile_campaign.py runs
these and more as subprocesses and counts the outcomes).
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fpsolver.cli import main
from fpsolver.errors import CheckpointError, ScenarioError
from fpsolver.scenario import load_scenario, to_toml

QUICK = ["--set", "t_end=0.05"]
KINETIC = ["--quiet"]


def _refused(capsys, argv, *needles, code=2):
    """Run the CLI in-process; assert a one-line refusal containing every needle."""
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("fpsolver: error")]
    assert rc == code, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "fix" in lines[0] or "--" in lines[0], lines[0]
    return lines[0]


# -- a scenario is data: PETSc options ----------------------------------------------------
@pytest.mark.parametrize("options, key", [
    ('{ksp_type = "python", ksp_python_type = "helpers.Evil"}', "ksp_type"),
    ('{ksp_python_type = "helpers.Evil"}', "ksp_python_type"),
    ('{ksp_view = "ascii:/tmp/fpsolver-pwned"}', "ksp_view"),
    ('{ksp_monitor = "/tmp/fpsolver-pwned"}', "ksp_monitor"),
    ('{options_file = "/tmp/evil.opts"}', "options_file"),
    ('{pc_type = "lu", mat_view = "binary"}', "mat_view"),
    ('{pc_factor_mat_solver_type = "ascii:/tmp/x"}', "pc_factor_mat_solver_type"),
    ('{"-ksp_type" = "gmres"}', "-ksp_type"),
    ('{ksp_rtoll = 1e-8}', "ksp_rtoll"),       # misspelled: never silently ignored
    ('{ksp_max_it = 1e30}', "ksp_max_it"),
    ('{mat_mumps_icntl_4 = 4}', "mat_mumps_icntl_4"),  # MUMPS output streams
    ('{log_view = ""}', "log_view"),
])
def test_petsc_options_outside_the_allow_list_are_refused(capsys, options, key):
    line = _refused(capsys, ["kinetic", "tanh", "--set", f"kinetic.petsc_options={options}"],
                    f"kinetic.petsc_options.{key}")
    assert not Path("/tmp/fpsolver-pwned").exists()
    if key == "ksp_rtoll":
        assert "did you mean 'ksp_rtol'" in line


def test_allowed_petsc_options_pass_and_unused_ones_are_reported(caplog):
    from fpsolver.preflight import preflight

    sc = load_scenario("tanh", ['kinetic.petsc_options={ksp_type = "gmres", pc_type = "ilu", '
                                'ksp_rtol = 1e-10, mat_mumps_icntl_14 = 50}'])
    preflight(sc, "kinetic")
    assert "mat_mumps_icntl_14 not used" in caplog.text


def test_a_scenario_beside_a_helpers_module_runs_no_code(tmp_path, monkeypatch):
    (tmp_path / "helpers.py").write_text("open('PWNED', 'w').write('x')\n")
    sc = to_toml(load_scenario("tanh")).replace(
        "[kinetic.petsc_options]", '[kinetic.petsc_options]\nksp_type = "python"\n'
        'ksp_python_type = "helpers.Evil"')
    (tmp_path / "evil.toml").write_text(sc)
    proc = subprocess.run([sys.executable, "-m", "fpsolver", "kinetic", "evil.toml"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert not (tmp_path / "PWNED").exists()


# -- the name is never a path ---------------------------------------------------------------
@pytest.mark.parametrize("name", ["two\nlines", "tab\there", "x" * 201, "bell\x07"])
def test_name_is_one_printable_line(capsys, name):
    _refused(capsys, ["show", "tanh", "--set", f"name={json.dumps(name)}"], "'name'")


def test_name_never_becomes_the_checkpoint_path(tmp_path):
    import argparse

    from fpsolver.runtime.cliargs import checkpoint_dir

    sc = load_scenario("tanh", ["name='/../../other-run/checkpoint'"])
    args = argparse.Namespace(checkpoint_dir=None, resume=None, out=None)
    path = checkpoint_dir(args, sc)
    assert "other-run" not in str(path) and len(path.parts) == 1
    assert checkpoint_dir(args, sc) == path  # one id per run
    args.out = tmp_path / "o"
    assert checkpoint_dir(args, sc) == tmp_path / "o" / "checkpoint"


# -- scenario files -------------------------------------------------------------------------
@pytest.mark.parametrize("content, needle", [
    (b"\x00\x01\x02\xff\xfe binary", "not UTF-8"),
    ("name = \"caf\u00e9\"\n".encode("latin-1"), "not UTF-8"),
    ("name = \"x\"\n".encode("utf-16"), "not UTF-8"),
    (b"a = " + b"[" * 100000 + b"]" * 100000, "nests"),
    (b"x" * (2 << 20), "bytes"),
    (b"n = [1, ", "not valid TOML"),
])
def test_bad_scenario_files(tmp_path, capsys, content, needle):
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    _refused(capsys, ["show", path], "scenario", needle)


def test_directory_and_device_as_scenario(tmp_path, capsys, monkeypatch):
    _refused(capsys, ["show", tmp_path], "is a directory")
    _refused(capsys, ["show", "/dev/zero"], "not a regular file")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tanh").mkdir()  # e.g. left by `--out tanh`
    assert main(["show", "tanh"]) == 0  # the shipped scenario wins
    assert 'name = "tanh"' in capsys.readouterr().out
    _refused(capsys, ["show", "./tanh"], "is a directory")


def test_shipped_name_wins_over_a_file_unless_a_path_is_given(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("linear").write_text('name = "impostor"\n')
    assert main(["show", "linear"]) == 0 and 'name = "linear"' in capsys.readouterr().out
    assert main(["show", "./linear"]) == 0 and 'name = "impostor"' in capsys.readouterr().out
    assert "shipped name wins" in " ".join(
        subprocess.run([sys.executable, "-m", "fpsolver", "show", "--help"],
                       capture_output=True, text=True).stdout.split())


# -- numbers ------------------------------------------------------------------------------
@pytest.mark.parametrize("override, field", [
    ("populations.e.sigma=1e300", "populations.e.sigma"),
    ("populations.i.tau=1e-300", "populations.i.tau"),
    ("populations.e.input=1e200", "populations.e.input"),
    ("kinetic.half_width=1e-300", "kinetic.half_width"),
    ("kinetic.cells=100000", "kinetic.cells"),
    ("seed=18446744073709551616", "seed"),
    ("seed=-1", "seed"),
    ("t_end=1e300", "dt"),
])
def test_numbers_out_of_range_are_refused(capsys, override, field):
    line = _refused(capsys, ["particles", "tanh", "--set", override], f"'{field}'")
    if field == "seed":
        assert "2**63" in line


def test_stability_time_nan(capsys):
    _refused(capsys, ["stability", "tanh", "--time", "nan"], "--time")


@pytest.mark.parametrize("argv, needle", [
    (["particles", "tanh", "--set", "n=1000000000000"], "memory"),
    (["particles", "linear", "--set", "dt=1e-10", "--set", "t_end=1"], "too long"),
    (["kinetic", "tanh", "--set", "kinetic.cells=4096", "--set", "kinetic.degree=4"],
     "memory"),
])
def test_runs_too_large_are_refused_with_an_estimate(capsys, argv, needle):
    start = time.perf_counter()
    line = _refused(capsys, argv, needle, "about")
    assert time.perf_counter() - start < 60  # before allocating anything large
    assert "fix:" in line


# -- input files named by a scenario ---------------------------------------------------------
def _huge_header(path):
    """A .npy header claiming 10^5 x 10^5 doubles (80 GB), with no data."""
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (100000, 100000)})


def _matrix_scenario(tmp_path, file_name):
    sc = load_scenario("linear", ["space.kind='ring'", "space.sites=8", "n=16",
                                  "kernel.family='matrix'", "kernel.file='/PLACEHOLDER'"])
    (tmp_path / "m.toml").write_text(to_toml(sc).replace("/PLACEHOLDER", file_name))
    return tmp_path / "m.toml"


@pytest.mark.parametrize("make, needle", [
    (lambda p: np.savez(open(p / "k.npy", "wb"), a=np.eye(8)), "cannot read"),
    (lambda p: np.save(p / "k.npy", np.array([["a"] * 8] * 8)), "dtype"),
    (lambda p: np.save(p / "k.npy", np.array([[object()] * 8] * 8, dtype=object)), "dtype"),
    (lambda p: _huge_header(p / "k.npy"), "shape"),
    (lambda p: (p / "k.npy").mkdir(), "directory"),
    (lambda p: None, "not found"),
])
def test_bad_kernel_files(tmp_path, capsys, make, needle):
    make(tmp_path)
    path = _matrix_scenario(tmp_path, "k.npy")  # relative to the scenario file
    _refused(capsys, ["gaussian", path], "kernel.file", needle)


def test_kernel_file_relative_to_the_scenario_file(tmp_path, monkeypatch):
    np.save(tmp_path / "k.npy", np.ones((8, 8)))
    path = _matrix_scenario(tmp_path, "k.npy")
    monkeypatch.chdir("/")
    assert load_scenario(path).kernel.file == str(tmp_path / "k.npy")


def test_device_as_kernel_file(tmp_path, capsys):
    path = _matrix_scenario(tmp_path, "/dev/zero")
    _refused(capsys, ["gaussian", path], "kernel.file", "not a regular file")


# -- output folders -------------------------------------------------------------------------
def test_out_that_is_a_file_fails_before_the_work(tmp_path, capsys):
    (tmp_path / "f").write_text("keep me")
    _refused(capsys, ["particles", "tanh", "--set", "n=100", *QUICK, "--quiet", "--out",
                      tmp_path / "f"], "is a file")
    assert (tmp_path / "f").read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_fails_before_the_work(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        _refused(capsys, ["particles", "tanh", "--set", "n=100", *QUICK, "--quiet", "--out",
                          ro / "x"], "--out")
    finally:
        ro.chmod(0o700)


def test_out_below_a_file_fails_before_the_work(tmp_path, capsys):
    (tmp_path / "f").write_text("keep me")
    _refused(capsys, ["gaussian", "tanh", *QUICK, "--out", tmp_path / "f" / "sub"], "--out")


def test_plot_of_a_truncated_run(tmp_path, capsys):
    assert main(["gaussian", "tanh", *QUICK, "--out", str(tmp_path)]) == 0
    nc = tmp_path / "observables.nc"
    nc.write_bytes(nc.read_bytes()[:300])
    _refused(capsys, ["plot", tmp_path], "checksum")


def test_stability_into_a_kinetic_folder_is_refused(tmp_path, capsys):
    assert main(["gaussian", "tanh", *QUICK, "--out", str(tmp_path)]) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    _refused(capsys, ["stability", "tanh", "--out", tmp_path], "already holds a run")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


# -- kinetic record grid --------------------------------------------------------------------
@pytest.mark.parametrize("overrides", [
    ["t_end=0.101", "kinetic.dt=0.02"],                        # t_end off the dt grid
    ["t_end=0.1", "kinetic.dt=0.02", "record.every=0.005"],    # record.every < dt
])
def test_kinetic_off_grid_times_give_consistent_outputs(tmp_path, overrides):
    argv = ["kinetic", "tanh", *KINETIC, "--out", str(tmp_path)]
    for o in overrides:
        argv += ["--set", o]
    assert main(argv) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    series = summary["series"]
    assert len({len(v) for v in series.values()}) == 1
    assert series["t"][-1] == pytest.approx(float(overrides[0].split("=")[1]))
    from fpsolver.output import read_observables
    assert len(read_observables(tmp_path)["time"]) == len(series["t"])


# -- checkpoints ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    d = tmp_path_factory.mktemp("ck")
    assert main(["kinetic", "tanh", *KINETIC, "--set", "t_end=0.06", "--set",
                 "kinetic.dt=0.02", "--checkpoint-dir", str(d / "ck")]) == 0
    return d / "ck"


def _copy(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return dst


def _npz(ck):
    return next(ck.glob("step-*/rank-0000.npz"))


def test_scaled_density_in_a_checkpoint_is_refused(checkpoint, tmp_path, capsys):
    ck = _copy(checkpoint, tmp_path / "ck")
    path = _npz(ck)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["q"] = arrays["q"] * 1.5
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    _refused(capsys, ["kinetic", "tanh", *KINETIC, "--set", "t_end=0.1", "--set",
                      "kinetic.dt=0.02", "--resume", ck], "checksum")


def test_edited_step_index_is_refused(checkpoint, tmp_path):
    import hashlib

    from fpsolver.runtime.checkpoint import array_checksum
    ck = _copy(checkpoint, tmp_path / "ck")
    path = _npz(ck)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["step_index"] = np.array(int(arrays["step_index"]) + 7)
    meta = json.loads(bytes(arrays["__meta__"]).decode())
    meta["sha256"]["step_index"] = array_checksum(arrays["step_index"])  # a careful forger
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    assert hashlib  # checksums forged: the step agreement still catches it
    with pytest.raises(CheckpointError, match="inconsistent"):
        main(["--debug", "kinetic", "tanh", *KINETIC, "--set", "t_end=0.1", "--set",
              "kinetic.dt=0.02", "--resume", str(ck)])


@pytest.mark.parametrize("manifest", ["{", "[]", '{"format": "fpsolver-checkpoint-2"}',
                                      "[" * 100000])
def test_malformed_checkpoint_manifest(checkpoint, tmp_path, capsys, manifest):
    ck = _copy(checkpoint, tmp_path / "ck")
    (ck / "manifest.json").write_text(manifest)
    _refused(capsys, ["kinetic", "tanh", *KINETIC, "--set", "t_end=0.1", "--resume", ck],
             "manifest")


def test_orphan_temporary_files_are_removed(checkpoint, tmp_path):
    ck = _copy(checkpoint, tmp_path / "ck")
    (ck / ".manifest.json.abc123").write_text("half")
    (_npz(ck).parent / ".rank-0000.npz.xyz").write_bytes(b"half")
    assert main(["kinetic", "tanh", *KINETIC, "--set", "t_end=0.08", "--set",
                 "kinetic.dt=0.02", "--resume", str(ck)]) == 0
    assert not list(ck.rglob(".*.*"))


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ScenarioError):
        main(["--debug", "show", str(tmp_path / "missing.toml")])
