"""Positions x_j of the n pairs, their recording bins and the initial state (MODEL §1, §2d).

- ``grid``: n / sites pairs at every site of ``model.sites`` (pairs ordered by site).
- ``regular`` (ring): x_j = 2 pi j / n.
- ``iid`` (ring, torus): x_j uniform, drawn from the scenario seed (its own stream).

Every pair is recorded in the bin of its nearest site. The initial state is
v^j(0) = vbar(x_j, 0) + y^j with y^j ~ N(0, K0) and vbar(., 0) solving the balance
constraint with Gaussian expectations (MODEL §2d); between ring sites vbar(., 0) is
interpolated linearly (periodically).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from fpsolver.balance import BalanceConstraint
from fpsolver.errors import ScenarioError
from fpsolver.gaussian import gaussian_expectations
from fpsolver.model import Model
from fpsolver.scenario import Scenario

__all__ = ["Layout", "make_layout", "initial_means", "POSITION_STREAM"]

logger = logging.getLogger(__name__)
POSITION_STREAM = 1  # SeedSequence([seed, 1]) draws iid positions


@dataclass
class Layout:
    """Where the pairs are.

    Attributes:
        x: positions (n, dim).
        bins: nearest site of each pair (n,), int64.
        cs: (cos x_j, sin x_j), shape (n, 2), on the ring; else ``None``.
        cosine: the balanced input uses the exact cosine features (ring, cosine kernel).
        exact: ``False`` if the kernel is approximated by binning to sites.
    """

    x: np.ndarray
    bins: np.ndarray
    cs: np.ndarray | None
    cosine: bool
    exact: bool


def make_layout(model: Model, sc: Scenario) -> Layout:
    """Positions and bins of the scenario's ``n`` pairs on the model's sites."""
    n, kind, how = sc.n, model.sites.kind, sc.space.positions
    B = model.n_sites
    if how == "grid" or kind == "point":
        if n % B:
            raise ScenarioError("n", f"n={n} is not a multiple of the {B} sites (grid positions)",
                                "choose n divisible by the number of sites")
        bins = np.repeat(np.arange(B, dtype=np.int64), n // B)
        x = model.sites.points[bins]
    elif kind == "ring":
        if how == "regular":
            x = (2 * np.pi * np.arange(n) / n)[:, None]
        else:
            rng = np.random.Generator(np.random.SFC64(np.random.SeedSequence(
                [sc.seed, POSITION_STREAM])))
            x = rng.uniform(0.0, 2 * np.pi, size=(n, 1))
        bins = model.sites.nearest(x).astype(np.int64)
    elif kind == "torus" and how == "iid":
        rng = np.random.Generator(np.random.SFC64(np.random.SeedSequence(
            [sc.seed, POSITION_STREAM])))
        x = rng.uniform(0.0, 2 * np.pi, size=(n, 2))
        bins = model.sites.nearest(x).astype(np.int64)
    else:
        raise ScenarioError("space.positions", f"'{how}' positions are not supported on a "
                            f"{kind} space by the particle simulator",
                            "use space.positions = 'grid' (pairs on the sites)"
                            + (" or 'iid'" if kind == "torus" else ""))
    cosine = model.kernel_modes is not None and kind == "ring"
    cs = np.column_stack([np.cos(x[:, 0]), np.sin(x[:, 0])]) if kind == "ring" else None
    exact = cosine or how == "grid" or kind == "point"
    if not exact:
        logger.warning("space.positions=%s with kernel %s: J(x_j, x_k) and A(x_j) are "
                       "evaluated at the nearest of %d sites (binning, error O(site spacing))",
                       how, model.family("J").name, B)
    return Layout(x=x, bins=bins, cs=cs, cosine=cosine, exact=exact)


def initial_means(model: Model, layout: Layout, sc: Scenario) -> np.ndarray:
    """Initial means vbar(x_j, 0) of every pair, shape (n, 2).

    From the balance constraint (MODEL §2d) with the scenario's initial covariance.
    """
    K0 = np.array(sc.initial.cov)
    constraint = BalanceConstraint(model)
    vbar0, _ = constraint.solve(lambda v: gaussian_expectations(model, v, K0),
                                np.zeros((model.n_sites, 2)), where=" at t = 0 (particles)")
    if model.sites.kind == "ring" and sc.space.positions != "grid":
        xs = model.sites.points[:, 0]
        period = 2 * np.pi
        return np.column_stack([np.interp(layout.x[:, 0], xs, vbar0[:, a], period=period)
                                for a in range(2)])
    return vbar0[layout.bins]
