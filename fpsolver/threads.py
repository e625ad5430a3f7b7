"""Threads placed per rank: no oversubscription under ``mpirun``/``srun`` by default.

fpsolver's parallelism is MPI ranks (the kinetic solver) and numba threads (the particle
simulator). BLAS/OpenMP threads inside numpy, PETSc and MUMPS do not pay on these
problems (measured on ``ring-bump``, 2 cores: 33.9 s with the libraries' default threads
against 25.9 s with one thread, one rank; under ``mpirun -n 2`` the default threads
oversubscribe the cores and two ranks were slower than one). So, unless the user chose:

- BLAS/OpenMP pools get ``FPSOLVER_THREADS`` threads, default 1 per rank;
- numba (the particle simulator) gets the node's cores shared between the node's ranks.

A variable the user set (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
``MKL_NUM_THREADS``, ``NUMBA_NUM_THREADS``) is kept as it is (an empty one counts as
unset). Must run before numpy is imported to reach every library; pools already loaded
are limited with threadpoolctl.
"""

from __future__ import annotations

import os
import sys

__all__ = ["local_ranks", "place_threads", "usable_cores"]

BLAS_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# how launchers tell a rank how many ranks share its node (MPICH/Hydra, Open MPI, Slurm)
_LOCAL_SIZE = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE")


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def local_ranks(environ=os.environ) -> int:
    """Ranks on this node according to the launcher (1 outside MPI)."""
    for name in _LOCAL_SIZE:
        value = environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    value = environ.get("PMI_SIZE", "")  # total ranks: an upper bound on the local ones
    return int(value) if value.isdigit() and int(value) > 0 else 1


def _blas_threads(environ) -> int:
    value = environ.get("FPSOLVER_THREADS", "1")
    if not value.isdigit() or int(value) < 1:
        raise SystemExit(f"FPSOLVER_THREADS={value!r}: give a positive whole number of "
                         "BLAS/OpenMP threads per rank (default 1)")
    return int(value)


def place_threads(environ=os.environ) -> dict[str, str]:
    """Set the thread counts the user left unset; return what was set."""
    blas = _blas_threads(environ)
    chosen = {name: str(blas) for name in BLAS_VARIABLES if not environ.get(name)}
    if not environ.get("NUMBA_NUM_THREADS"):
        chosen["NUMBA_NUM_THREADS"] = str(max(1, usable_cores() // local_ranks(environ)))
    environ.update(chosen)
    if "numpy" in sys.modules and environ is os.environ:  # pools already loaded
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=int(environ["OPENBLAS_NUM_THREADS"]))
    return chosen
