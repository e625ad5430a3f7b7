"""SIGKILL during an output write leaves every output file complete and readable.

And the folder either one complete version (its manifest matching) or recognisably
unfinished.
"""

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fpsolver.output import read_observables
from fpsolver.rundir import RunFolderError

PROGRAM = Path(__file__).resolve().parent / "programs" / "write_loop.py"


@pytest.mark.parametrize("attempt", range(4))
def test_sigkill_during_write_leaves_previous_output(tmp_path, attempt):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(PROGRAM), str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.strip() == "wrote 1", proc.stderr.read()
        time.sleep(random.uniform(0.0, 0.6))  # somewhere inside a later write
        proc.send_signal(signal.SIGKILL)
        rest = proc.communicate(timeout=30)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    last = int(([first] + rest.split("\n"))[-2 if rest.strip() else 0].split()[1])
    summary = json.loads((out / "summary.json").read_text())
    ds = read_observables(out, verify=False)  # each file is complete on its own
    k = summary["iteration"]
    assert last <= k <= last + 1  # the last complete version, or the one being written
    vbar = ds["vbar"].values
    assert vbar.shape == (2000, 400, 2)
    version = vbar[0, 0, 0]
    assert last <= version <= last + 1 and np.all(vbar == version)
    assert np.all(ds["cov"].values == version)
    assert 'name = "ring-bump"' in (out / "scenario.toml").read_text()
    if (out / "manifest.json").exists():  # the folder claims one version: it is one
        checked = read_observables(out)
        assert np.all(checked["vbar"].values == k) and checked.attrs["run_id"] == (
            summary["run_id"])
    else:  # cut between the first file and the manifest: readers refuse it
        with pytest.raises(RunFolderError, match="did not finish writing"):
            read_observables(out)
    for name in ("summary.json", "observables.nc", "scenario.toml"):  # not mkstemp's 0600
        assert (out / name).stat().st_mode & 0o044 == 0o044 & ~_umask()


def _umask():
    import os
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
