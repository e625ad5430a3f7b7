"""Expected failures of a command become one line with the fix; real bugs keep their traceback.

:func:`describe` turns the failures a user can cause or repair (fpsolver's own errors,
files and folders: ``OSError``; text that is not UTF-8; a run too large for memory;
input nested too deep; PETSc errors) into ``(message, exit code)``. Anything else is a
bug in fpsolver and is shown with its traceback. ``fpsolver --debug`` shows the
traceback of every failure.
"""

from __future__ import annotations

import errno

from fpsolver.errors import FpsolverError

__all__ = ["describe", "EXIT_FAILURE"]

EXIT_FAILURE = 2  # bad input or failed run (the CLI's convention)

_OS_FIXES = {
    errno.ENOSPC: "free some space or give --out on another file system",
    errno.EDQUOT: "free some space or give --out on another file system",
    errno.EACCES: "check the permissions, or give a folder you can write to",
    errno.EPERM: "check the permissions, or give a folder you can write to",
    errno.EROFS: "give --out on a writable file system",
    errno.ENOENT: "check the path",
    errno.EISDIR: "give a file, not a folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
}


def _petsc_error(exc: BaseException) -> bool:
    return type(exc).__name__ == "Error" and type(exc).__module__.startswith("petsc4py")


def describe(exc: BaseException) -> tuple[str, int] | None:
    """``(one-line message, exit code)`` for an expected failure, None for a bug."""
    if isinstance(exc, FpsolverError):
        return str(exc), EXIT_FAILURE
    if isinstance(exc, UnicodeError):
        return (f"a file is not UTF-8 text ({exc}) -- fix: save it as UTF-8",
                EXIT_FAILURE)
    if isinstance(exc, MemoryError):
        return ("out of memory -- fix: make the run smaller (n, space.sites, kinetic.cells "
                "or kinetic.degree) or use a machine with more memory", EXIT_FAILURE)
    if isinstance(exc, RecursionError):
        return ("the input nests too deep to read -- fix: a scenario has at most a few "
                "levels of tables", EXIT_FAILURE)
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        what = exc.strerror or str(exc) or type(exc).__name__
        fix = _OS_FIXES.get(exc.errno, "check the path, its permissions and the free space")
        return f"{what}{where} -- fix: {fix}", EXIT_FAILURE
    if _petsc_error(exc):
        return (f"PETSc failed: {str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}"
                " -- fix: check kinetic.petsc_options, or make the run smaller",
                EXIT_FAILURE)
    return None
