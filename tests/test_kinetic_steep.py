"""`torus-cubic` with default numerics against particles (marked long: `make test-long`).

A user-written 36-site torus (Gaussian kernel, cubic F at balanced means 5.7-12): the
wide initial density (sd 1) under drifts F' from -15 to -50 needs the transient's
artificial diffusion (docs/numerics.md), the steps follow a relaxation at rate ~30, and
the run costs half an hour or more on one core: .ci/run runs it when the time left allows.
Per-site vbar and variance against 10^4 particle pairs per site, within 5 standard errors
plus the O(n^-1/2) offset (tests/test_kinetic_accuracy.py explains the bound).
"""

import json

import pytest
from test_kinetic_accuracy import DATA, KINETIC_REFERENCE, _check_moments, _run

pytestmark = [pytest.mark.slow, pytest.mark.long]


def test_steep_user_scenario_against_particles():
    """Default numerics to t = 2, compared at t = 1 and 2 on every site."""
    ref = json.loads(KINETIC_REFERENCE.read_text())["cases"]["torus-cubic"]
    res = _run(str(DATA / "torus-cubic.toml"), (), tuple(ref["times"]))
    assert res.info["stabilised"], "the transient was expected to need artificial diffusion"
    _check_moments(res, ref, ref["times"], slice(None), ref["n"])
