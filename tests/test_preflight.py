"""Memory before a run: the site limit comes from the estimate and the machine's memory.

The dense coupling of the sites grows like sites^2, so it decides how many sites fit; a
lattice whose coupling runs by FFT has none in the kinetic solver. Too many sites for
the memory given are refused naming ``space.sites``, with the count that fits.
"""

import math

import pytest

from fpsolver import load_scenario
from fpsolver.errors import PreflightError
from fpsolver.preflight import DENSE_BYTES, estimate, memory_report, preflight

RING = ["space.positions='regular'", "t_end=0.05"]  # any site count (n need not divide)


def test_estimate_grows_like_sites_squared_on_the_dense_route():
    """ring-bump (cosine kernel, rank 6): W, U and the Newton matrices are dense."""
    est = estimate(load_scenario("ring-bump", RING + ["space.sites=8"]), "kinetic")
    assert est.need(8) == est.bytes
    big = 10**6
    assert est.need(2 * big) / est.need(big) == pytest.approx(4, rel=0.02)
    assert est.need(big) == pytest.approx(DENSE_BYTES["kinetic"] * big**2, rel=0.02)


def test_estimate_grows_like_sites_on_the_fft_route():
    """The sheet (exponential kernel on a torus lattice): the balance runs by FFT."""
    est = estimate(load_scenario("sheet", ["space.sites=4", "t_end=0.05"]), "kinetic")
    big = 10**5
    assert est.need(2 * big) / est.need(big) == pytest.approx(2, rel=0.02)


def test_sites_whose_dense_coupling_cannot_fit_are_refused_before_the_model():
    sc = load_scenario("ring-bump", RING + ["space.sites=2048"])
    with pytest.raises(PreflightError) as info:
        preflight(sc, "kinetic", memory=5e8)
    message = str(info.value)
    fit = math.isqrt(int(5e8 / DENSE_BYTES["kinetic"]))  # 1581 sites
    assert "'space.sites': 2048 sites need about 839 MB" in message
    assert "500 MB available" in message and f"space.sites = {fit} or fewer" in message


def test_sites_that_make_the_run_too_large_are_refused_with_the_count_that_fits():
    """512 sites: 0.75 GB of densities and coupling out of 1.1 GB; what fits passes."""
    sc = load_scenario("ring-bump", RING + ["space.sites=512", "kinetic.cells=48"])
    memory = 0.8e9
    with pytest.raises(PreflightError) as info:
        preflight(sc, "kinetic", memory=memory)
    message = str(info.value)
    assert "'space.sites': 512 sites need about" in message and "800 MB available" in message
    fit = int(message.split("fix: space.sites = ")[1].split()[0])
    assert 100 < fit < 512
    preflight(load_scenario("ring-bump", RING + [f"space.sites={fit}", "kinetic.cells=48"]),
              "kinetic", memory=memory)
    with pytest.raises(PreflightError, match="space.sites"):
        preflight(load_scenario("ring-bump", RING + [f"space.sites={fit + 1}",
                                                     "kinetic.cells=48"]),
                  "kinetic", memory=memory)


def test_torus_sites_are_refused_per_side():
    sc = load_scenario("linear", ["space.kind='torus'", "space.sites=64",
                                  "space.positions='regular'"])
    with pytest.raises(PreflightError) as info:  # stability: its Jacobian is dense
        preflight(sc, "stability", memory=1e9)
    side = math.isqrt(math.isqrt(int(1e9 / DENSE_BYTES["stability"])))
    assert f"space.sites = {side} or fewer ({side**2} sites)" in str(info.value)


def test_memory_report_sets_the_peak_beside_the_estimate(caplog):
    info = {"peak_memory": 1.2e9, "peak_memory_rank": 0.7e9, "peak_memory_per_site": 1.2e6,
            "ranks": 2, "memory_estimate": 1.1e9}
    assert memory_report(info) == ("memory: peak 1.2 GB (1.2 MB per site; largest rank "
                                   "700 MB; estimate 1.1 GB)")
    assert "estimate is low" not in caplog.text
    memory_report({**info, "peak_memory": 2.5e9})
    assert "estimate is low" in caplog.text and "recalibrate" in caplog.text
    refined = {**info, "peak_memory": 2.5e9, "refinements": [[38, [96, 96]]],
               "cells": [96, 96]}
    assert "estimate 1.1 GB before the mesh was refined to 96x96 cells" in memory_report(
        refined)
    assert "the run refined to 96x96 cells" in caplog.text


def test_a_job_over_several_nodes_has_their_memory():
    """64 ranks, 16 per node: four machines' memory; the same job on one node is refused."""
    sc = load_scenario("ring-bump", RING + ["space.sites=512", "kinetic.cells=48"])
    need = estimate(sc, "kinetic", comm_size=64).bytes
    memory = 0.5 * need  # per machine: half the job, so two machines would do
    preflight(sc, "kinetic", comm_size=64, node_ranks=16, memory=memory)
    with pytest.raises(PreflightError):
        preflight(sc, "kinetic", comm_size=64, node_ranks=64, memory=memory)
