"""Checks before any work: memory, time, disk and input files of a run, with estimates.

A run that cannot finish should fail before its first step, not after the computation:
:func:`preflight` estimates the memory and the time of a particle or kinetic run and the
size of its outputs, refuses a run that needs more memory than the machine has or more
disk than ``--out`` offers (naming the estimate and the fix), logs the estimate of a long
run, and checks every input file the scenario names (:mod:`fpsolver.paths`).

The estimates are rough (within a factor of a few): particles from ``n`` and the step
count; kinetic from the resolved discretisation
(:func:`fpsolver.kinetic.numerics.resolve_numerics`): dofs per site times sites, plus
the factorisations.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

from fpsolver.errors import PreflightError

__all__ = ["Estimate", "PreflightError", "estimate", "preflight", "available_memory"]

logger = logging.getLogger(__name__)

LONG_RUN = 60.0  # seconds: longer runs get their estimate logged
MAX_SECONDS = 30 * 86400.0  # a month of computing is a typo, not a plan
_PAIR_BYTES = 200          # state, noise, gains and work arrays of one E-I pair
_PAIR_STEP_SECONDS = 2e-8  # one pair, one step (numba, one core)
_STEP_SECONDS = 2e-5       # per-step overhead of the particle loop
_DOF_BYTES = 1500          # matrices and work vectors per dof of the state mesh
_SITE_DOF_BYTES = 160      # state and history vectors of one site, per dof
_DOF_STEP_SECONDS = 3e-7   # one site, one dof, one step (assembly and solves)


@dataclass
class Estimate:
    """What a run needs: ``bytes`` of memory, ``seconds`` of computing, ``output`` bytes."""

    bytes: float
    seconds: float
    output: float
    what: str
    fix: str

    def text(self) -> str:
        """One line: memory, computing time and output size."""
        return (f"{self.what}: about {_size(self.bytes)} of memory, {_duration(self.seconds)}"
                f" of computing and {_size(self.output)} of output")


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"


def _duration(s: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.3g} {unit}"
    return f"{s:.2g} s"


def available_memory() -> float:
    """Bytes of memory available to a new allocation (MemAvailable), or +inf if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return math.inf


def _records(scenario) -> int:
    return int(scenario.t_end / scenario.record.every) + 2


def _particles(scenario) -> Estimate:
    n = scenario.n
    steps = math.ceil(scenario.t_end / scenario.dt - 1e-9)
    bins = min(scenario.space.sites, n) if scenario.space.kind != "point" else 1
    out = _records(scenario) * bins * 12 * 8
    return Estimate(bytes=n * _PAIR_BYTES + out, seconds=steps * (n * _PAIR_STEP_SECONDS
                                                                   + _STEP_SECONDS),
                    output=out, what=f"particles: n = {n} pairs, {steps} steps",
                    fix="lower n, or raise dt / lower t_end")


def _kinetic(scenario, comm_size: int) -> Estimate:
    from fpsolver.kinetic.numerics import resolve_numerics
    from fpsolver.model import build_model

    num = resolve_numerics(build_model(scenario))
    nx, ny = num.cells
    dofs = (num.degree * nx + 1) * (num.degree * ny + 1)
    sites = build_sites_count(scenario)
    lu = 2 * 360 * dofs * math.log2(max(dofs, 2))
    memory = dofs * (_DOF_BYTES + _SITE_DOF_BYTES * sites) + lu
    steps = scenario.t_end / num.dt
    seconds = steps * sites * dofs * _DOF_STEP_SECONDS / max(comm_size, 1)
    out = _records(scenario) * sites * 30 * 8
    return Estimate(bytes=memory, seconds=seconds, output=out,
                    what=f"kinetic: P{num.degree} on {nx}x{ny} cells ({dofs} dofs) x "
                    f"{sites} site(s), about {steps:.3g} steps",
                    fix="lower kinetic.cells or kinetic.degree (0: automatic), fewer "
                    "space.sites, or a larger kinetic.dt")


_FACTOR_DOF_BYTES = 600     # sparse LU factors of one site, per dof (MUMPS, P2: ~75 nnz/dof)
_NEWTON_DOF_SECONDS = 4e-6  # one site, one dof, one Newton iteration (ring-bump: 0.04 s)
STATIONARY = ("steady", "spectrum", "continue")


def _stationary(scenario, solver: str, comm_size: int) -> Estimate:
    """Stationary solves: the factors of every site a rank holds (spectrum, continue)."""
    from fpsolver.kinetic.numerics import resolve_numerics
    from fpsolver.model import build_model

    num = resolve_numerics(build_model(scenario))
    nx, ny = num.cells
    dofs = (num.degree * nx + 1) * (num.degree * ny + 1)
    sites = build_sites_count(scenario)
    per_rank = math.ceil(sites / max(comm_size, 1))
    held = per_rank if solver != "steady" else min(per_rank, MAX_CACHED_FACTORS)
    memory = dofs * (_DOF_BYTES + (_SITE_DOF_BYTES + _FACTOR_DOF_BYTES) * held
                     + _SITE_DOF_BYTES * sites)
    iterations = 8 if solver != "continue" else 8 * 50
    seconds = iterations * per_rank * dofs * _NEWTON_DOF_SECONDS
    return Estimate(bytes=memory, seconds=seconds, output=sites * dofs * 8 * 3,
                    what=f"{solver}: P{num.degree} on {nx}x{ny} cells ({dofs} dofs) x "
                    f"{sites} site(s), {per_rank} per rank",
                    fix="fewer space.sites, lower kinetic.cells, or more MPI ranks")


MAX_CACHED_FACTORS = 64  # site factorisations a rank keeps between Newton steps


def build_sites_count(scenario) -> int:
    sp = scenario.space
    if sp.kind == "point":
        return 1
    return sp.sites ** 2 if sp.kind == "torus" else sp.sites


def estimate(scenario, solver: str, comm_size: int = 1) -> Estimate:
    """The :class:`Estimate` of a ``particles``, ``kinetic`` or stationary run."""
    if solver in STATIONARY:
        return _stationary(scenario, solver, comm_size)
    return _particles(scenario) if solver == "particles" else _kinetic(scenario, comm_size)


def preflight(scenario, solver: str, *, out=None, comm_size: int = 1,
              memory: float | None = None) -> Estimate | None:
    """Check a run before its work; raise :class:`PreflightError` if it cannot finish.

    Args:
        scenario: the scenario.
        solver: ``particles``, ``kinetic``, ``gaussian``, ``stability``, ``steady``,
            ``spectrum`` or ``continue``.
        out: the (created) output folder, to compare the output size with its free space.
        comm_size: MPI ranks sharing the kinetic work.
        memory: bytes available (default: :func:`available_memory`).
    """
    from fpsolver.paths import check_input_file, scenario_files

    for field, path in scenario_files(scenario):
        check_input_file(path, field)
    if solver not in ("particles", "kinetic") + STATIONARY:
        return None
    if solver == "kinetic":
        from fpsolver.safe_options import unused_petsc_options

        unused = unused_petsc_options(scenario.kinetic.petsc_options)
        if unused:
            logger.warning("kinetic.petsc_options: %s not used by the chosen solver (ksp_type"
                           " / pc_type) -- fix: remove them or choose the solver they "
                           "configure", ", ".join(unused))
    est = estimate(scenario, solver, comm_size)
    memory = available_memory() if memory is None else memory
    if est.bytes > memory:
        raise PreflightError(f"the run needs more memory than this machine has: {est.text()}"
                             f"; {_size(memory)} available -- fix: {est.fix}")
    if est.seconds > MAX_SECONDS:
        raise PreflightError(f"the run would take far too long: {est.text()} -- fix: "
                             f"{est.fix}")
    if out is not None:
        st = os.statvfs(out)
        free = st.f_bavail * st.f_frsize
        if est.output * 2 > free:  # a temporary copy exists while a file is replaced
            raise PreflightError(f"--out {out} has {_size(free)} free, the outputs need "
                                 f"about {_size(est.output)} -- fix: free some space or "
                                 "give another --out")
    if est.seconds > LONG_RUN:
        logger.info("estimate: %s", est.text())
    return est
