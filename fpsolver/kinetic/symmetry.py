"""Sites that the model's symmetry makes identical: solved once, copied to the others.

On a ring or torus lattice with a translation-invariant kernel (:mod:`fpsolver.circulant`)
(F, S and G depend on the voltages only, never on the position), a lattice translation T
that leaves the inputs A_a(x) unchanged maps solutions to solutions: the initial data
are the same at every site (MODEL §2d), and the balance constraint and every site's
Fokker-Planck equation commute with T. The kinetic limit's solution is unique, so it is
T-invariant: the sites of one orbit {T^k x} carry the same density, vbar and frame at all
times. The built-in input A_a(x) = A_a + A_a' cos(x_1) is invariant along x_2 on every
torus, and along all axes when A_a' = 0.

So only one site per orbit (its *representative*, the orbit's first site) is solved, with
the orbits' coupling summed: for representatives j, k'

    W_red[a, b, j, k'] = sum_{k in orbit k'} W[a, b, j, k],

which gives each representative exactly the balance sum of the full lattice. An m x m
torus with a stripe input has m distinct sites instead of m^2 (the shipped ``sheet``: 32
of 1024). The result is the same discretisation of the same solution, copied to every
site of an orbit; ``run_kinetic(..., symmetry=False)`` solves every site (the check).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from fpsolver.circulant import circulant_coupling, lattice_shape

__all__ = ["Orbits", "site_orbits", "reduced_model"]

_INVARIANT = 1e-14  # relative change of the inputs under a translation that counts as none


@dataclass
class Orbits:
    """The sites' orbits under the model's lattice translations.

    Attributes:
        representatives: (R,) the first site of every orbit, increasing.
        index: (S,) position in ``representatives`` of every site's orbit.
        axes: the lattice axes along which every translation is a symmetry.
    """

    representatives: np.ndarray
    index: np.ndarray
    axes: tuple

    def describe(self) -> str:
        """One line for the log."""
        along = " and ".join(f"x_{a + 1}" for a in self.axes)
        return (f"the inputs and the kernel are invariant along {along}: "
                f"{len(self.representatives)} distinct sites of {len(self.index)} solved, "
                "copied to their translates (exact)")


def site_orbits(model) -> Orbits | None:
    """The orbits of ``model``'s sites, or None if no site has a translate to share with."""
    shape = lattice_shape(model.sites)
    if shape is None or circulant_coupling(model) is None:
        return None
    S = model.n_sites
    A = model.inputs.reshape(*shape, 2)
    scale = max(np.abs(A).max(), 1e-300)
    axes = tuple(ax for ax in range(len(shape))
                 if np.abs(np.roll(A, 1, axis=ax) - A).max() <= _INVARIANT * scale)
    if not axes:
        return None
    coords = np.indices(shape).reshape(len(shape), S)
    coords[list(axes)] = 0                          # the orbit's first site
    first = np.ravel_multi_index(tuple(coords), shape)
    reps, index = np.unique(first, return_inverse=True)
    return Orbits(representatives=reps, index=index.ravel(), axes=axes)


def reduced_model(model, orbits: Orbits):
    """The model on the representatives, with each orbit's kernel columns summed.

    A representative's weight is its orbit's (the sum of its sites' weights).
    """
    from fpsolver.space import Sites

    reps, index = orbits.representatives, orbits.index
    w = model.sites.weights
    w_red = np.bincount(index, weights=w, minlength=len(reps))
    sites = Sites(kind=model.sites.kind, points=model.sites.points[reps], weights=w_red)
    kernel = _orbit_kernel(model.kernel_rows(reps), index, w, w_red)
    return replace(model, sites=sites, _kernel=kernel)


def _orbit_kernel(rows: np.ndarray, index: np.ndarray, w: np.ndarray, w_red: np.ndarray):
    """J_red[a, b, j, k'] = sum_{k in orbit k'} J[a, b, j, k] w_k / w_red[k'].

    So that s_b J_red w_red is the summed coupling W_red.
    """
    out = np.zeros(rows.shape[:3] + (len(w_red),))
    for k_red in range(len(w_red)):
        members = np.flatnonzero(index == k_red)
        out[..., k_red] = (rows[..., members] * w[members]).sum(axis=-1) / w_red[k_red]
    return out
