"""Shared fixtures: MPI-safe temporary directories and a fresh garbage collection per test."""

import gc

import pytest


@pytest.fixture(autouse=True)
def _collect_garbage():
    """Free PETSc objects between tests (as DOLFINx's conftest does)."""
    yield
    gc.collect()


@pytest.fixture
def shared_tmp_path(tmp_path):
    """A temporary directory made on rank 0 and broadcast, identical on every rank."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    path = comm.bcast(str(tmp_path) if comm.rank == 0 else None, root=0)
    from pathlib import Path
    return Path(path)

