"""Reliability of long runs: shared failures, interruption, checkpoints, bad numbers.

Failures end every rank, SIGTERM/SIGINT interrupt cleanly, checkpoints are atomic and
resumable, and bad numbers are found where they appear.

- :mod:`~fpsolver.runtime.parallel`: :func:`run_shared`, :func:`shared_failure`,
  :func:`abort_on_error`.
- :mod:`~fpsolver.runtime.signals`: :class:`StopRequest` (raises :class:`Interrupted`).
- :mod:`~fpsolver.runtime.checkpoint`: :func:`save_checkpoint`, :func:`load_checkpoint`.
- :mod:`~fpsolver.runtime.health`: :func:`check_state` (raises :class:`NumericalError`).
- :mod:`~fpsolver.runtime.control`: :class:`RunControl`, the three calls a time loop makes.

The exceptions live in :mod:`fpsolver.errors` and are re-exported here.
"""

from fpsolver.errors import CheckpointError, Interrupted, NumericalError, RemoteError
from fpsolver.runtime.checkpoint import Checkpoint, load_checkpoint, read_manifest, save_checkpoint
from fpsolver.runtime.control import RunControl
from fpsolver.runtime.health import check_state, find_bad_numbers
from fpsolver.runtime.parallel import abort_on_error, run_shared, shared_failure
from fpsolver.runtime.signals import StopRequest

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "Interrupted",
    "NumericalError",
    "RemoteError",
    "RunControl",
    "StopRequest",
    "abort_on_error",
    "check_state",
    "find_bad_numbers",
    "load_checkpoint",
    "read_manifest",
    "run_shared",
    "save_checkpoint",
    "shared_failure",
]
