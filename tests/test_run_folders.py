"""An output folder holds one run (issue 9): manifest, run id, --overwrite, lock, full disk."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from processes import communicate_or_fail

from fpsolver.cli import main
from fpsolver.output import read_observables
from fpsolver.rundir import RunFolder, RunFolderError, verify_run_folder

QUICK = ["--set", "t_end=0.05"]
FPSOLVER = [sys.executable, "-m", "fpsolver"]


def _files(out: Path) -> dict:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def test_every_file_carries_the_run_id_and_the_manifest_lists_them(tmp_path):
    assert main(["gaussian", "tanh", *QUICK, "--out", str(tmp_path)]) == 0
    manifest = verify_run_folder(tmp_path)
    run_id = manifest["run_id"]
    assert manifest["status"] == "complete"
    assert set(manifest["files"]) == {"summary.json", "observables.nc", "scenario.toml"}
    assert json.loads((tmp_path / "summary.json").read_text())["run_id"] == run_id
    assert read_observables(tmp_path).attrs["run_id"] == run_id
    assert run_id in (tmp_path / "scenario.toml").read_text()


def test_a_second_run_is_refused_and_overwrite_replaces_the_whole_set(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["gaussian", "tanh", *QUICK, "--out", str(out)]) == 0
    for extra in ("snapshots", "checkpoint"):  # left by an earlier kinetic run
        (out / extra).mkdir()
        (out / extra / "old.bin").write_bytes(b"old")
    (out / "stability.json").write_text("{}")
    before = _files(out)
    assert main(["gaussian", "tanh", *QUICK, "--out", str(out)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert _files(out) == before
    assert main(["gaussian", "tanh", *QUICK, "--out", str(out), "--overwrite"]) == 0
    assert not (out / "snapshots").exists() and not (out / "checkpoint").exists()
    assert not (out / "stability.json").exists()
    verify_run_folder(out)


def test_readers_refuse_mixed_and_incomplete_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["gaussian", "tanh", *QUICK, "--out", str(a)]) == 0
    assert main(["gaussian", "linear", *QUICK, "--out", str(b)]) == 0
    shutil.copy(b / "summary.json", a / "summary.json")  # a new summary beside old data
    with pytest.raises(RunFolderError, match="checksum"):
        read_observables(a)
    (b / "manifest.json").unlink()  # cut before the marker
    with pytest.raises(RunFolderError, match="did not finish writing"):
        read_observables(b)


def test_stability_output_is_one_run_too(tmp_path):
    assert main(["stability", "linear", "--out", str(tmp_path)]) == 0
    manifest = verify_run_folder(tmp_path)
    assert set(manifest["files"]) == {"stability.json", "scenario.toml"}
    with pytest.raises(RunFolderError, match="without observables"):
        read_observables(tmp_path)


def test_lock_refuses_a_concurrent_writer(tmp_path):
    with RunFolder(tmp_path / "out"):
        with pytest.raises(RunFolderError, match="another fpsolver run"):
            RunFolder(tmp_path / "out").__enter__()
    with RunFolder(tmp_path / "out"):  # released
        pass


def test_two_concurrent_runs_into_one_folder(tmp_path):
    out = tmp_path / "out"
    args = ["particles", "tanh", "--set", "n=2000", "--set", "t_end=1", "--quiet",
            "--out", str(out)]
    procs = [subprocess.Popen(FPSOLVER + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    results = [communicate_or_fail(p, 300, "concurrent particle run") for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 2], results
    loser = next(r for r in results if r[0] == 2)[2]
    assert ("another fpsolver run is writing" in loser or "already holds a run" in loser)
    assert "Traceback" not in loser
    manifest = verify_run_folder(out)
    assert json.loads((out / "summary.json").read_text())["run_id"] == manifest["run_id"]


def test_interrupted_run_is_marked_and_never_replaces_a_complete_one(tmp_path):
    out = tmp_path / "out"
    assert main(["particles", "tanh", "--set", "n=200", *QUICK, "--quiet", "--out",
                 str(out)]) == 0
    before = _files(out)
    program = Path(__file__).resolve().parent / "programs" / "particles_signal.py"
    env = {**os.environ, "FPSOLVER_TEST_STEP": "20", "FPSOLVER_TEST_SIGNAL": "SIGTERM"}
    run = [sys.executable, str(program), "particles", "tanh", "--set", "n=200", "--quiet"]
    proc = subprocess.run(run + ["--out", str(out)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "already holds a run" in proc.stderr
    assert _files(out) == before  # the complete result is untouched
    fresh = tmp_path / "fresh"
    proc = subprocess.run(run + ["--out", str(fresh)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    manifest = verify_run_folder(fresh)
    assert manifest["status"] == "interrupted"
    assert json.loads((fresh / "summary.json").read_text())["status"] == "interrupted"
    assert read_observables(fresh).attrs["status"] == "interrupted"


def test_sigterm_while_writing_completes_the_outputs(tmp_path, monkeypatch):
    import signal

    import fpsolver.output as output

    real = output.atomic_write

    def slow(path, write):  # the signal arrives in the middle of the output writing
        if Path(path).name == "summary.json":
            os.kill(os.getpid(), signal.SIGTERM)
        real(path, write)
    monkeypatch.setattr(output, "atomic_write", slow)
    assert main(["gaussian", "tanh", *QUICK, "--out", str(tmp_path)]) == 0
    verify_run_folder(tmp_path)


@pytest.fixture
def small_fs(tmp_path):
    """A 2 MB tmpfs (needs root and mount rights; skipped otherwise, saying why)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot make a small file system here (mount -t tmpfs: "
                    f"{proc.stderr.strip() or proc.returncode}); the full-disk case is "
                    "covered by the checks, not by a real full disk")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_is_refused_before_the_work(small_fs, capsys):
    assert main(["particles", "ring-bump", "--set", "n=4000", "--set", "space.sites=400",
                 "--set", "t_end=20", "--set", "record.every=0.001", "--set", "dt=0.001",
                 "--quiet", "--out", str(small_fs / "out")]) == 2
    err = capsys.readouterr().err
    assert "free" in err and "Traceback" not in err


def test_disk_full_while_writing_leaves_a_refused_folder(small_fs, capsys):
    out = small_fs / "out"
    (small_fs / "filler").write_bytes(b"\0" * (2 * 2**20 - 200 * 1024))
    code = main(["gaussian", "ring-oscillation", "--set", "space.sites=256", "--set",
                 "t_end=1", "--set", "record.every=0.001", "--set", "kinetic.dt=0.01",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "No space left" in err and "Traceback" not in err, err
    with pytest.raises(RunFolderError):
        read_observables(out)
    assert not list(out.glob(".*.nc.*")) and not list(out.glob(".summary*"))
