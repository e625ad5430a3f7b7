"""`fpsolver spectrum SCENARIO --steady DIR`: the spectrum starts from a stored stationary state.

The folder of `fpsolver steady` is read-only input, verified (manifest checksums, a
stationary state with its densities) and refused when it belongs to another model. Its
densities are evaluated on the spectrum's wider box, so Newton starts at the solution:
one step (tanh with cubic F, a non-Gaussian density: 1 step instead of 5, the same
eigenvalues to 1e-9).
"""

import json
import shutil

import numpy as np
import pytest

from fpsolver.cli import main

CUBIC = ["--set", 'dynamics.family="cubic"', "--set", "dynamics.cubic=[0.3, 0.3]"]


@pytest.fixture(scope="module")
def steady_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("steady") / "tanh-cubic"
    assert main(["steady", "tanh", *CUBIC, "--out", str(out)]) == 0
    return out


def _spectrum(capsys, *args):
    capsys.readouterr()
    assert main(["spectrum", "tanh", *CUBIC, "--count", "2", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_spectrum_from_a_steady_folder_starts_at_the_solution(steady_dir, capsys):
    before = {p.name: p.read_bytes() for p in steady_dir.iterdir() if p.is_file()}
    fresh = _spectrum(capsys)
    started = _spectrum(capsys, "--steady", str(steady_dir))
    assert fresh["steady"]["start"] == "gaussian closure"
    assert started["steady"]["start"] == str(steady_dir)
    assert sum(started["steady"]["newton_per_mesh"]) <= 2
    assert sum(started["steady"]["newton_per_mesh"]) < sum(fresh["steady"]["newton_per_mesh"])
    np.testing.assert_allclose(started["steady"]["vbar"], fresh["steady"]["vbar"], atol=1e-9)
    np.testing.assert_allclose(started["eigenvalues"], fresh["eigenvalues"], atol=1e-8)
    # read only: the folder is unchanged
    assert {p.name: p.read_bytes() for p in steady_dir.iterdir() if p.is_file()} == before


def test_spectrum_refuses_a_steady_folder_of_another_scenario(steady_dir, capsys):
    code = main(["spectrum", "tanh", *CUBIC, "--set", "populations.e.sigma=0.9",
                 "--count", "2", "--steady", str(steady_dir)])
    err = capsys.readouterr().err
    assert code == 2
    assert "--steady" in err and "populations.e.sigma" in err and "fix:" in err


@pytest.mark.parametrize("damage", ["empty", "altered", "kinetic", "same-as-out"])
def test_spectrum_refuses_a_bad_steady_folder(steady_dir, tmp_path, damage, capsys):
    bad = tmp_path / "bad"
    extra = []
    if damage == "empty":
        bad.mkdir()
    elif damage == "altered":
        shutil.copytree(steady_dir, bad)
        data = bytearray((bad / "observables.nc").read_bytes())
        data[-8:] = bytes(b ^ 0xFF for b in data[-8:])
        (bad / "observables.nc").write_bytes(bytes(data))
    elif damage == "kinetic":
        assert main(["gaussian", "tanh", "--set", "t_end=0.1", "--out", str(bad)]) == 0
    else:
        bad = steady_dir
        extra = ["--out", str(steady_dir)]
    capsys.readouterr()
    code = main(["spectrum", "tanh", *CUBIC, "--count", "2", "--steady", str(bad), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert f"--steady {bad}" in err and "fix:" in err
