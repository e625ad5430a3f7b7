"""Stability analysis (MODEL §4) and finite-n offset (§2c) against MODEL's numbers."""

import numpy as np
import pytest

from fpsolver.errors import BalanceError
from fpsolver.scenario import load_scenario
from fpsolver.stability import analyse_stability


def test_ring_oscillation_mode_one_has_eigenvalues_plus_minus_i():
    report = analyse_stability(load_scenario("ring-oscillation"))
    # Mode 1 block [[1, -2], [1, -1]]: trace 0, det 1 -> +-i exactly (MODEL §5).
    np.testing.assert_allclose(sorted(report.modes[1].imag), [-1, 1], atol=1e-12)
    np.testing.assert_allclose(report.modes[1].real, 0, atol=1e-12)
    assert report.verdict == "oscillating"
    assert report.frequency == pytest.approx(np.sqrt(100))
    assert np.all(report.modes[0].real < 0)


def test_linear_offset_matches_model():
    report = analyse_stability(load_scenario("linear"))
    assert report.verdict == "attracting"
    # MODEL §5: predicted finite-n means at n = 40000 are (0.50375, 0.99750).
    np.testing.assert_allclose(report.vbar_mean + report.offset, [0.50375, 0.99750], atol=1e-12)


def test_json_eigenvalues_have_re_and_im():
    d = analyse_stability(load_scenario("tanh")).to_dict()
    assert set(d["eigenvalues"][0]) == {"re", "im"} and d["verdict"] == "attracting"


def test_input_beyond_tanh_saturation_has_no_balanced_state():
    # <tanh> < 1, so A_e = 1.5 > C_ei = 1 cannot be cancelled.
    with pytest.raises(BalanceError, match="fpsolver stability"):
        analyse_stability(load_scenario("tanh", ["populations.e.input=1.5"]))


def test_positive_feedback_is_unstable():
    # Strong e->e excitation: block [[1, -1], [1, -0.5]] has trace 0.5 > 0, det 0.5 > 0.
    report = analyse_stability(load_scenario("linear", ["gains.ee=1.0"]))
    assert report.verdict == "unstable"
