"""The 2-d Ornstein-Uhlenbeck check problem with an exact Gaussian solution.

    d_t p = div(A y p) + 1/2 div(D grad p),   A = diag(1, 2),  D = diag(1, 0.64),

on the box [-4, 4]^2 with zero flux, from N(m0, K0), m0 = (1, -0.5), K0 = diag(0.3, 0.2).
The exact density is N(exp(-A t) m0, K(t)) with the Lyapunov K(t) of MODEL §3. It is the
kinetic solver's operator for linear F = -A v with additive noise in the fixed frame
(y = z, vbar = <F> = 0), so it checks the spatial and temporal discretisation (density
L1 error, discrete mean and covariance) of :mod:`fpsolver.kinetic.densities` and
:mod:`fpsolver.kinetic.imex` on their own.
"""

from __future__ import annotations

import time

import numpy as np

from fpsolver.gaussian import lyapunov_covariance
from fpsolver.kinetic.densities import SiteDensities
from fpsolver.kinetic.imex import ImexScheme
from fpsolver.kinetic.meshing import state_mesh
from fpsolver.model import build_model
from fpsolver.scenario import scenario_from_dict

__all__ = ["ou_scenario", "solve_ou", "OU_A", "OU_D", "OU_M0", "OU_K0"]

OU_A = np.diag([1.0, 2.0])
OU_D = np.diag([1.0, 0.64])
OU_M0 = np.array([1.0, -0.5])
OU_K0 = np.diag([0.3, 0.2])


def ou_scenario(degree=2, cells=64, dt=0.01, scheme="bdf2", half_width=4.0, t_end=2.0):
    """A scenario whose kinetic operator is the OU problem (tau = 1/A, sigma = sqrt(D))."""
    return scenario_from_dict({
        "t_end": t_end,
        "populations": {"e": {"tau": 1.0, "sigma": 1.0}, "i": {"tau": 0.5, "sigma": 0.8}},
        "initial": {"cov": OU_K0.tolist()},
        "kinetic": {"degree": degree, "cells": cells, "dt": dt, "scheme": scheme,
                    "half_width": half_width, "frame": "fixed"}})


def solve_ou(comm, degree=2, cells=64, dt=0.01, scheme="bdf2", t_end=2.0,
             half_width=4.0, grading=0.0) -> dict:
    """Solve the OU problem; errors against the exact solution at ``t_end``.

    ``grading``: sinh grading of the box (:func:`~fpsolver.kinetic.meshing.grade`).

    Returns:
        dict with ``l1`` (density L1 error), ``mean``/``cov`` (discrete) and
        ``mean_exact``/``cov_exact``, ``mass`` (``mass0`` initially), ``seconds`` (wall
        time of the solve, setup excluded), ``setup``, ``dofs``.
    """
    start = time.perf_counter()
    sc = ou_scenario(degree, cells, dt, scheme, half_width, t_end)
    model = build_model(sc)
    smesh = state_mesh(comm, "box", half_width, cells, grading)
    dens = SiteDensities(comm, np.array([0]), model, smesh, degree, OU_K0, OU_M0)
    scheme_ = ImexScheme(dens, scheme, {})
    P = np.array([[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]])  # vbar = <F> = 0, ell = 1
    q = dens.quad
    steps = int(round(t_end / dt))
    mass0 = comm.allreduce(float(q.moments(dens.q[0])[0]))
    setup = time.perf_counter() - start
    start = time.perf_counter()
    for n in range(steps):
        scheme_.step(P, P, dt, f" at step {n + 1}")
    seconds = time.perf_counter() - start
    t = steps * dt
    K = lyapunov_covariance(OU_A, OU_D, OU_K0, np.array([t]))[0]
    m = np.exp(-np.diag(OU_A) * t) * OU_M0
    Pk = np.linalg.inv(K)
    d = q.points - m
    exact = (np.exp(-0.5 * np.einsum("qi,ij,qj->q", d, Pk, d))
             / (2 * np.pi * np.sqrt(np.linalg.det(K))))
    w = q.weights(dens.q[0])
    l1 = comm.allreduce(float(np.abs(w - exact * q.dx).sum()))
    raw = comm.allreduce(q.moments(dens.q[0]))
    mean = raw[1:3] / raw[0]
    cov = np.array([[raw[3], raw[4]], [raw[4], raw[5]]]) / raw[0] - np.outer(mean, mean)
    return {"l1": l1, "mean": mean, "cov": cov, "mean_exact": m, "cov_exact": K,
            "mass": raw[0], "mass0": mass0, "seconds": seconds, "setup": setup,
            "dofs": dens.V.dofmap.index_map.size_global}
