"""The main job (``make demo`` / ``fpsolver demo``): the ``bistable`` scenario three ways.

``bistable`` has double-well dynamics, an e-i coupling and multiplicative noise, so the
fluctuation density p(y_e, y_i, t) turns bimodal: the case the kinetic solver exists for.
The demo runs

1. the kinetic solver (finite elements, MODEL §2) at the scenario's discretisation;
2. the particle simulator of the finite network at n = 1e6 pairs (MODEL §1);
3. the Gaussian reduction as a contrast, where it applies (MODEL §3). It needs linear F
   and additive noise, so for ``bistable`` it is replaced by the Gaussian with the
   kinetic solver's own covariance, drawn in the density figure.

Each run writes ``summary.json``, ``observables.nc`` and ``scenario.toml`` into its own
subfolder of ``out_dir``; the comparison figures go to ``out_dir/figures``.
"""

from __future__ import annotations

import time
from pathlib import Path

from fpsolver.errors import FpsolverError
from fpsolver.output import write_outputs
from fpsolver.scenario import load_scenario

__all__ = ["run_demo", "DEMO_SCENARIO", "DEMO_OVERRIDES"]

DEMO_SCENARIO = "bistable"
# The kinetic solver's automatic numerics (moving frame, refined P2 mesh, adaptive
# BDF2 to kinetic.tol) and n = 10^6 pairs; a few minutes on 2 cores.
DEMO_OVERRIDES: list[str] = []
DEMO_PARTICLES = 1_000_000


def run_demo(out_dir: str | Path = "out/demo", *, scenario: str = DEMO_SCENARIO,
             overrides: list[str] | None = None, n_particles: int = DEMO_PARTICLES,
             comm=None) -> dict:
    """Run the demo and write its outputs and figures.

    Args:
        out_dir: output folder; runs go to ``kinetic/``, ``particles/``, ``gaussian/``.
        scenario: a shipped scenario name or TOML path.
        overrides: ``--set``-style overrides (default :data:`DEMO_OVERRIDES`).
        n_particles: pairs of the finite network.
        comm: MPI communicator of the kinetic solver (default: its own default).

    Returns:
        ``{"runs": {solver: dir}, "figures": [paths], "times": {solver: seconds}}``.
    """
    from fpsolver.kinetic import run_kinetic
    from fpsolver.particles import run_particles
    from fpsolver.plotting import plot_run

    out = Path(out_dir)
    sc = load_scenario(scenario, DEMO_OVERRIDES if overrides is None else overrides)
    sp = sc.replace(n=n_particles)  # checked before any run
    print(f"fpsolver demo: scenario '{sc.name}' -- {sc.description}")
    runs: dict[str, Path] = {}
    times: dict[str, float] = {}

    def record(kind: str, scen, result) -> None:
        runs[kind] = out / kind
        write_outputs(runs[kind], scen, result)
        times[kind] = time.perf_counter() - start
        print(f"  {kind}: {times[kind]:.1f} s -> {runs[kind]}")

    k = sc.kinetic
    mesh = f"P{k.degree or 'auto'}, {k.cells or 'automatic'} cells"
    step = f"dt = {k.dt}" if k.dt else f"adaptive steps to kinetic.tol = {k.tol:g}"
    print(f"[1/3] kinetic solver: {mesh}, {step}, t_end = {sc.t_end}")
    start = time.perf_counter()
    record("kinetic", sc, run_kinetic(sc, comm=comm, progress=False))

    print(f"[2/3] particle simulator: n = {sp.n} pairs, dt = {sp.dt}")
    start = time.perf_counter()
    record("particles", sp, run_particles(sp, progress=False))

    print("[3/3] Gaussian reduction")
    from fpsolver.gaussian import run_gaussian
    try:
        start = time.perf_counter()
        record("gaussian", sc, run_gaussian(sc))
    except FpsolverError as exc:
        print(f"  not applicable here: {exc}\n  (the density figure shows instead the "
              "Gaussian with the kinetic solver's own variance: the bimodality it misses)")

    main, *others = runs.values()
    figures = plot_run(main, compare=others, fig_dir=out / "figures")
    print(f"results: {', '.join(str(p) for p in runs.values())}")
    print("figures:\n" + "\n".join(f"  {p}" for p in figures))
    return {"runs": runs, "figures": figures, "times": times}
