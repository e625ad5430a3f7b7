"""Failures that end every rank: share a rank-local failure, or abort the whole job.

Two tools, for the two situations of STYLE ("never raise on one rank where the others
reach a collective"):

- :func:`run_shared` / :func:`shared_failure`: run a piece of rank-local work (reading a
  file, a local solve, a check) and, before the next collective, agree across ranks
  whether it failed. If it failed anywhere, every rank raises the same exception type
  with the message of the lowest failing rank. Costs one ``allreduce`` (plus a ``bcast``
  on failure).
- :func:`abort_on_error`: the last line of defence in a command-line entry point. An
  exception that escapes on some ranks only is printed on stderr and ``comm.Abort(1)``
  ends the job, so ``mpirun`` exits nonzero instead of hanging in the next collective.

The communicator is always the caller's; ``comm=None`` means serial (nothing shared).
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import time
import traceback
from typing import Callable, Iterator, TypeVar

from fpsolver.errors import FpsolverError, RemoteError

__all__ = ["RemoteError", "run_shared", "shared_failure", "abort_on_error", "is_shared"]

T = TypeVar("T")
_ABORT_GRACE = 0.5  # seconds between printing the error and MPI_Abort


def is_shared(exc: BaseException) -> bool:
    """True if ``exc`` was raised on every rank together by :func:`shared_failure`."""
    return bool(getattr(exc, "_fpsolver_shared", False))


def _rebuild(cls_blob: bytes, message: str, attrs: bytes) -> BaseException:
    """An instance of the original exception class carrying the original message.

    Built without calling ``__init__`` (custom signatures such as ScenarioError's would
    not accept the message alone).
    """
    try:
        cls = pickle.loads(cls_blob)
        exc = cls.__new__(cls, message)
        BaseException.__init__(exc, message)
        with contextlib.suppress(Exception):
            exc.__dict__.update(pickle.loads(attrs))
        return exc
    except Exception:
        return RemoteError(message)


def _describe(exc: BaseException, rank: int, size: int) -> tuple[bytes, str, bytes]:
    message = str(exc) or type(exc).__name__
    if size > 1 and not is_shared(exc):
        message = f"{message} [rank {rank} of {size}]"
    try:
        cls_blob = pickle.dumps(type(exc))
    except Exception:
        cls_blob = pickle.dumps(RemoteError)
    attrs = {k: v for k, v in getattr(exc, "__dict__", {}).items() if not k.startswith("_")}
    try:
        attr_blob = pickle.dumps(attrs)
    except Exception:
        attr_blob = pickle.dumps({})
    return cls_blob, message, attr_blob


@contextlib.contextmanager
def shared_failure(comm=None) -> Iterator[None]:
    """Context manager: rank-local work whose failure is raised on every rank.

    Every rank must enter and leave the block (it ends with a collective). Only
    ``Exception`` is shared; ``KeyboardInterrupt`` and ``SystemExit`` pass through.

    Example::

        with shared_failure(comm):
            data = np.load(my_rank_file)     # may fail on one rank only
        comm.allreduce(...)                  # safe: all ranks got here, or all raised
    """
    local: BaseException | None = None
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - shared, then re-raised
        local = exc
    if comm is None or comm.size == 1:
        if local is not None:
            raise local
        return
    size = comm.size
    first = comm.allreduce(comm.rank if local is not None else size, op=_min_op())
    if first == size:
        return
    payload = comm.bcast(_describe(local, comm.rank, size) if comm.rank == first else None,
                         root=first)
    if comm.rank == first:
        local._fpsolver_shared = True
        if len(local.args) <= 1:
            local.args = (payload[1],)
        raise local
    exc = _rebuild(*payload)
    exc._fpsolver_shared = True
    if local is not None:
        raise exc from local
    raise exc


def _min_op():
    from mpi4py import MPI
    return MPI.MIN


def run_shared(comm, fn: Callable[..., T], *args, **kwargs) -> T:
    """``fn(*args, **kwargs)`` on this rank; a failure on any rank raises on all ranks."""
    result = None
    with shared_failure(comm):
        result = fn(*args, **kwargs)
    return result


@contextlib.contextmanager
def abort_on_error(comm=None, *, prefix: str = "fpsolver: error") -> Iterator[None]:
    """Guard for an MPI entry point: an exception escaping on one rank ends the job.

    - Errors raised together on every rank (:func:`shared_failure`) propagate normally,
      so the caller can print them once and exit with its usual code.
    - Any other exception on a job of several ranks is printed on stderr (message, and
      the traceback if it is not an :class:`FpsolverError`), then ``comm.Abort(1)``.
    - Serial runs (``comm`` None or of size 1) propagate everything unchanged.
    """
    try:
        yield
    except BaseException as exc:
        if comm is None or comm.size == 1 or is_shared(exc) or isinstance(exc, SystemExit):
            raise
        if isinstance(exc, FpsolverError):
            text = f"{prefix} on rank {comm.rank} of {comm.size}: {exc}\n"
        elif isinstance(exc, KeyboardInterrupt):
            text = f"{prefix}: interrupted on rank {comm.rank} of {comm.size}\n"
        else:
            text = (f"{prefix} on rank {comm.rank} of {comm.size}: "
                    f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_exception(exc)))
        try:
            sys.stderr.write(text + f"{prefix}: aborting all {comm.size} ranks\n")
            sys.stderr.flush()
            sys.stdout.flush()
            time.sleep(_ABORT_GRACE)  # mpirun forwards output asynchronously; Abort kills it
        finally:
            comm.Abort(1)
