"""Density snapshots: marginals and 2-d densities in y for xarray, VTX files for ParaView.

At each snapshot time the exact marginal densities of z_e and z_i of every site
(:class:`~fpsolver.kinetic.marginals.MarginalRule`: piecewise polynomials) are evaluated
on a fine grid of z (:data:`GRID_Z` points over the box) and stored with the frames ell;
at the end they are put on one common grid of y (``grid_e``, ``grid_i``: :data:`GRID`
points over the widest frame's box) as m_y(y) = m_z(y / ell) / ell (linear interpolation
from the fine grid: relative error ~1e-4), so ``marginal_e(snapshot, site, grid_e)``
compares directly with particle histograms. The 2-d density of up to
:data:`MAX_DENSITY_SITES` evenly chosen sites is evaluated on a regular grid of z
(:data:`GRID_2D` points per axis) and stored with the frames as ``density(snapshot,
density_site, z_e, z_i)`` (in y units: the value of p at y = ell z) with
``density_ell(snapshot, density_site, population)``, so y = ell z gives its coordinates.
If a directory is given, the same sites' densities in z are also written with
:class:`dolfinx.io.VTXWriter` (``site_XXXX.bp``, one time per snapshot; the frame is in
``observables.nc``). Everything so far travels in checkpoints; a resumed run writes its
VTX files to ``site_XXXX-from-step-N.bp``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["SnapshotWriter", "MAX_DENSITY_SITES", "GRID", "GRID_2D", "density_in_y"]

MAX_DENSITY_SITES = 4
GRID = 201
GRID_Z = 601
GRID_2D = 81


def density_in_y(ds, snapshot: int, site: int):
    """(y_e, y_i, p) of a 2-d density of ``observables.nc``.

    At one snapshot and one of its density sites: y_e (n,), y_i (m,), p (n, m) (density
    units).
    """
    ell = np.asarray(ds["density_ell"].values)[snapshot, site]
    z_e, z_i = np.asarray(ds["z_e"].values), np.asarray(ds["z_i"].values)
    return ell[0] * z_e, ell[1] * z_i, np.asarray(ds["density"].values)[snapshot, site]


class SnapshotWriter:
    """Marginals and 2-d densities (all ranks) and VTX files (site groups) at ``times``."""

    def __init__(self, stepper, directory, times, labels=None):
        self.stepper, self.times_wanted = stepper, list(times)
        # the site number in file names (the full lattice's, when orbits are solved)
        self.labels = np.arange(stepper.B) if labels is None else np.asarray(labels)
        B = stepper.B
        self.density_sites = np.unique(np.linspace(0, B - 1, min(B, MAX_DENSITY_SITES))
                                       .round().astype(int))
        self.times, self.nodes, self.ell, self.dens2d, self.ell2d = [], [[], []], [], [], []
        self.directory = (Path(directory) if directory is not None and self.times_wanted
                          else None)
        self.suffix = ""
        self.writers = None  # opened at the first write
        W = stepper.smesh.radius
        self.z2d = np.linspace(-W, W, GRID_2D)
        self.zgrid = np.linspace(-W, W, GRID_Z)

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
        d = stepper.dens
        writers = {}
        for j, site in enumerate(d.sites):
            if site in set(self.density_sites.tolist()):
                f = fem.Function(d.V, name="density_in_frame")
                path = self.directory / f"site_{self.labels[site]:04d}{self.suffix}.bp"
                writers[j] = (f, VTXWriter(d.comm, path, [f], engine="BP4"))
        return writers

    def state(self) -> dict:
        """The snapshots so far (lists, for a checkpoint)."""
        return {"snap_t": self.times, "snap_marginal_e": self.nodes[0],
                "snap_marginal_i": self.nodes[1], "snap_ell": self.ell,
                "snap_density": self.dens2d}

    def restore(self, arrays: dict, first_step: int) -> None:
        """Continue from :meth:`state`; VTX files of this run get a new name."""
        self.times = list(arrays["snap_t"])
        self.nodes = [list(arrays["snap_marginal_e"]), list(arrays["snap_marginal_i"])]
        self.ell = list(arrays["snap_ell"])
        self.dens2d = list(arrays["snap_density"])
        self.suffix = f"-from-step-{first_step}"

    def write(self, t: float) -> None:
        """Take a snapshot now (collective)."""
        st = self.stepper
        if self.writers is None or st.dens.V is not getattr(self, "_V", None):
            self.close()
            self.writers = self._open()
            self._V = st.dens.V
        mr = st.dens.marginals
        self.times.append(t)
        for b in range(2):
            local = np.zeros((st.B, len(mr.rule(b, mr.npts)[0])))
            local[st.dens.sites] = mr.node_values(st.dens.q, b)
            nodes = st._sum(local) / st.mass[:, None]
            self.nodes[b].append(mr.evaluate(nodes, b, self.zgrid))
        self.ell.append(st.frame.ell.copy())
        self.dens2d.append(self._density_2d())
        for j, (f, w) in self.writers.items():
            f.x.array[:] = st.dens.q[j]
            w.write(t)

    def _density_2d(self) -> np.ndarray:
        """p(y = ell z) on the z grid for the density sites (collective)."""
        import dolfinx_solver  # noqa: F401
        from dolfinx import geometry

        st = self.stepper
        d = st.dens
        msh = d.V.mesh
        Z0, Z1 = np.meshgrid(self.z2d, self.z2d, indexing="ij")
        pts = np.zeros((Z0.size, 3))
        pts[:, 0], pts[:, 1] = Z0.ravel(), Z1.ravel()
        tree = geometry.bb_tree(msh, msh.topology.dim)
        cand = geometry.compute_collisions_points(tree, pts)
        cells = geometry.compute_colliding_cells(msh, cand, pts)
        local = np.zeros((len(self.density_sites), Z0.size))
        found = np.array([len(cells.links(i)) > 0 for i in range(len(pts))])
        owned = np.flatnonzero(found)
        cell_of = np.array([cells.links(i)[0] for i in owned], dtype=np.int32)
        from dolfinx import fem
        f = fem.Function(d.V)
        counted = np.zeros(Z0.size)
        if len(owned):
            counted[owned] = 1.0
        for k, site in enumerate(self.density_sites):
            rows = np.flatnonzero(d.sites == site)
            if len(rows) and len(owned):
                f.x.array[:] = d.q[rows[0]]
                local[k, owned] = f.eval(pts[owned], cell_of)[:, 0]
        total = st._sum(local)
        hits = st._sum(counted)
        ell = st.frame.ell[self.density_sites]
        values = total / np.maximum(hits, 1)[None, :] / st.mass[self.density_sites, None]
        return (values / (ell[:, 0] * ell[:, 1])[:, None]).reshape(-1, GRID_2D, GRID_2D)

    def close(self) -> None:
        """Close the VTX files (new ones open at the next snapshot)."""
        for _, w in (self.writers or {}).values():
            w.close()
        self.writers = None

    def extras(self) -> dict:
        """The snapshots as ``observables.nc`` variables: marginals in y, ell, 2-d densities."""
        if not self.times:
            return {}
        ell = np.array(self.ell)  # (snapshot, site, 2)
        W = self.stepper.smesh.radius
        out = {"snapshot_time": (("snapshot",), np.array(self.times), {"units": "time"})}
        for b, name in enumerate("ei"):
            top = W * ell[..., b].max()
            grid = np.linspace(-top, top, GRID)
            marg = np.empty((len(self.times), ell.shape[1], GRID))
            for k in range(len(self.times)):
                mz = np.asarray(self.nodes[b][k])
                for j in range(ell.shape[1]):
                    marg[k, j] = np.interp(grid / ell[k, j, b], self.zgrid, mz[j],
                                           left=0.0, right=0.0) / ell[k, j, b]
            out[f"grid_{name}"] = ((f"grid_{name}",), grid,
                                   {"long_name": f"y_{name} (fluctuation)", "units": "voltage"})
            out[f"marginal_{name}"] = (("snapshot", "site", f"grid_{name}"), marg,
                                       {"long_name": f"marginal density of y_{name}"})
        out["ell"] = (("snapshot", "site", "population"), ell,
                      {"long_name": "frame ell: y = ell z (standard deviation scale)"})
        out["z_e"] = (("z_e",), self.z2d, {"long_name": "z_e = y_e / ell_e"})
        out["z_i"] = (("z_i",), self.z2d, {"long_name": "z_i = y_i / ell_i"})
        out["density_site"] = (("density_site",), self.density_sites,
                               {"long_name": "site of each 2-d density"})
        out["density_ell"] = (("snapshot", "density_site", "population"),
                              ell[:, self.density_sites], {"long_name": "frame of the 2-d density"})
        out["density"] = (("snapshot", "density_site", "z_e", "z_i"), np.array(self.dens2d),
                          {"long_name": "density p(y) at y = ell z (y units)"})
        return out
