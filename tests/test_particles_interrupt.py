"""SIGTERM / SIGINT stop a particle run cleanly: the records reached are kept.

The CLI runs through tests/programs/particles_signal.py (the real `fpsolver` main with a
hook on the stepper): either it announces that it is inside the time loop and the test
signals it from outside, as a scheduler would, or it signals itself at a known step.
"""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from processes import communicate_or_fail

from fpsolver import load_scenario
from fpsolver.output import read_observables
from fpsolver.particles import run as particles_run
from fpsolver.particles import run_particles
from fpsolver.runtime import Interrupted

PROGRAM = Path(__file__).resolve().parent / "programs" / "particles_signal.py"
ARGS = ["particles", "tanh", "--set", "n=200000", "--set", "t_end=50", "--quiet"]


def _start(cwd, args, **env):
    return subprocess.Popen([sys.executable, str(PROGRAM), *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **env})


def _finish(proc, timeout=30):
    return communicate_or_fail(proc, timeout, "no exit after the signal")


def _check_outputs(out, name, t_stop):
    ds = read_observables(out)
    t = ds["time"].values
    assert 0 < len(t) and t[-1] <= t_stop + 1e-12
    assert t_stop - t[-1] < 0.05 + 1e-9  # nothing reached is dropped (record.every)
    for var in ("vbar", "cov", "skewness", "kurtosis"):
        assert np.isfinite(ds[var].values).all(), var
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] == f"{name} at t = {t_stop:.6g}"
    assert summary["series"]["t"] == pytest.approx(t)


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_signal_from_outside_writes_the_records_reached(tmp_path, name):
    sig = signal.Signals[name]
    proc = _start(tmp_path, [*ARGS, "--out", "out"], FPSOLVER_TEST_STEP="5")
    assert proc.stdout.readline() == "in the loop\n"
    proc.send_signal(sig)
    code, _, err = _finish(proc)
    assert code == 3, err
    found = re.search(rf"particle run interrupted by {sig.name} at t = (\S+) \(step (\d+)\); "
                      r"wrote the records up to t = \S+ to out/summary.json and "
                      r"out/observables.nc", err)
    assert found, err
    t_stop, step = float(found[1]), int(found[2])
    assert step >= 5 and t_stop == pytest.approx(step * 1e-3)
    _check_outputs(tmp_path / "out", sig.name, t_stop)


def test_stop_at_a_known_step(tmp_path):
    proc = _start(tmp_path, [*ARGS, "--set", "n=2000", "--out", "out"],
                  FPSOLVER_TEST_STEP="123", FPSOLVER_TEST_SIGNAL="SIGTERM")
    code, out, err = _finish(proc)
    assert code == 3 and out == "", err
    assert ("particle run interrupted by SIGTERM at t = 0.123 (step 123); wrote the "
            "records up to t = 0.1 to") in err
    _check_outputs(tmp_path / "out", "SIGTERM", 0.123)
    assert read_observables(tmp_path / "out")["time"].values == pytest.approx([0, 0.05, 0.1])


def test_without_out_only_the_message(tmp_path):
    proc = _start(tmp_path, [*ARGS, "--set", "n=2000"],
                  FPSOLVER_TEST_STEP="10", FPSOLVER_TEST_SIGNAL="SIGINT")
    code, _, err = _finish(proc)
    assert code == 3 and "interrupted by SIGINT at t = 0.01 (step 10); nothing written" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_second_signal_kills_at_once(tmp_path, name):
    sig = signal.Signals[name]
    proc = _start(tmp_path, [*ARGS, "--set", "n=2000", "--out", "out"],
                  FPSOLVER_TEST_STEP="10", FPSOLVER_TEST_SIGNAL=sig.name,
                  FPSOLVER_TEST_SIGNAL_COUNT="2")
    code, _, err = _finish(proc)
    assert code == -sig, err  # killed by the signal (SIGINT: an uncaught KeyboardInterrupt)
    out = tmp_path / "out"  # created and test-written before the run: holds no result
    assert not (out / "manifest.json").exists() and not (out / "summary.json").exists()


def test_api_raises_interrupted_with_the_partial_result(monkeypatch):
    class Stepper(particles_run.NumbaStepper):
        done = 0

        def step(self):
            super().step()
            self.done += 1
            if self.done == 120:
                os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(particles_run, "NumbaStepper", Stepper)
    before = signal.getsignal(signal.SIGINT)
    sc = load_scenario("ring-bump", ["n=1024", "t_end=5", "space.sites=8",
                                     "record.snapshots=[0.1, 0.2]"])
    with pytest.raises(Interrupted, match=r"SIGINT after step 120 \(t = 0\.12\); its "
                                          r"\.result holds the records up to t = 0\.1$") as e:
        run_particles(sc, progress=False)
    assert signal.getsignal(signal.SIGINT) is before
    r = e.value.result
    assert r.t == pytest.approx([0, 0.05, 0.1]) and r.vbar.shape == (3, 8, 2)
    assert r.extra["fourier1_re"][1].shape == (3, 2)
    assert r.extra["state"][1].shape[0] == 1 and r.extra["snapshot_time"][1].tolist() == [0.1]
    assert np.isfinite(r.cov).all() and np.isfinite(r.extra["state"][1]).all()
    assert r.info["interrupted"] == "SIGINT at t = 0.12" and r.info["steps"] == 120
