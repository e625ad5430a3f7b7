"""Command-line flags for checkpoints, and the RunControl they describe.

``add_checkpoint_args(parser)`` adds ``--checkpoint-every K``, ``--checkpoint-dir DIR`` and
``--resume DIR`` to a subcommand; :func:`run_control` turns the parsed flags into the
:class:`RunControl` a solver loop uses. Checkpoints go to ``--checkpoint-dir``, else the
``--resume`` directory, else ``OUT/checkpoint``, else ``./checkpoint-<run id>`` (the
scenario's ``name`` is never part of a path).
Without any of the three flags nothing is written unless the run is stopped by a signal
or bad numbers (then the state goes to the default directory).
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from fpsolver.runtime.control import RunControl

__all__ = ["add_checkpoint_args", "run_control", "resume_command"]


def add_checkpoint_args(p: argparse.ArgumentParser) -> None:
    """Add ``--checkpoint-every``, ``--checkpoint-dir`` and ``--resume`` to a parser."""
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="K",
                   help="write a checkpoint every K time steps (and at the end); SIGTERM or "
                   "Ctrl-C always write one before stopping")
    p.add_argument("--checkpoint-dir", type=Path, metavar="DIR",
                   help="checkpoint directory (default: the --resume directory, else "
                   "OUT/checkpoint, else ./checkpoint-RUNID)")
    p.add_argument("--resume", type=Path, metavar="DIR",
                   help="continue the run saved in DIR (same scenario, --set and rank count)")


def checkpoint_dir(args, scenario) -> Path:
    if args.checkpoint_dir is not None:
        return args.checkpoint_dir
    if args.resume is not None:
        return args.resume
    if getattr(args, "out", None) is not None:
        return args.out / "checkpoint"
    if not getattr(args, "_checkpoint_id", None):  # one id per run, never the name
        from fpsolver.rundir import new_run_id
        args._checkpoint_id = new_run_id()
    return Path(f"checkpoint-{args._checkpoint_id}")


def resume_command(args, directory) -> str:
    """The command line that continues this run from ``directory``."""
    parts = ["fpsolver", args.command, str(args.scenario)]
    for item in args.overrides:
        parts += ["--set", item]
    if getattr(args, "out", None) is not None:
        parts += ["--out", str(args.out)]
    if args.checkpoint_every:
        parts += ["--checkpoint-every", str(args.checkpoint_every)]
    parts += ["--resume", str(directory)]
    return " ".join(shlex.quote(p) for p in parts)


def _no_petsc_signal_handler() -> None:
    """Keep PETSc (when it starts later in this process) off SIGTERM/SIGINT.

    The run stops cleanly through :class:`StopRequest` instead of PETSc's abort.
    """
    import os

    options = os.environ.get("PETSC_OPTIONS", "")
    if "-no_signal_handler" not in options:
        os.environ["PETSC_OPTIONS"] = (options + " -no_signal_handler").strip()


def run_control(args, scenario, comm=None, **kwargs) -> RunControl:
    """The :class:`RunControl` of a subcommand's parsed flags (enter it with ``with``)."""
    from fpsolver.scenario import to_toml

    if args.checkpoint_every < 0:
        from fpsolver.errors import FpsolverError
        raise FpsolverError(f"--checkpoint-every must be >= 0, got {args.checkpoint_every}")
    directory = checkpoint_dir(args, scenario)
    command = resume_command(args, directory).rsplit(" --resume ", 1)[0]
    _no_petsc_signal_handler()
    final = bool(args.checkpoint_every or args.resume or args.checkpoint_dir)
    kwargs.setdefault("final", final)  # a plain run leaves no checkpoint unless stopped
    return RunControl(to_toml(scenario), comm, checkpoint_dir=directory,
                      every=args.checkpoint_every, resume=args.resume, command=command,
                      **kwargs)
