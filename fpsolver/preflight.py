"""Checks before any work: memory, time, disk and input files of a run, with estimates.

A run that cannot finish should fail before its first step, not after the computation:
:func:`preflight` estimates the memory and the time of a particle or kinetic run and the
size of its outputs, refuses a run that needs more memory than the machine has or more
disk than ``--out`` offers (naming the estimate and the fix), logs the estimate of a long
run, and checks every input file the scenario names (:mod:`fpsolver.paths`).

The estimates are rough: particles from ``n`` and the step count; kinetic from the
resolved discretisation (:func:`fpsolver.kinetic.numerics.resolve_numerics`): the
process, the mesh's matrices and factors, dofs per site times sites (within 20% of the
measured peak on 1 to 1024 sites). Every solver that builds the dense coupling of the
sites adds it; it grows like sites^2 and so sets how many sites fit
(:data:`DENSE_BYTES`); sites whose dense coupling alone cannot fit are refused before it
is built, naming ``space.sites`` and the count that fits. After a kinetic run,
:func:`peak_memory` measures what it used and :func:`memory_report` sets it beside the
estimate.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from dataclasses import dataclass
from typing import Callable

from fpsolver.errors import PreflightError

__all__ = ["Estimate", "PreflightError", "estimate", "preflight", "available_memory",
           "peak_memory", "memory_report", "dense_bytes", "DENSE_BYTES"]

logger = logging.getLogger(__name__)

LONG_RUN = 60.0  # seconds: longer runs get their estimate logged
MAX_SECONDS = 30 * 86400.0  # a month of computing is a typo, not a plan
_PAIR_BYTES = 200          # state, noise, gains and work arrays of one E-I pair
_PAIR_STEP_SECONDS = 2e-8  # one pair, one step (numba, one core)
_STEP_SECONDS = 2e-5       # per-step overhead of the particle loop
_DOF_STEP_SECONDS = 3e-7   # one site, one dof, one step (assembly and solves)
# Kinetic memory, fitted to the peak resident size (ru_maxrss) at the end of
# `fpsolver kinetic` runs to t = 0.05 on one rank (P2; measured, estimate):
#   tanh, 1 site, 4225 dofs (refined from 1089: estimated at 1089)  272 MB, 226 MB
#   tanh, 1 site, 11349 dofs                                        407 MB, 426 MB
#   ring-bump, 64 sites, 4225 dofs (kinetic.cells = 32)             343 MB, 320 MB
#   ring-bump, 64 sites, 9409 dofs                                  497 MB, 472 MB
#   sheet, 8 x 8 sites, 9409 dofs                                   498 MB, 471 MB
#   sheet, 16 x 16 sites, 9409 dofs                                 757 MB, 733 MB
#   sheet, 32 x 32 sites, 9409 dofs (t = 0.02)                      1.68 GB, 1.78 GB
#   ring-bump, 1024 sites, 2401 dofs (cells 24, t = 0.02)           713 MB, 814 MB
#   ring-bump, 64 sites, 9409 dofs, 2 ranks (one mesh each)         890 MB, 857 MB
# (ring-bump is on the dense route: 210 MB of the 1024-site estimate is the sites^2 term
# below; a run that refines its mesh needs more than this estimate of its initial mesh).
# The sheets give the slope per site and dof, the two meshes of ring-bump and of tanh the
# slope per dof (19-21 kB, more on larger meshes: sparse LU fill grows like n log n; 30 kB
# at 148k dofs, fpsolver.kinetic.stepper) and the intercept, the process itself.
_PROCESS_BYTES = 210e6     # a rank's interpreter, DOLFINx/PETSc/MPI, compiled forms
_DOF_LOG_BYTES = 1400      # per dof and log2(dofs): matrices, LU factors, quadrature
#                            tables of the run and of its error estimator's companions
_SITE_DOF_BYTES = 145      # per site and dof: density, history and work vectors
# The dense coupling of the sites, bytes per sites^2 at each solver's peak (S sites: one
# (2, 2, S, S) or (2S, 2S) array of doubles is 32 S^2 bytes). Every rank builds the model
# and solves the balance constraint on all S sites, so every rank holds it. Measured as the
# growth of ru_maxrss over S^2 (S = 512-2048, arrays past glibc's mmap threshold):
# - the balance solvers (particles, gaussian, stability, kinetic): the kernel J and
#   W = s J w (2 x 32), then the range basis U, the SVD of the S x (2S + 1) columns
#   [A_a, J_ae w, J_ai w] (their copy, U, V^T and LAPACK's workspace: ~90); a Newton step
#   forms DPhi (a product and its reordered copy: 64) beside J, W and U. Measured 155
#   kinetic (ring-bump, 2048 sites, rank 6) to 208 (40 x 40 torus, a user kernel that is
#   not circulant, full rank), 204 stability (the eigenvalues of the full-rank reduced
#   Jacobian), 230 particles (their own copy of J, the implicit step's (2S)^2 matrix and
#   its LU).
# - steady: W, U and its complement U_f, then per Newton step J_v, S_m, the rows U^T J_v
#   and U_f^T S_m, their stack and its LU copy: 246 (full rank), 267 (rank 6).
# - spectrum, continue: the Woodbury maps of the whole linearised operator, K (7S x 9S),
#   Q (9S x 7S), I + K Q (7S x 7S) and its inverse: 2839 (sheet 32 x 32), 3235 (ring,
#   512 sites). A homogeneous lattice state is solved one Fourier mode at a time and needs
#   far less, but which route a run takes is known only from its stationary state.
# On a lattice whose coupling is circulant with a full range (fpsolver.circulant) the
# balance constraint runs by FFT: the gaussian and kinetic solvers then build nothing dense
# (unless GMRES stalls and the Newton step falls back to a dense LU; see fpsolver.balance).
DENSE_BYTES = {"particles": 240, "gaussian": 200, "stability": 210, "kinetic": 200,
               "steady": 270, "spectrum": 3300, "continue": 3300}
FFT_SOLVERS = ("gaussian", "kinetic")


@dataclass
class Estimate:
    """What a run needs: ``bytes`` of memory, ``seconds`` of computing, ``output`` bytes.

    ``need(s)`` is the memory of the same run on ``s`` sites instead of ``sites`` (for
    the largest site count that fits); None if the sites do not matter.
    """

    bytes: float
    seconds: float
    output: float
    what: str
    fix: str
    sites: int = 1
    need: Callable[[int], float] | None = None

    @property
    def site_bytes(self) -> float:
        """The part of ``bytes`` that grows with the sites (0 without ``need``)."""
        return self.bytes - self.need(0) if self.need is not None else 0.0

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


def _particles(scenario, model, dense: float) -> Estimate:
    n = scenario.n
    steps = math.ceil(scenario.t_end / scenario.dt - 1e-9)
    bins = min(scenario.space.sites, n) if scenario.space.kind != "point" else 1
    out = _records(scenario) * bins * 12 * 8

    def need(s: int) -> float:
        return n * _PAIR_BYTES + out + dense * float(s) ** 2

    return Estimate(bytes=need(model.n_sites),
                    seconds=steps * (n * _PAIR_STEP_SECONDS + _STEP_SECONDS),
                    output=out, what=f"particles: n = {n} pairs, {steps} steps",
                    fix="lower n, or raise dt / lower t_end", sites=model.n_sites, need=need)


def _fft_route(model) -> bool:
    """Whether the model's balance constraint runs by FFT, without a dense coupling."""
    from fpsolver.balance import fft_coupling

    return fft_coupling(model) is not None


def dense_bytes(model, solver: str) -> float:
    """Bytes per sites^2 of the solver's dense site coupling on one rank (see DENSE_BYTES)."""
    if solver in FFT_SOLVERS and _fft_route(model):
        return 0.0
    return DENSE_BYTES[solver]


def _dofs(model):
    """The resolved discretisation of a kinetic or stationary run and its dofs per site."""
    from fpsolver.kinetic.numerics import resolve_numerics

    num = resolve_numerics(model)
    nx, ny = num.cells
    return num, (num.degree * nx + 1) * (num.degree * ny + 1)


def _kinetic(scenario, model, comm_size: int, dense: float) -> Estimate:
    from fpsolver.kinetic.symmetry import site_orbits

    num, dofs = _dofs(model)
    nx, ny = num.cells
    sites, ranks = model.n_sites, max(comm_size, 1)
    orbits = site_orbits(model)  # the sites solved: one per orbit (kinetic/symmetry.py)
    share = 1.0 if orbits is None else len(orbits.representatives) / sites
    solved = max(1, round(share * sites))
    mesh = min(ranks, solved) * dofs * _DOF_LOG_BYTES * math.log2(max(dofs, 2))  # per group
    dense *= ranks  # every rank holds it

    def need(s: int) -> float:
        return (ranks * _PROCESS_BYTES + mesh + share * s * dofs * _SITE_DOF_BYTES
                + dense * float(s) ** 2)

    steps = scenario.t_end / num.dt
    seconds = steps * solved * dofs * _DOF_STEP_SECONDS / ranks
    out = _records(scenario) * sites * 30 * 8
    return Estimate(bytes=need(sites), seconds=seconds, output=out,
                    what=f"kinetic: P{num.degree} on {nx}x{ny} cells ({dofs} dofs) x "
                    f"{solved} site(s)" + (f" (of {sites}: one per orbit)" if solved < sites
                                           else "") + f", about {steps:.3g} steps",
                    fix="lower kinetic.cells or kinetic.degree (0: automatic), fewer "
                    "space.sites, or a larger kinetic.dt", sites=sites, need=need)


# Stationary memory (peak resident size of the whole command, one rank; measured,
# estimate): steady ring-bump 8 sites 401 MB, 400 MB; 64 sites 1.14 GB, 1.13 GB; spectrum
# ring-bump 8 sites 421 MB, 400 MB (P2, 9409 dofs).
_DOF_BYTES = 9000           # matrices, quadrature and work vectors per dof of the mesh
_FACTOR_DOF_BYTES = 1100    # sparse LU factors of one site, per dof (P2: ~75 nnz/dof)
_NEWTON_DOF_SECONDS = 4e-6  # one site, one dof, one Newton iteration (ring-bump: 0.04 s)
STATIONARY = ("steady", "spectrum", "continue")


def _stationary(scenario, model, solver: str, comm_size: int, dense: float) -> Estimate:
    """Stationary solves: the factors of every site a rank holds (spectrum, continue)."""
    num, dofs = _dofs(model)
    nx, ny = num.cells
    sites, ranks = model.n_sites, max(comm_size, 1)
    dense *= ranks

    def need(s: int) -> float:
        per_rank = math.ceil(s / ranks)
        held = per_rank if solver != "steady" else min(per_rank, MAX_CACHED_FACTORS)
        return (ranks * (_PROCESS_BYTES + dofs * (_DOF_BYTES + (_SITE_DOF_BYTES
                                                                 + _FACTOR_DOF_BYTES) * held))
                + dofs * _SITE_DOF_BYTES * s + dense * float(s) ** 2)

    per_rank = math.ceil(sites / ranks)
    iterations = 8 if solver != "continue" else 8 * 50
    seconds = iterations * per_rank * dofs * _NEWTON_DOF_SECONDS
    return Estimate(bytes=need(sites), seconds=seconds, output=sites * dofs * 8 * 3,
                    what=f"{solver}: P{num.degree} on {nx}x{ny} cells ({dofs} dofs) x "
                    f"{sites} site(s), {per_rank} per rank",
                    fix="fewer space.sites, lower kinetic.cells, or more MPI ranks",
                    sites=sites, need=need)


MAX_CACHED_FACTORS = 64  # site factorisations a rank keeps between Newton steps


def _fitting_sites(need: Callable[[int], float], sites: int, memory: float) -> int:
    """The largest site count up to ``sites`` whose ``need`` fits in ``memory`` (0: none)."""
    lo, hi = 0, sites
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if need(mid) <= memory else (lo, mid - 1)
    return lo


def _sites_error(scenario, est: Estimate, memory: float, what: str) -> PreflightError:
    """The refusal of too many sites: what they need, what is available, how many fit."""
    fit = _fitting_sites(est.need, est.sites, memory)
    if scenario.space.kind == "torus":
        fix = f"space.sites = {math.isqrt(fit)} or fewer ({math.isqrt(fit) ** 2} sites), or "
    elif scenario.space.kind == "mesh":
        fix = f"a space.mesh of at most {fit} nodes, or "
    else:
        fix = f"space.sites = {fit} or fewer, or "
    return PreflightError(
        f"scenario field 'space.sites': {est.sites} sites need about {_size(est.site_bytes)}"
        f" of memory ({what}); {_size(memory)} available -- fix: {fix if fit else ''}"
        f"{est.fix}")


def _check_sites(scenario, model, solver: str, comm_size: int, dense: float,
                 memory: float) -> None:
    """Refuse sites whose dense coupling alone exceeds ``memory``, before building it."""
    ranks = max(comm_size, 1)
    dense *= ranks
    est = Estimate(bytes=dense * float(model.n_sites) ** 2, seconds=0.0, output=0.0,
                   what=solver, fix="a machine with more memory", sites=model.n_sites,
                   need=lambda s: dense * float(s) ** 2)
    if est.bytes > memory:
        raise _sites_error(scenario, est, memory, f"their dense coupling alone: "
                           f"{DENSE_BYTES[solver]} bytes x sites^2 on each of {ranks} "
                           "rank(s)")


def estimate(scenario, solver: str, comm_size: int = 1, model=None) -> Estimate:
    """The :class:`Estimate` of a ``particles``, ``kinetic`` or stationary run.

    ``model``: the scenario's (default: built here; its dense kernel is never built).
    """
    from fpsolver.model import build_model

    model = model or build_model(scenario)
    return _estimate(scenario, solver, comm_size, model, dense_bytes(model, solver))


def _estimate(scenario, solver: str, comm_size: int, model, dense: float) -> Estimate:
    if solver in STATIONARY:
        return _stationary(scenario, model, solver, comm_size, dense)
    if solver == "particles":
        return _particles(scenario, model, dense)
    return _kinetic(scenario, model, comm_size, dense)


def preflight(scenario, solver: str, *, out=None, comm_size: int = 1,
              memory: float | None = None, node_ranks: int | None = None) -> Estimate | None:
    """Check a run before its work; raise :class:`PreflightError` if it cannot finish.

    Args:
        scenario: the scenario.
        solver: ``particles``, ``kinetic``, ``gaussian``, ``stability``, ``steady``,
            ``spectrum`` or ``continue``.
        out: the (created) output folder, to compare the output size with its free space.
        comm_size: MPI ranks sharing the kinetic work.
        memory: bytes available (default: :func:`available_memory`) on this machine.
        node_ranks: ranks on this machine (default all): a job over several nodes has
            ``comm_size / node_ranks`` times this machine's memory.
    """
    from fpsolver.model import build_model
    from fpsolver.paths import check_input_file, scenario_files

    for field, path in scenario_files(scenario):
        check_input_file(path, field)
    memory = available_memory() if memory is None else memory
    memory *= max(comm_size, 1) / max(node_ranks or comm_size, 1)  # nodes alike
    model = build_model(scenario)  # sites and families: the dense kernel is built lazily
    dense = dense_bytes(model, solver)
    _check_sites(scenario, model, solver, comm_size, dense, memory)
    if solver not in ("particles", "kinetic") + STATIONARY:
        return None
    if solver == "kinetic":
        from fpsolver.safe_options import unused_petsc_options

        unused = unused_petsc_options(scenario.kinetic.petsc_options)
        if unused:
            logger.warning("kinetic.petsc_options: %s not used by the chosen solver (ksp_type"
                           " / pc_type) -- fix: remove them or choose the solver they "
                           "configure", ", ".join(unused))
    est = _estimate(scenario, solver, comm_size, model, dense)
    if est.bytes > memory and est.site_bytes > 0.5 * est.bytes:
        raise _sites_error(scenario, est, memory, f"of the run's {_size(est.bytes)}: "
                           f"{est.what}")
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


LOW_ESTIMATE = 2.0  # a measured peak above this many times the estimate is warned about


def peak_memory(comm=None) -> dict:
    """The peak resident memory of this process, summed and largest over ``comm``'s ranks.

    Collective on ``comm``. Each rank's ``ru_maxrss``: the largest resident size of the
    whole process so far (whatever ran in it before the run counts too).

    Returns:
        ``{"peak_memory": sum over the ranks, "peak_memory_rank": largest rank}``, bytes.
    """
    import resource

    peak = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    peak *= 1 if sys.platform == "darwin" else 1024  # bytes on macOS, kB on Linux
    if comm is None or comm.size == 1:
        return {"peak_memory": peak, "peak_memory_rank": peak}
    from mpi4py import MPI

    return {"peak_memory": comm.allreduce(peak, op=MPI.SUM),
            "peak_memory_rank": comm.allreduce(peak, op=MPI.MAX)}


def memory_report(info: dict) -> str:
    """One line: a run's peak memory, per site and beside the preflight estimate.

    ``info``: the run's ``peak_memory``, ``peak_memory_per_site`` and, if known,
    ``peak_memory_rank`` with ``ranks``, the estimate ``memory_estimate`` (bytes) and the
    mesh's ``refinements`` and final ``cells`` (the estimate is for the initial mesh).
    Logs a warning when the peak exceeds :data:`LOW_ESTIMATE` times the estimate.
    """
    peak, est = info["peak_memory"], info.get("memory_estimate")
    refined = (f"{info['cells'][0]}x{info['cells'][1]} cells"
               if info.get("refinements") else None)
    parts = [f"{_size(info['peak_memory_per_site'])} per site"]
    if info.get("ranks", 1) > 1:
        parts.append(f"largest rank {_size(info['peak_memory_rank'])}")
    if est:
        parts.append(f"estimate {_size(est)}"
                     + (f" before the mesh was refined to {refined}" if refined else ""))
        if peak > LOW_ESTIMATE * est:
            why = (f"it is for the initial mesh, which the run refined to {refined} (each "
                   "refinement checks the memory it needs)" if refined else
                   "a run near the machine's memory may not be refused in time -- fix: "
                   "recalibrate the memory constants of fpsolver.preflight")
            logger.warning("memory: the peak %s is %.3g times the preflight estimate %s: the "
                           "estimate is low; %s", _size(peak), peak / est, _size(est), why)
    return f"memory: peak {_size(peak)} ({'; '.join(parts)})"
