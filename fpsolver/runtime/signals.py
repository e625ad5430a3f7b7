"""Clean interruption: SIGTERM / SIGINT become a flag that time loops poll at step ends.

A signal handler only sets a flag; the loop asks :meth:`StopRequest.requested` at a step
boundary, with the communicator, so every rank agrees (one cheap ``allreduce`` of an
int, every ``every`` calls) and all ranks stop at the same step, write a checkpoint and
leave together. A second signal of the same kind while the first is pending falls back
to the previous handler (Ctrl-C twice interrupts at once).

Example::

    with StopRequest() as stop:
        for step in range(first, steps):
            advance()
            if stop.requested(comm):
                save_checkpoint(...)
                raise Interrupted(...)
"""

from __future__ import annotations

import signal
import threading

from fpsolver.errors import Interrupted

__all__ = ["StopRequest", "Interrupted"]


class StopRequest:
    """Catches SIGTERM and SIGINT while active; :meth:`requested` says whether to stop.

    Args:
        signals: the signals to catch.
        every: agree across ranks every ``every``-th call of :meth:`requested` (between
            agreements it answers False). Must be the same on every rank.
    """

    def __init__(self, signals=(signal.SIGTERM, signal.SIGINT), every: int = 1):
        self.signals = tuple(signals)
        self.every = max(1, int(every))
        self._received: int | None = None
        self._previous: dict = {}
        self._calls = 0
        self._agreed = False

    # -- handler installation -----------------------------------------------------------
    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def reinstall(self) -> None:
        """Take the signals back after a library installed its own C-level handlers.

        PETSc's initialisation installs a handler that aborts on SIGTERM (unless
        ``-no_signal_handler``); calling this after PETSc started restores ours. Python
        does not see the library's handler, so this always re-registers.
        """
        if threading.current_thread() is threading.main_thread():
            for sig in self._previous:
                signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if self._received == signum:  # second time: the user insists
            previous = self._previous.get(signum)
            if callable(previous):
                previous(signum, frame)
                return
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
            return
        self._received = signum

    def request(self, signum: int = signal.SIGTERM) -> None:
        """Ask for a stop as if ``signum`` had arrived (tests, or a wall-time limit)."""
        self._received = signum

    # -- polling --------------------------------------------------------------------------
    @property
    def local(self) -> bool:
        """A signal arrived on this rank (no communication)."""
        return self._received is not None

    @property
    def signal_name(self) -> str:
        """Name of the signal received (``SIGTERM``, ...), or ``request`` without one."""
        if self._received is None:
            return "request"
        try:
            return signal.Signals(self._received).name
        except ValueError:
            return f"signal {self._received}"

    def requested(self, comm=None) -> bool:
        """Whether to stop now; collective when ``comm`` has several ranks.

        Call it at the same step boundaries on every rank. Once it returned True it keeps
        returning True (without communicating).
        """
        if self._agreed:
            return True
        self._calls += 1
        if comm is None or comm.size == 1:
            self._agreed = self._received is not None
            return self._agreed
        if self._calls % self.every:
            return False
        from mpi4py import MPI
        flag = comm.allreduce(0 if self._received is None else int(self._received), op=MPI.MAX)
        if flag:
            self._received = self._received or flag
            self._agreed = True
        return self._agreed
