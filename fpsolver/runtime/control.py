"""What a time loop calls at each step boundary: bad numbers, checkpoints, stop requests.

:class:`RunControl` bundles :func:`check_state`, :func:`save_checkpoint` /
:func:`load_checkpoint` and :class:`StopRequest` so a solver loop needs three calls::

    with RunControl(to_toml(scenario), comm, checkpoint_dir=d, every=K, resume=r) as ctl:
        saved = ctl.resume_state()            # a Checkpoint, or None for a fresh start
        if saved: restore(saved.arrays); step, t = saved.step, saved.time
        while step < steps:
            advance(); step += 1; t = ...
            ctl.end_of_step(step, t, state)   # may raise NumericalError or Interrupted
        ctl.finish(step, t, state)

``state`` is a dict of this rank's numpy arrays (everything needed to continue exactly:
dofs, history of the time scheme, means ...) or a callable returning it. A value may also
be an append-only list of arrays (recorded observables): it is kept by reference and
stacked only when a checkpoint is written, so the per-step cost does not grow with it. Every call is
collective over ``comm``; all ranks call them at the same steps.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from fpsolver.errors import Interrupted, NumericalError
from fpsolver.runtime.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from fpsolver.runtime.health import find_bad_numbers
from fpsolver.runtime.parallel import is_shared, run_shared, shared_failure
from fpsolver.runtime.signals import StopRequest

__all__ = ["RunControl"]

State = Mapping[str, np.ndarray] | Callable[[], Mapping[str, np.ndarray]]


class RunControl:
    """Checkpoint/resume, clean interruption and bad-number checks for one time loop.

    Args:
        scenario_toml: the resolved scenario (saved with, and checked against, checkpoints).
        comm: the run's communicator (None: serial).
        checkpoint_dir: where checkpoints go (None: never written; a stop request then
            ends the run without saving).
        every: write a checkpoint every ``every`` steps (0: only at the end and on stops).
        resume: a checkpoint directory to continue from (None: fresh start).
        stop: a :class:`StopRequest` to poll; by default one catching SIGTERM and SIGINT
            is installed while the ``with`` block runs.
        command: the command line to quote in the resume hint.
        layout: per-rank fingerprint saved with and checked against checkpoints.
        meta: JSON metadata saved with checkpoints (e.g. the time scheme).
        keep_last_good: copy the state after each good step, so a bad step can save it.
        check_every: check for bad numbers and stop requests every this many steps.
        final: write a checkpoint at the end of the run (:meth:`finish`).
    """

    def __init__(self, scenario_toml: str, comm=None, *, checkpoint_dir=None, every: int = 0,
                 resume=None, stop: StopRequest | None = None,
                 command: str = "fpsolver kinetic SCENARIO", layout: dict | None = None,
                 meta: dict | None = None, keep_last_good: bool = True, check_every: int = 1,
                 final: bool = True):
        self.scenario_toml = scenario_toml
        self.comm = comm
        self.every = int(every or 0)
        self.resume = Path(resume) if resume else None
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else self.resume
        self._own_stop = stop is None
        self.stop = stop or StopRequest()
        self.command = command
        self.layout = layout
        self.meta = meta or {}
        self.keep_last_good = keep_last_good
        self.check_every = max(1, int(check_every))
        self.final = final
        self._reinstalled = False
        self._last_good: tuple[int, float, dict] | None = None
        self._last_saved_step: int | None = None

    def __enter__(self) -> RunControl:
        if self._own_stop:
            self.stop.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._own_stop:
            self.stop.__exit__(*exc)

    # ------------------------------------------------------------------------------------
    def resume_state(self) -> Checkpoint | None:
        """The checkpoint to continue from (validated), or None when starting fresh."""
        self.stop.reinstall()  # the solver set-up may have started PETSc, which takes SIGTERM
        if self.resume is None:
            return None
        saved = load_checkpoint(self.resume, scenario_toml=self.scenario_toml, comm=self.comm,
                                layout=self.layout)
        self._last_saved_step = saved.step
        return saved

    def save(self, step: int, time: float, state: State) -> Path | None:
        """Write a checkpoint now (collective); returns the directory, or None."""
        if self.checkpoint_dir is None:
            return None
        arrays = state() if callable(state) else state
        arrays = {k: np.array(v) for k, v in arrays.items()}
        save_checkpoint(self.checkpoint_dir, arrays, step=step, time=time,
                        scenario_toml=self.scenario_toml, comm=self.comm, meta=self.meta,
                        layout=self.layout)
        self._last_saved_step = step
        return self.checkpoint_dir

    def end_of_step(self, step: int, time: float, state: State, *,
                    fields: Mapping | None = None, masses: Mapping | None = None,
                    mass_floor: float = 0.0) -> None:
        """Call after completing step ``step`` (reaching ``time``); collective.

        Checks ``fields`` (default: the state arrays) and ``masses`` for bad numbers; on a
        bad state saves the last good one and raises :class:`NumericalError`. Writes the
        periodic checkpoint. On a stop request, saves and raises :class:`Interrupted`.
        """
        if not self._reinstalled:
            self.stop.reinstall()
            self._reinstalled = True
        if step % self.check_every:
            if self.every and step % self.every == 0:
                self.save(step, time, state)
            return
        arrays = state() if callable(state) else state
        self._check(step, time, fields if fields is not None else arrays, masses, mass_floor)
        if self.keep_last_good:
            self._last_good = (step, time, {k: list(v) if isinstance(v, list) else
                                            np.array(v, copy=True) for k, v in arrays.items()})
        if self.every and step % self.every == 0:
            self.save(step, time, arrays)
        if self.stop.requested(self.comm):
            where = (self.save(step, time, arrays) if self._last_saved_step != step
                     else self.checkpoint_dir)
            exc = Interrupted(step, time, where, self.stop.signal_name, self.command)
            exc._fpsolver_shared = True  # every rank agreed to stop at this step
            raise exc

    def finish(self, step: int, time: float, state: State) -> Path | None:
        """The final checkpoint (if ``final``, a directory is set and it is not written yet)."""
        if not self.final:
            return None
        if self._last_saved_step == step:
            return self.checkpoint_dir
        return self.save(step, time, state)

    @contextlib.contextmanager
    def guard_step(self, step: int, time: float, *, fields=None, masses=None):
        """Wrap the numerics of step ``step``.

        A failure is shared over ``comm``, the last good state is saved, and NaN/Inf or a
        bad mass in ``fields`` / ``masses`` (callables, evaluated only on failure) turns it
        into a :class:`NumericalError`.
        """
        try:
            with shared_failure(self.comm):
                yield
        except Exception as exc:
            if not (is_shared(exc) or self.comm is None or self.comm.size == 1):
                raise
            self._check(step, time, fields() if callable(fields) else (fields or {}),
                        masses() if callable(masses) else masses, 0.0, cause=exc)
            saved = self._save_last_good()
            if saved:
                note = f"the last good state is saved in {saved}"
                if len(exc.args) == 1 and isinstance(exc.args[0], str):
                    exc.args = (f"{exc.args[0]} ({note})",)  # printed by the CLI
                else:
                    exc.add_note(f"fpsolver: {note}")
            raise

    # ------------------------------------------------------------------------------------
    def _save_last_good(self) -> str | None:
        if self._last_good is not None and self.checkpoint_dir is not None:
            good_step, good_time, good = self._last_good
            if self._last_saved_step != good_step:
                self.save(good_step, good_time, good)
            return f"{self.checkpoint_dir} (step {good_step}, t = {good_time:.6g})"
        if self._last_saved_step is not None:
            return f"{self.checkpoint_dir} (step {self._last_saved_step})"
        return None

    def _check(self, step, time, fields, masses, mass_floor, cause=None) -> None:
        def local():
            found = find_bad_numbers(fields, masses, mass_floor=mass_floor)
            return found
        found = run_shared(self.comm, local)
        flag = found is not None
        if self.comm is not None and self.comm.size > 1:
            from mpi4py import MPI
            first = self.comm.allreduce(self.comm.rank if flag else self.comm.size, op=MPI.MIN)
            if first == self.comm.size:
                return
            found = self.comm.bcast(found, root=first)
        elif not flag:
            return
        exc = NumericalError(found["problem"], step=step, time=time, site=found["site"],
                             quantity=found["quantity"], saved=self._save_last_good())
        exc._fpsolver_shared = True  # found and agreed on every rank
        raise exc from cause
