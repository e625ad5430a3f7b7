"""Density snapshots: VTX files for ParaView and marginal densities on a grid.

At each snapshot step the marginals of y_e and y_i of every site are binned on a
fixed grid (``marginal_e(snapshot, site, grid_e)``, density units, so they compare
directly with particle histograms on the same bins). If a directory is given, the
densities of up to :data:`MAX_VTX_SITES` evenly chosen sites are also written with
:class:`dolfinx.io.VTXWriter` (``site_XXXX.bp``, one time step per snapshot).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["SnapshotWriter", "MAX_VTX_SITES", "marginal_edges"]

MAX_VTX_SITES = 4
BINS = 80


def marginal_edges(radius: float, bins: int = BINS) -> np.ndarray:
    return np.linspace(-radius, radius, bins + 1)


class SnapshotWriter:
    """Records marginals (all ranks) and VTX files (site groups) at ``steps``."""

    def __init__(self, stepper, directory, steps):
        self.stepper, self.steps = stepper, list(steps)
        r = stepper.smesh.radius
        self.edges = [marginal_edges(r), marginal_edges(r)]
        self.times, self.marg = [], [[], []]
        self.writers = {}
        if directory is not None and self.steps:
            import dolfinx_solver  # noqa: F401
            from dolfinx import fem
            from dolfinx.io import VTXWriter

            directory = Path(directory)
            if stepper.comm.rank == 0:
                directory.mkdir(parents=True, exist_ok=True)
            stepper.comm.Barrier()
            B = stepper.B
            chosen = set(np.unique(np.linspace(0, B - 1, min(B, MAX_VTX_SITES)).round()
                                   .astype(int)).tolist())
            g = stepper.group
            for j, site in enumerate(g.sites):
                if site in chosen:
                    f = fem.Function(g.V, name="density")
                    self.writers[j] = (f, VTXWriter(g.comm, directory / f"site_{site:04d}.bp",
                                                    [f], engine="BP4"))

    def write(self, t: float) -> None:
        me, mi = self.stepper.marginals(self.edges)
        self.times.append(t)
        self.marg[0].append(me)
        self.marg[1].append(mi)
        for j, (f, w) in self.writers.items():
            f.x.array[:] = self.stepper.group.p[j]
            w.write(t)

    def close(self) -> None:
        for _, w in self.writers.values():
            w.close()

    def extras(self) -> dict:
        if not self.times:
            return {}
        out = {"snapshot_time": (("snapshot",), np.array(self.times), {"units": "time"})}
        for b, name in enumerate("ei"):
            centres = 0.5 * (self.edges[b][1:] + self.edges[b][:-1])
            out[f"grid_{name}"] = ((f"grid_{name}",), centres, {"long_name": f"y_{name} bins"})
            out[f"marginal_{name}"] = (("snapshot", "site", f"grid_{name}"),
                                       np.array(self.marg[b]),
                                       {"long_name": f"marginal density of y_{name}"})
        return out
