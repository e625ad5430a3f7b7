"""Weak forms of the fluctuation Fokker-Planck equation (MODEL §2b), compiled once.

In conservative form, d_t p = -div J with the probability flux

    J_g = b_g p - 1/2 d_g (D_gg p),   b = F(vbar + y) - <F(vbar + .)>,   D = S S^T,

(S is diagonal here) and the zero-flux boundary J.n = 0 is natural:

    (d_t p, q) = a(p, q) := integral J(p) . grad q dy.

The site enters through two constant vectors, ``vbar`` and ``mF`` = <F(vbar + .)>, held
in :class:`dolfinx.fem.Constant` objects whose values change without recompiling. The
implicit operator uses a shared *reference* (``vbar_r``, ``mF_r``); a site's difference
to it, ``a_site(p, q) - a_ref(p, q)``, is a vector form evaluated explicitly (IMEX).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FPForms", "fp_forms"]


@dataclass
class FPForms:
    """Compiled forms and the constants/functions they read.

    Attributes:
        V: the Lagrange space of the density.
        mass: ``(u, q)``.
        operator: ``a_ref(u, q)`` (bilinear, reference constants).
        explicit: ``a_site(p_work, q) - a_ref(p_work, q)`` (linear), or None when the
            operator does not depend on the site (linear F, additive noise).
        vbar_r, mF_r, vbar_s, mF_s: reference and site constants (shape (2,)).
        p_work: the function ``explicit`` acts on.
        mean_F: scalar forms integral F_a(vbar_s + y) p_work dy, a = e, i.
        qdeg: quadrature degree of every form.
    """

    V: object
    mass: object
    operator: object
    explicit: object | None
    vbar_r: object
    mF_r: object
    vbar_s: object
    mF_s: object
    p_work: object
    mean_F: list
    qdeg: int


def _flux(model, u, y, vbar, mF, ufl):
    F = model.F(vbar[0] + y[0], vbar[1] + y[1], xp=ufl)
    S = model.S_diag(vbar[0] + y[0], vbar[1] + y[1], xp=ufl)
    if model.additive_noise is not None:
        sig = np.diag(model.additive_noise)
        diff = [0.5 * float(sig[g] ** 2) * u.dx(g) for g in range(2)]
    else:
        diff = [0.5 * (S[g] ** 2 * u).dx(g) for g in range(2)]
    return ufl.as_vector([(F[g] - mF[g]) * u - diff[g] for g in range(2)])


def fp_forms(msh, model, degree: int, *, site_dependent: bool) -> FPForms:
    """Compile the mass, reference operator and explicit site-difference forms on ``msh``."""
    import dolfinx_solver  # noqa: F401
    import ufl
    from dolfinx import default_scalar_type, fem

    V = fem.functionspace(msh, ("Lagrange", degree))
    u, q = ufl.TrialFunction(V), ufl.TestFunction(V)
    y = ufl.SpatialCoordinate(msh)
    zero = np.zeros(2, dtype=default_scalar_type)
    vbar_r, mF_r = fem.Constant(msh, zero.copy()), fem.Constant(msh, zero.copy())
    vbar_s, mF_s = fem.Constant(msh, zero.copy()), fem.Constant(msh, zero.copy())
    p_work = fem.Function(V)
    # quadrature: exact for the mass matrix, and for polynomial drifts up to cubic with P2
    qdeg = 2 * degree + 3
    dx = ufl.dx(metadata={"quadrature_degree": qdeg})
    mass = fem.form(ufl.inner(u, q) * dx)
    operator = fem.form(ufl.inner(_flux(model, u, y, vbar_r, mF_r, ufl), ufl.grad(q)) * dx)
    explicit = None
    if site_dependent:
        diff = (_flux(model, p_work, y, vbar_s, mF_s, ufl)
                - _flux(model, p_work, y, vbar_r, mF_r, ufl))
        explicit = fem.form(ufl.inner(diff, ufl.grad(q)) * dx)
    Fs = model.F(vbar_s[0] + y[0], vbar_s[1] + y[1], xp=ufl)
    mean_F = [fem.form(Fs[a] * p_work * dx) for a in range(2)]
    return FPForms(V, mass, operator, explicit, vbar_r, mF_r, vbar_s, mF_s, p_work, mean_F,
                   qdeg)
