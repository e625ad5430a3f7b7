"""Bad numbers: NaN/Inf in a field, or a negative/vanishing mass, stop the run.

:func:`check_state` is what a time loop calls after each step (or every few steps). It
looks at this rank's fields, then agrees across ranks (one ``allreduce``), so every
rank raises :class:`NumericalError` together, naming the step, time, site and quantity
of the first problem found (lowest rank first). The loop then saves its last good state
(:class:`fpsolver.runtime.RunControl` does both).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from fpsolver.errors import NumericalError
from fpsolver.runtime.parallel import run_shared

__all__ = ["NumericalError", "find_bad_numbers", "check_state"]


def _entries(fields: Mapping) -> list[tuple[object, str, np.ndarray]]:
    """Normalise to (site, quantity, values).

    Keys are ``name`` (leading axis = site) or ``(site, name)``.
    """
    out = []
    for key, value in fields.items():
        if isinstance(key, tuple):
            site, name = key
            out.append((site, str(name), np.asarray(value)))
        else:
            out.append((None, str(key), np.asarray(value)))
    return out


def find_bad_numbers(fields: Mapping, masses: Mapping | None = None, *,
                     mass_floor: float = 0.0, site_offset: int = 0) -> dict | None:
    """The first problem in this rank's data, or None.

    Args:
        fields: ``name -> array`` (axis 0 indexes the sites, ``site_offset`` onwards) or
            ``(site, name) -> array``; every value must be finite.
        masses: the same keys -> the mass of each site; must be finite and > mass_floor.
        mass_floor: smallest acceptable mass (0: the mass must be positive).
        site_offset: global index of this rank's first site (for the report).

    Returns:
        ``{"problem", "site", "quantity"}`` or None.
    """
    for site, name, values in _entries(fields):
        if values.dtype.kind not in "fc":
            continue
        bad = ~np.isfinite(values)
        if bad.any():
            first = np.argwhere(bad)[0]
            kind = "NaN" if np.isnan(values[tuple(first)]) else "Inf"
            if site is None and values.ndim:
                site = int(first[0]) + site_offset
            return {"problem": f"{kind} value", "site": site, "quantity": name}
    for site, name, values in _entries(masses or {}):
        values = np.atleast_1d(values)
        bad = ~(np.isfinite(values) & (values > mass_floor))
        if bad.any():
            i = int(np.argwhere(bad)[0][0])
            if site is None:
                site = i + site_offset if values.size > 1 or site_offset else None
            return {"problem": f"mass {values[i]:.6g} (must be > {mass_floor:g})",
                    "site": site, "quantity": f"the mass of {name}"}
    return None


def check_state(fields: Mapping, *, step: int, time: float, comm=None,
                masses: Mapping | None = None, mass_floor: float = 0.0,
                site_offset: int = 0, saved=None) -> None:
    """Raise :class:`NumericalError` on every rank if any rank's state is bad; collective.

    See :func:`find_bad_numbers` for ``fields`` and ``masses``; ``saved`` names where the
    last good state was written (for the message).
    """
    def local():
        found = find_bad_numbers(fields, masses, mass_floor=mass_floor,
                                 site_offset=site_offset)
        if found:
            raise NumericalError(found["problem"], step=step, time=time, site=found["site"],
                                 quantity=found["quantity"], saved=saved)
    run_shared(comm, local)
