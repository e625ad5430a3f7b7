"""Thread placement per rank (fpsolver/threads.py): no oversubscription under mpirun."""

import os
import subprocess
import sys

import pytest

from fpsolver.threads import local_ranks, place_threads, usable_cores


@pytest.mark.parametrize("environ, ranks", [
    ({}, 1),
    ({"MPI_LOCALNRANKS": "2", "PMI_SIZE": "4"}, 2),      # MPICH/Hydra
    ({"OMPI_COMM_WORLD_LOCAL_SIZE": "3"}, 3),             # Open MPI
    ({"SLURM_NTASKS_PER_NODE": "8"}, 8),                  # srun
    ({"PMI_SIZE": "4"}, 4),                               # total ranks only: an upper bound
    ({"MPI_LOCALNRANKS": "garbage"}, 1),
])
def test_local_ranks_from_the_launcher(environ, ranks):
    assert local_ranks(environ) == ranks


def test_defaults_give_one_blas_thread_and_share_the_cores():
    env = {"MPI_LOCALNRANKS": "2"}
    chosen = place_threads(env)
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "1"
    assert env["NUMBA_NUM_THREADS"] == str(max(1, usable_cores() // 2))
    assert set(chosen) == {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                           "NUMBA_NUM_THREADS"}


def test_what_the_user_set_is_kept():
    env = {"OMP_NUM_THREADS": "4", "NUMBA_NUM_THREADS": "3", "FPSOLVER_THREADS": "2",
           "OPENBLAS_NUM_THREADS": ""}
    place_threads(env)
    assert env["OMP_NUM_THREADS"] == "4" and env["NUMBA_NUM_THREADS"] == "3"
    assert env["OPENBLAS_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "2"  # empty = unset


def test_bad_fpsolver_threads_names_the_variable():
    with pytest.raises(SystemExit, match="FPSOLVER_THREADS='two'"):
        place_threads({"FPSOLVER_THREADS": "two"})


def test_the_loaded_blas_pools_follow_the_placement():
    """In a fresh process without thread variables, every BLAS pool has one thread."""
    env = {k: v for k, v in os.environ.items()
           if not k.endswith("_NUM_THREADS") and k != "FPSOLVER_THREADS"}
    code = ("import numpy, fpsolver, dolfinx_solver, dolfinx\n"
            "from threadpoolctl import threadpool_info\n"
            "print(sorted({p['num_threads'] for p in threadpool_info()}))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[1]"
