"""Standard figures from any run's output directory (``fpsolver plot``).

Every solver writes the same ``observables.nc`` (see :mod:`fpsolver.output`), so one set
of figures serves the particle simulator, the Gaussian limit and the kinetic solver, and
several runs overlay directly (e.g. particles vs Gaussian vs kinetic):

- ``means_variances.png``: site-averaged vbar_a(t) and K_ab(t);
- ``spacetime_vbar.png``: vbar_a(x, t) as an image, for runs with more than one site;
- ``moments.png``: skewness and excess kurtosis of the fluctuations, when recorded;
- ``marginals.png``: marginal densities p(y_a) at the snapshot times (kinetic solver),
  histograms of the particle fluctuations, and the Gaussian with the same variance;
- ``bifurcation.png`` (a ``fpsolver continue`` folder): the site-averaged stationary
  vbar_e against the parameter, stable solid, unstable dashed, folds and Hopf points
  marked; below it the leading slow eigenvalue's real part;
- ``spectrum_mode1.png``: power spectrum of the ring's Fourier mode 1 (particles on a
  ring), with the predicted fast frequency sqrt(n) w of the stability analysis.

Figures go to ``OUT_DIR/figures/``. The Agg backend is used, so no display is needed.
"""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fpsolver.output import read_observables  # noqa: E402

__all__ = ["plot_run", "plot_branch", "plot_stability_runs", "load_runs", "Run", "site_average",
           "mode1_spectrum",
           "marginal_grid", "particle_fluctuations", "snapshot_times", "TIME_LABEL"]

logger = logging.getLogger(__name__)

TIME_LABEL = "time (units of tau)"
POPS = ("e", "i")
_STYLE = {"particles": dict(lw=1.0, alpha=0.8), "gaussian": dict(lw=2.0, ls="--"),
          "kinetic": dict(lw=1.8)}


class Run:
    """One run's output: its dataset, label and resolved scenario (as a dict)."""

    def __init__(self, out_dir: str | Path):
        self.dir = Path(out_dir)
        self.ds = read_observables(self.dir)
        self.solver = str(self.ds.attrs.get("solver", "run"))
        self.name = str(self.ds.attrs.get("scenario_name", "?"))
        try:
            self.scenario = tomllib.loads(self.ds.attrs.get("scenario_toml", ""))
        except tomllib.TOMLDecodeError:
            self.scenario = {}
        n = self.scenario.get("n")
        self.label = f"{self.solver} (n = {n:g})" if self.solver == "particles" and n \
            else self.solver

    @property
    def sites(self) -> int:
        """Number of sites in the dataset (1 without a ``site`` dimension)."""
        return self.ds.sizes.get("site", 1)


def load_runs(out_dir, compare=()) -> list[Run]:
    """The main run and the runs to compare with it, labels made unique."""
    runs = [Run(d) for d in [out_dir, *compare]]
    seen: dict[str, int] = {}
    for r in runs:
        seen[r.label] = seen.get(r.label, 0) + 1
    for r in runs:
        if seen[r.label] > 1:
            r.label = f"{r.label} [{r.dir.name}]"
    return runs


def site_average(ds, name: str) -> np.ndarray:
    """Weighted average over sites of a variable with a ``site`` dim (rho-weights)."""
    da = ds[name]
    if "site" not in da.dims:
        return da.values
    w = ds["weight"] / ds["weight"].sum()
    return (da * w).sum("site").transpose(*[d for d in da.dims if d != "site"]).values


def mode1_spectrum(t: np.ndarray, z: np.ndarray, discard: float = 0.0):
    """Power spectrum of a complex series z(t) (the ring's Fourier mode 1).

    Removes the mean, applies a Hann window and folds +w and -w together (the rotation
    sense is irrelevant). Returns ``(omega, power)`` with omega >= 0 in rad per time unit.
    """
    t, z = np.asarray(t), np.asarray(z)
    keep = t >= t[0] + discard
    t, z = t[keep], z[keep] - z[keep].mean()
    dt = float(np.median(np.diff(t)))
    spec = np.abs(np.fft.fft(z * np.hanning(len(z)))) ** 2
    omega = 2 * np.pi * np.fft.fftfreq(len(z), dt)
    pos = omega >= 0
    folded = spec[pos].copy()
    neg = np.abs(omega[~pos])
    idx = np.searchsorted(omega[pos], neg)
    ok = idx < folded.size
    np.add.at(folded, idx[ok], spec[~pos][ok])
    return omega[pos], folded


def marginal_grid(run: Run, var: str) -> np.ndarray:
    """Grid points y of a marginal density variable (its last dim)."""
    ds, dim = run.ds, run.ds[var].dims[-1]
    if dim in ds.coords or dim in ds.variables:
        return np.asarray(ds[dim].values, dtype=float)
    for name in (f"grid_{var[-1]}", f"y_{var[-1]}"):
        if name in ds.variables:
            return np.asarray(ds[name].values, dtype=float)
    h = run.scenario.get("kinetic", {}).get("half_width", 6.0)
    return np.linspace(-h, h, ds.sizes[dim])


def _snapshot_var(run: Run) -> str | None:
    """Name of the particle snapshot variable ``(snapshot_time, pair, population)``."""
    for name, da in run.ds.data_vars.items():
        if "snapshot_time" in da.dims and "pair" in da.dims and "population" in da.dims:
            return name
    return None


def particle_fluctuations(run: Run, k: int) -> np.ndarray | None:
    """Fluctuations y = v - vbar of the snapshot ``k``, shape ``(pairs, 2)``.

    With a pair -> site map (a ``(pair,)`` integer variable named ``site_of_pair`` or
    ``pair_site``) the mean of each site is subtracted, else the mean over all pairs.
    """
    var = _snapshot_var(run)
    if var is None:
        return None
    v = np.asarray(run.ds[var].isel(snapshot_time=k).transpose("pair", "population").values)
    for name in ("site_of_pair", "pair_site"):
        if name in run.ds.variables:
            site = np.asarray(run.ds[name].values).astype(int)
            sums = np.zeros((run.sites, 2))
            counts = np.bincount(site, minlength=run.sites)[:, None]
            np.add.at(sums, site, v)
            return v - (sums / np.maximum(counts, 1))[site]
    return v - v.mean(axis=0)


def snapshot_times(run: Run) -> np.ndarray:
    """Snapshot times of a run: the ``snapshot_time`` coordinate, else the scenario's."""
    ds = run.ds
    if "snapshot_time" in ds.variables and ds["snapshot_time"].ndim == 1:
        return np.atleast_1d(np.asarray(ds["snapshot_time"].values, dtype=float))
    snaps = run.scenario.get("record", {}).get("snapshots", [])
    if len(snaps) == ds.sizes.get("snapshot_time", -1):
        return np.asarray(snaps, dtype=float)
    return np.arange(ds.sizes.get("snapshot_time", 0), dtype=float)


def _nearest(times: np.ndarray, t: float) -> int:
    return int(np.argmin(np.abs(np.asarray(times) - t)))


def _title(fig, runs: list[Run], what: str) -> None:
    names = sorted({r.name for r in runs})
    fig.suptitle(f"{what} — scenario {', '.join(names)}")


def _save(fig, path: Path, paths: list[Path]) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)


def _plot_means(runs: list[Run], path: Path, paths: list[Path]) -> None:
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), sharex=True)
    for r in runs:
        t = r.ds["time"].values
        vbar, cov = site_average(r.ds, "vbar"), site_average(r.ds, "cov")
        style = _STYLE.get(r.solver, {})
        for a in range(2):
            axes[0, a].plot(t, vbar[:, a], label=r.label, **style)
            axes[1, a].plot(t, cov[:, a, a], label=r.label, **style)
        axes[1, 2].plot(t, cov[:, 0, 1], label=r.label, **style)
        corr = cov[:, 0, 1] / np.sqrt(np.maximum(cov[:, 0, 0] * cov[:, 1, 1], 1e-300))
        axes[0, 2].plot(t, corr, label=r.label, **style)
    for a, pop in enumerate(POPS):
        axes[0, a].set_ylabel(f"mean vbar_{pop} (voltage)")
        axes[1, a].set_ylabel(f"variance K_{pop}{pop} (voltage$^2$)")
    axes[1, 2].set_ylabel("covariance K_ei (voltage$^2$)")
    axes[0, 2].set_ylabel("correlation K_ei / sqrt(K_ee K_ii)")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel(TIME_LABEL)
    axes[0, 0].legend(fontsize=8)
    _title(fig, runs, "site-averaged means and covariances")
    fig.tight_layout()
    _save(fig, path, paths)


def _plot_spacetime(runs: list[Run], path: Path, paths: list[Path]) -> None:
    spatial = [r for r in runs if r.sites > 1]
    if not spatial:
        return
    fig, axes = plt.subplots(len(spatial), 2, figsize=(11, 3.6 * len(spatial)), squeeze=False)
    for row, r in zip(axes, spatial):
        x = r.ds["x"].values[:, 0]
        order = np.argsort(x)
        t = r.ds["time"].values
        for a, ax in enumerate(row):
            im = ax.pcolormesh(x[order], t, r.ds["vbar"].values[:, order, a],
                               shading="nearest", cmap="viridis")
            fig.colorbar(im, ax=ax, label=f"vbar_{POPS[a]} (voltage)")
            ax.set_xlabel("position x (site coordinate)")
            ax.set_ylabel(TIME_LABEL)
            ax.set_title(f"{r.label}: vbar_{POPS[a]}(x, t)")
    _title(fig, spatial, "space-time image of the mean")
    fig.tight_layout()
    _save(fig, path, paths)


def _plot_moments(runs: list[Run], path: Path, paths: list[Path]) -> None:
    have = [(r, m) for r in runs for m in ("skewness", "kurtosis") if m in r.ds.variables]
    if not have:
        return
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.5), sharex=True)
    for r, m in have:
        row = 0 if m == "skewness" else 1
        values = site_average(r.ds, m)
        t = r.ds[r.ds[m].dims[0]].values
        for a in range(2):
            axes[row, a].plot(t, values[:, a], label=r.label, **_STYLE.get(r.solver, {}))
    for a, pop in enumerate(POPS):
        axes[0, a].set_ylabel(f"skewness of y_{pop}")
        axes[1, a].set_ylabel(f"kurtosis of y_{pop} (Gaussian: 3)")
        axes[1, a].set_xlabel(TIME_LABEL)
    for row, ax in enumerate(axes.flat):
        ax.axhline(0 if row < 2 else 3, color="k", lw=0.5)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    _title(fig, [r for r, _ in have],
           "non-Gaussianity of the fluctuations (Gaussian: skewness 0, kurtosis 3)")
    fig.tight_layout()
    _save(fig, path, paths)


def _gauss(y: np.ndarray, var: float) -> np.ndarray:
    return np.exp(-0.5 * y**2 / var) / np.sqrt(2 * np.pi * var)


def _plot_marginals(runs: list[Run], path: Path, paths: list[Path]) -> None:
    kin = [r for r in runs if "marginal_e" in r.ds.variables]
    par = [r for r in runs if _snapshot_var(r) is not None]
    if not kin and not par:
        return
    first = (kin or par)[0]
    times = snapshot_times(first)
    fig, axes = plt.subplots(len(times), 2, figsize=(10, 2.8 * len(times) + 0.6),
                             squeeze=False)
    for k, ts in enumerate(times):
        for r in par:
            kk = _nearest(snapshot_times(r), ts)
            y = particle_fluctuations(r, kk)
            for a in range(2):
                axes[k, a].hist(y[:, a], bins=80, density=True, histtype="stepfilled",
                                alpha=0.35, label=f"{r.label} histogram")
        for r in kin:
            kk = _nearest(snapshot_times(r), ts)
            cov_t = site_average(r.ds, "cov")[_nearest(r.ds["time"].values, ts)]
            for a in range(2):
                var = f"marginal_{POPS[a]}"
                y = marginal_grid(r, var)
                p = r.ds[var].isel({r.ds[var].dims[0]: kk})
                if "site" in p.dims:
                    w = r.ds["weight"] / r.ds["weight"].sum()
                    p = (p * w).sum("site")
                line, = axes[k, a].plot(y, p.values, lw=1.8, label=f"{r.label} density")
                axes[k, a].plot(y, _gauss(y, cov_t[a, a]), ls=":", color=line.get_color(),
                                label="Gaussian, same variance")
        for r in runs:
            if r.solver == "gaussian":
                cov_t = site_average(r.ds, "cov")[_nearest(r.ds["time"].values, ts)]
                for a in range(2):
                    y = np.linspace(-4, 4, 300) * np.sqrt(cov_t[a, a])
                    axes[k, a].plot(y, _gauss(y, cov_t[a, a]), ls="--", label=r.label)
        for a in range(2):
            axes[k, a].set_title(f"t = {ts:g}: marginal of y_{POPS[a]}", fontsize=10)
            axes[k, a].set_ylabel("density")
    for a in range(2):
        axes[-1, a].set_xlabel(f"fluctuation y_{POPS[a]} = v_{POPS[a]} - vbar_{POPS[a]} "
                               "(voltage)")
    axes[0, 0].legend(fontsize=7)
    _title(fig, kin + par, "fluctuation densities at the snapshot times")
    fig.tight_layout()
    _save(fig, path, paths)


def _predicted_frequency(run: Run) -> float | None:
    try:
        from fpsolver.scenario import scenario_from_dict
        from fpsolver.stability import analyse_stability

        report = analyse_stability(scenario_from_dict(run.scenario))
        return report.frequency
    except Exception as exc:  # a figure must not fail on the analysis
        logger.info("no predicted frequency for %s: %s", run.dir, exc)
        return None


def _plot_spectrum(runs: list[Run], path: Path, paths: list[Path]) -> None:
    have = [r for r in runs if "fourier1_re" in r.ds.variables]
    if not have:
        return
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in have:
        t = r.ds["time"].values
        z = r.ds["fourier1_re"].values[:, 0] + 1j * r.ds["fourier1_im"].values[:, 0]
        omega, power = mode1_spectrum(t, z, discard=min(1.0, 0.1 * (t[-1] - t[0])))
        line, = ax.semilogy(omega, power / power.max(), label=f"{r.label}")
        freq = _predicted_frequency(r)
        if freq:
            ax.axvline(freq, color=line.get_color(), ls="--",
                       label=f"predicted sqrt(n) w = {freq:.3g}")
    ax.set_xlabel("angular frequency (rad per unit of tau)")
    ax.set_ylabel("power of mode 1 of vbar_e (normalised)")
    ax.set_xlim(0, None)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _title(fig, have, "spectrum of the ring's Fourier mode 1")
    fig.tight_layout()
    _save(fig, path, paths)


def plot_run(out_dir: str | Path, compare=(), fig_dir: str | Path | None = None) -> list[Path]:
    """Make the standard figures of a run, overlaying the runs in ``compare``.

    Args:
        out_dir: a run's output directory (with ``observables.nc``).
        compare: more output directories to overlay (e.g. particles vs kinetic).
        fig_dir: where to write; default ``out_dir/figures``.

    Returns:
        The PNG files written.
    """
    runs = load_runs(out_dir, compare)
    fig_dir = Path(fig_dir) if fig_dir is not None else Path(out_dir) / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    _plot_means(runs, fig_dir / "means_variances.png", paths)
    _plot_spacetime(runs, fig_dir / "spacetime_vbar.png", paths)
    _plot_moments(runs, fig_dir / "moments.png", paths)
    _plot_marginals(runs, fig_dir / "marginals.png", paths)
    _plot_spectrum(runs, fig_dir / "spectrum_mode1.png", paths)
    return paths


_SPECIAL = {"fold": ("o", "fold"), "hopf": ("*", "Hopf"), "fast-fold": ("s", "fast fold"),
            "fast-hopf": ("D", "fast Hopf"), "slow-real-crossing": ("^", "real crossing")}


def plot_stability_runs(ax, p: np.ndarray, v: np.ndarray, stable: np.ndarray) -> None:
    """Draw a branch v(p): runs of stable points solid, of unstable points dashed."""
    start = 0
    for k in range(1, len(p) + 1):
        if k == len(p) or stable[k] != stable[start]:
            seg = slice(start, min(k + 1, len(p)))
            ax.plot(p[seg], v[seg], "k-" if stable[start] else "k--", lw=1.6)
            start = k


def plot_branch(out_dir: str | Path, fig_dir: str | Path | None = None) -> list[Path]:
    """The bifurcation diagram of a continuation folder (``branch.nc``)."""
    from fpsolver.steady.branch_io import read_branch

    ds = read_branch(out_dir)
    fig_dir = Path(fig_dir) if fig_dir is not None else Path(out_dir) / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    p = ds["p"].values
    v = ds["vbar"].values[:, :, 0].mean(axis=1)
    stable = ds["stable"].values.astype(bool)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(7, 7), sharex=True,
                                  gridspec_kw={"height_ratios": [2, 1]})
    plot_stability_runs(ax, p, v, stable)
    for kind, pk, vk in zip(ds["special_kind"].values, ds["special_p"].values,
                            ds["special_vbar"].values):
        marker, label = _SPECIAL.get(str(kind), ("x", str(kind)))
        ax.plot(pk, vk[:, 0].mean(), marker, ms=9, label=label)
    ax.set_ylabel("stationary vbar_e (site average)")
    handles, labels = ax.get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    if seen:
        ax.legend(seen.values(), seen.keys())
    lead = np.nanmax(ds["slow_re"].values, axis=1)
    ax2.plot(p, lead, "C0-", label="slow: Re of the leading eigenvalue")
    ax2.plot(p, ds["fast_max_re"].values, "C3--", label="fast: largest Re of the balance "
             "Jacobian")
    ax2.axhline(0, color="0.5", lw=0.8)
    ax2.set_xlabel(str(ds.attrs.get("parameter", "parameter")))
    ax2.legend(fontsize=8)
    fig.suptitle(f"{ds.attrs.get('scenario_name', '')}: branch of stationary states "
                 "(solid stable, dashed unstable)")
    paths: list[Path] = []
    _save(fig, fig_dir / "bifurcation.png", paths)
    return paths
