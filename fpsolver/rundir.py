"""An output folder holds one run: run id, completion manifest, lock, ``--overwrite``.

Every file a run writes into its ``--out`` folder carries the run's id (``run_id`` in
``observables.nc``'s attributes and in the JSON files, a comment in ``scenario.toml``).
``manifest.json`` lists the files with their sha256 checksums and the run's status
(``complete`` or ``interrupted``); it is written last, so a folder without it did not
finish writing. :func:`verify_run_folder` (used by ``fpsolver plot`` and
:func:`fpsolver.output.read_observables`) refuses a folder that is incomplete, altered
or mixes runs.

:class:`RunFolder` (the CLI's side) takes an exclusive lock (``fcntl.flock``) on
``.fpsolver.lock`` for the whole run, so two runs never write into one folder, and
refuses a folder that holds another run unless ``--overwrite``, which removes the old
set (outputs, snapshots, checkpoint, stability output, figures) before the work starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import uuid
from pathlib import Path

from fpsolver.errors import RunFolderError

__all__ = ["RunFolder", "RunFolderError", "new_run_id", "write_manifest",
           "verify_run_folder", "deferred_signals", "MANIFEST", "RUN_FILES"]

FORMAT = "fpsolver-run-1"
MANIFEST = "manifest.json"
LOCK = ".fpsolver.lock"
# everything a run may leave in its folder (removed together by --overwrite)
RUN_FILES = (MANIFEST, "summary.json", "observables.nc", "scenario.toml", "stability.json",
             "spectrum.json", "eigenfunctions.nc", "branch.nc",
             "snapshots", "checkpoint", "figures")


def new_run_id() -> str:
    """A fresh run id (12 hex digits)."""
    return uuid.uuid4().hex[:12]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(out: Path, names) -> list[Path]:
    found = []
    for name in names:
        path = out / name
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file()
                            and not p.name.startswith("."))
        elif path.is_file():
            found.append(path)
    return found


def write_manifest(out, run_id: str, names, *, status: str = "complete",
                   command: str = "") -> Path:
    """Write ``manifest.json`` (atomically, last) with sha256 checksums of ``names``.

    ``names`` are files or folders below ``out``.
    """
    from fpsolver.output import atomic_write

    out = Path(out)
    files = {str(p.relative_to(out)): _sha256(p) for p in _files(out, names)}
    manifest = {"format": FORMAT, "run_id": run_id, "status": status, "command": command,
                "files": files}
    atomic_write(out / MANIFEST, lambda p: p.write_text(json.dumps(manifest, indent=1)))
    return out / MANIFEST


def read_run_manifest(out) -> dict | None:
    """The manifest of ``out``, None if there is none; RunFolderError if it is malformed."""
    path = Path(out) / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunFolderError(f"{path} is unreadable ({exc}) -- fix: rerun into this folder "
                             "with --overwrite") from exc
    if not (isinstance(manifest, dict) and manifest.get("format") == FORMAT
            and isinstance(manifest.get("files"), dict)):
        raise RunFolderError(f"{path} is not an fpsolver run manifest -- fix: rerun with "
                             "--overwrite, or give the --out folder of a run")
    return manifest


def verify_run_folder(out, *, allow_interrupted: bool = True) -> dict:
    """The manifest of a complete, unaltered, single-run folder; else RunFolderError."""
    out = Path(out)
    manifest = read_run_manifest(out)
    if manifest is None:
        what = ("has run files but no manifest.json: the run did not finish writing"
                if any((out / n).exists() for n in RUN_FILES) else "holds no fpsolver run")
        raise RunFolderError(f"{out} {what} -- fix: rerun into it with --overwrite, or give "
                             "the --out folder of a finished run")
    if manifest["status"] != "complete" and not allow_interrupted:
        raise RunFolderError(f"{out} holds an {manifest['status']} run -- fix: resume or "
                             "rerun it")
    for name, digest in manifest["files"].items():
        path = out / name
        if ".." in Path(name).parts or not path.is_file():
            raise RunFolderError(f"{out}: {name} listed in manifest.json is missing -- the "
                                 "folder was altered; fix: rerun with --overwrite")
        if _sha256(path) != digest:
            raise RunFolderError(f"{out}: {name} does not match its checksum in "
                                 "manifest.json (truncated, altered or from another run) "
                                 "-- fix: rerun with --overwrite")
    return manifest


@contextlib.contextmanager
def deferred_signals(signals=(signal.SIGTERM, signal.SIGINT)):
    """Hold SIGTERM/SIGINT arriving inside the block until it ends.

    So the output writing completes; yields a list that receives the names of the signals
    held.
    """
    import threading

    held: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    previous = {s: signal.signal(s, lambda signum, frame: held.append(
        signal.Signals(signum).name)) for s in signals}
    try:
        yield held
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class RunFolder:
    """The ``--out`` folder of one CLI run: created, test-written, locked, checked.

    Args:
        out: the folder.
        overwrite: remove another run's files first instead of refusing.
        keep: paths inside ``out`` not to remove or count as another run (e.g. the
            checkpoint being resumed).
        continues: the run resumes the one ``out`` holds (its checkpoint is inside
            ``out``): that run's files stay (earlier snapshots) and are replaced as the
            resumed run writes.
    """

    def __init__(self, out, *, overwrite: bool = False, keep=(), command: str = "",
                 continues: bool = False):
        self.out = Path(out)
        self.overwrite = overwrite
        self.continues = continues
        self.keep = [Path(k).absolute() for k in keep]
        self.command = command
        self.run_id = new_run_id()
        self._lock = None

    def __enter__(self) -> RunFolder:
        out = self.out
        if out.exists() and not out.is_dir():
            raise RunFolderError(f"--out {out} is a file, not a folder -- fix: give a folder")
        try:
            out.mkdir(parents=True, exist_ok=True)
            self._lock = open(out / LOCK, "a")
        except OSError as exc:
            raise RunFolderError(f"cannot create or write the --out folder {out}: "
                                 f"{exc.strerror or exc} -- fix: give a writable folder"
                                 ) from exc
        import fcntl
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._lock.close()
            self._lock = None
            raise RunFolderError(f"another fpsolver run is writing into {out} -- fix: wait "
                                 "for it or give another --out") from exc
        try:
            self._claim()
            self._test_write()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    def _kept(self, path: Path) -> bool:
        p = path.absolute()
        return any(p == k or k.is_relative_to(p) or p.is_relative_to(k) for k in self.keep)

    def _claim(self) -> None:
        """Refuse (or, with overwrite, clear) a folder holding another run."""
        present = [n for n in RUN_FILES if (self.out / n).exists()
                   and not self._kept(self.out / n)]
        for orphan in self.out.glob(".*.*"):  # temporary files of a killed writer
            if orphan.name != LOCK and any(orphan.name.startswith(f".{n}.") for n in RUN_FILES):
                orphan.unlink(missing_ok=True)
        if not present or self.continues:
            return
        if not self.overwrite:
            raise RunFolderError(f"--out {self.out} already holds a run ({', '.join(present)})"
                                 " -- fix: give another --out, or --overwrite to replace it")
        for name in present:
            path = self.out / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()

    def _test_write(self) -> None:
        probe = self.out / f".probe-{self.run_id}"
        try:
            with open(probe, "wb") as fh:
                fh.write(b"\0" * 4096)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise RunFolderError(f"cannot write into --out {self.out}: {exc.strerror or exc} "
                                 "-- fix: give a writable folder with free space") from exc
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()

    def free_bytes(self) -> int:
        """Bytes free for an unprivileged user on the output folder's file system."""
        st = os.statvfs(self.out)
        return st.f_bavail * st.f_frsize
