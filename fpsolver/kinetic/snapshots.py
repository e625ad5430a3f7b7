"""Density snapshots: VTX files for ParaView and marginal densities on a grid.

At each snapshot step the marginals of y_e and y_i of every site are binned on a
fixed grid (``marginal_e(snapshot, site, grid_e)``, density units, so they compare
directly with particle histograms on the same bins). On the box the bins are the
mesh's own columns and rows, so binning the quadrature points is exact; on other
meshes they are :data:`BINS` equal bins, exact up to the cells cut by a bin edge. If a directory is given, the
densities of up to :data:`MAX_VTX_SITES` evenly chosen sites are also written with
:class:`dolfinx.io.VTXWriter` (``site_XXXX.bp``, one time step per snapshot). The
marginals so far travel in checkpoints; a resumed run writes its VTX snapshots to
``site_XXXX-from-step-N.bp`` and leaves the earlier files as they are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["SnapshotWriter", "MAX_VTX_SITES", "marginal_edges"]

MAX_VTX_SITES = 4
BINS = 80


def marginal_edges(smesh, kinetic) -> np.ndarray:
    """Bin edges along either axis: the box's vertex lines, else BINS equal bins."""
    if smesh.kind == "box":
        from fpsolver.kinetic.meshing import grade

        return grade(np.linspace(-1.0, 1.0, kinetic.cells + 1), smesh.radius, kinetic.grading)
    return np.linspace(-smesh.radius, smesh.radius, BINS + 1)


class SnapshotWriter:
    """Records marginals (all ranks) and VTX files (site groups) at ``steps``."""

    def __init__(self, stepper, directory, steps):
        self.stepper, self.steps = stepper, list(steps)
        edges = marginal_edges(stepper.smesh, stepper.model.scenario.kinetic)
        self.edges = [edges, edges]
        self.times, self.marg = [], [[], []]
        self.directory = Path(directory) if directory is not None and self.steps else None
        self.suffix = ""
        self.writers = None  # opened at the first write

    def _open(self) -> dict:
        """VTX writers of the chosen sites of this rank's group, by local index."""
        if self.directory is None:
            return {}
        import dolfinx_solver  # noqa: F401
        from dolfinx import fem
        from dolfinx.io import VTXWriter

        stepper = self.stepper
        if stepper.comm.rank == 0:
            self.directory.mkdir(parents=True, exist_ok=True)
        stepper.comm.Barrier()
        B = stepper.B
        chosen = set(np.unique(np.linspace(0, B - 1, min(B, MAX_VTX_SITES)).round()
                               .astype(int)).tolist())
        g = stepper.group
        writers = {}
        for j, site in enumerate(g.sites):
            if site in chosen:
                f = fem.Function(g.V, name="density")
                path = self.directory / f"site_{site:04d}{self.suffix}.bp"
                writers[j] = (f, VTXWriter(g.comm, path, [f], engine="BP4"))
        return writers

    def state(self) -> dict:
        """The marginals so far (lists, for a checkpoint)."""
        return {"snap_t": self.times, "snap_marginal_e": self.marg[0],
                "snap_marginal_i": self.marg[1]}

    def restore(self, arrays: dict, first_step: int) -> None:
        """Continue from :meth:`state`; VTX files of this run get a new name."""
        self.times = list(arrays["snap_t"])
        self.marg = [list(arrays["snap_marginal_e"]), list(arrays["snap_marginal_i"])]
        self.suffix = f"-from-step-{first_step}"

    def write(self, t: float) -> None:
        if self.writers is None:
            self.writers = self._open()
        me, mi = self.stepper.marginals(self.edges)
        self.times.append(t)
        self.marg[0].append(me)
        self.marg[1].append(mi)
        for j, (f, w) in self.writers.items():
            f.x.array[:] = self.stepper.group.p[j]
            w.write(t)

    def close(self) -> None:
        for _, w in (self.writers or {}).values():
            w.close()

    def extras(self) -> dict:
        if not self.times:
            return {}
        out = {"snapshot_time": (("snapshot",), np.array(self.times), {"units": "time"})}
        for b, name in enumerate("ei"):
            centres = 0.5 * (self.edges[b][1:] + self.edges[b][:-1])
            out[f"grid_{name}"] = ((f"grid_{name}",), centres, {"long_name": f"y_{name} bins"})
            out[f"edges_{name}"] = ((f"edge_{name}",), self.edges[b],
                                    {"long_name": f"edges of the y_{name} bins"})
            out[f"marginal_{name}"] = (("snapshot", "site", f"grid_{name}"),
                                       np.array(self.marg[b]),
                                       {"long_name": f"marginal density of y_{name}"})
        return out
