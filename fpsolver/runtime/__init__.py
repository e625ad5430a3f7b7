"""Reliability of long runs: failures that end every rank, clean interruption on
SIGTERM/SIGINT, atomic checkpoints with resume, and bad-number checks.

- :mod:`~fpsolver.runtime.parallel`: :func:`run_shared`, :func:`shared_failure`,
  :func:`abort_on_error`.
- :mod:`~fpsolver.runtime.signals`: :class:`StopRequest`, :class:`Interrupted`.
- :mod:`~fpsolver.runtime.checkpoint`: :func:`save_checkpoint`, :func:`load_checkpoint`.
- :mod:`~fpsolver.runtime.health`: :func:`check_state`, :class:`NumericalError`.
- :mod:`~fpsolver.runtime.control`: :class:`RunControl`, the three calls a time loop makes.
"""

from fpsolver.runtime.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    read_manifest,
    save_checkpoint,
)
from fpsolver.runtime.control import RunControl
from fpsolver.runtime.health import NumericalError, check_state, find_bad_numbers
from fpsolver.runtime.parallel import RemoteError, abort_on_error, run_shared, shared_failure
from fpsolver.runtime.signals import Interrupted, StopRequest

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
