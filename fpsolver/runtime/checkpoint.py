"""Checkpoints: the state of a time loop, one ``.npz`` per rank plus a JSON manifest.

Layout of a checkpoint directory ``DIR``::

    DIR/manifest.json            which snapshot is current, step, time, ranks, scenario
    DIR/step-000120/rank-0000.npz   the arrays of rank 0 at step 120
    DIR/step-000120/rank-0001.npz   ...

Writing is atomic at two levels: every file is written under a temporary name and
renamed (:func:`fpsolver.output.atomic_write`), and a snapshot becomes current only when
rank 0 renames the new manifest over the old one, after every rank has written its file.
A job killed at any moment leaves the previous checkpoint complete and readable; older
snapshots are removed only after the manifest points past them.

Reading validates the format, the rank count, the scenario (the resolved TOML, compared
field by field; ``t_end`` may change to extend a run), the sha256 checksum of every
array (format 2) and optionally a per-rank layout fingerprint (e.g. owned dofs), and
raises :class:`CheckpointError` on every rank alike. :func:`agree_on_step` makes the
ranks agree on the restored step before any collective, so inconsistent rank files give
one clear error instead of a deadlock. Temporary files of a killed writer are removed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fpsolver.errors import CheckpointError
from fpsolver.output import atomic_write
from fpsolver.runtime.parallel import run_shared

__all__ = ["Checkpoint", "CheckpointError", "save_checkpoint", "load_checkpoint",
           "read_manifest", "scenario_differences", "agree_on_step", "array_checksum"]

FORMAT = "fpsolver-checkpoint-2"
OLD_FORMATS = ("fpsolver-checkpoint-1",)  # no checksums: read with a warning
MANIFEST = "manifest.json"
_META = "__meta__"


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns on each rank.

    Attributes:
        step: the step index saved (steps completed).
        time: the simulation time at that step.
        arrays: this rank's named arrays.
        meta: the JSON metadata given to :func:`save_checkpoint` (same on every rank).
        directory: the checkpoint directory.
    """

    step: int
    time: float
    arrays: dict
    meta: dict = field(default_factory=dict)
    directory: Path | None = None


def array_checksum(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes."""
    a = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    digest.update(a.tobytes())
    return digest.hexdigest()


def agree_on_step(comm, step: int, expected: int | None = None, what: str = "checkpoint"
                  ) -> None:
    """Raise :class:`CheckpointError` on every rank unless all ranks hold ``step``.

    And ``step`` must equal ``expected`` when given. Collective (two small allreduces).
    """
    try:
        step = int(np.asarray(step).item())
    except (TypeError, ValueError, OverflowError):
        step = -1  # missing or malformed on this rank: never equal to a real step
    local_bad = expected is not None and step != int(expected)
    if comm is None or comm.size == 1:
        low = high = int(step)
        bad = local_bad
    else:
        from mpi4py import MPI
        low = comm.allreduce(int(step), op=MPI.MIN)
        high = comm.allreduce(int(step), op=MPI.MAX)
        bad = comm.allreduce(bool(local_bad), op=MPI.LOR)
    if low != high or bad:
        exc = CheckpointError(f"the {what} is inconsistent: the ranks restored steps "
                              f"{low}..{high}" + (f", the manifest says {expected}"
                                                  if expected is not None else "")
                              + " -- the checkpoint was altered or damaged; use an older "
                              "copy or restart the run")
        exc._fpsolver_shared = True  # raised on every rank together
        raise exc


def _remove_orphans(directory: Path) -> None:
    """Temporary files left by a writer killed inside atomic_write."""
    for orphan in list(directory.glob(f".{MANIFEST}.*")) + list(
            directory.glob("step-*/.rank-*.npz.*")):
        orphan.unlink(missing_ok=True)


def _rank_file(snapshot: Path, rank: int) -> Path:
    return snapshot / f"rank-{rank:04d}.npz"


def _bcast(comm, value, root=0):
    return value if comm is None or comm.size == 1 else comm.bcast(value, root=root)


def _barrier(comm):
    if comm is not None and comm.size > 1:
        comm.Barrier()


def save_checkpoint(directory, arrays: dict, *, step: int, time: float, scenario_toml: str,
                    comm=None, meta: dict | None = None, layout: dict | None = None,
                    keep: int = 1) -> Path:
    """Write this rank's ``arrays`` and (on rank 0) the manifest; collective.

    Args:
        directory: checkpoint directory (created).
        arrays: name -> numpy array, this rank's part of the state (names without ``__``).
        step: steps completed.
        time: the time reached.
        scenario_toml: the resolved scenario (:func:`fpsolver.scenario.to_toml`).
        comm: the run's communicator (None: serial).
        meta: JSON-serialisable metadata, taken from rank 0 (e.g. the time scheme).
        layout: JSON-serialisable per-rank fingerprint checked on load (e.g. dof counts).
        keep: how many snapshots to keep (older ones are deleted after the manifest moves).

    Returns:
        The snapshot directory written.
    """
    directory = Path(directory)
    rank = 0 if comm is None else comm.rank
    size = 1 if comm is None else comm.size
    snapshot = directory / f"step-{int(step):09d}"

    def write_local():
        if any(name.startswith("__") for name in arrays):
            raise CheckpointError(f"checkpoint array names must not start with '__': "
                                  f"{sorted(arrays)}")
        snapshot.mkdir(parents=True, exist_ok=True)
        payload = {k: np.asarray(v) for k, v in arrays.items()}
        sums = {k: array_checksum(v) for k, v in payload.items()}
        info = json.dumps({"step": int(step), "rank": rank, "layout": layout or {},
                           "sha256": sums})
        payload[_META] = np.frombuffer(info.encode(), dtype=np.uint8)

        def write(tmp: Path):
            with open(tmp, "wb") as fh:  # a file object: numpy must not append '.npz'
                np.savez(fh, **payload)
        atomic_write(_rank_file(snapshot, rank), write)

    run_shared(comm, write_local)  # every rank wrote its file, or all raise

    def write_manifest():
        if rank != 0:
            return
        previous = _snapshots(directory)
        manifest = {"format": FORMAT, "snapshot": snapshot.name, "step": int(step),
                    "time": float(time), "ranks": size, "scenario_toml": scenario_toml,
                    "meta": meta or {}}
        atomic_write(directory / MANIFEST,
                     lambda p: p.write_text(json.dumps(manifest, indent=1)))
        _remove_orphans(directory)  # every rank's file is renamed by now
        old = [p for p in previous if p != snapshot]
        for stale in old[: max(0, len(old) - (keep - 1))]:
            shutil.rmtree(stale, ignore_errors=True)

    run_shared(comm, write_manifest)
    return snapshot


def _snapshots(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("step-*") if p.is_dir())


def read_manifest(directory) -> dict:
    """The manifest of a checkpoint directory (local, not collective)."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.exists():
        hint = ("it has no manifest.json (was the first checkpoint interrupted?)"
                if directory.is_dir() else "the directory does not exist")
        raise CheckpointError(f"no checkpoint in {directory}: {hint} -- give the directory "
                              "a previous run wrote with --checkpoint-every or on interruption")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"checkpoint manifest {path} is unreadable: {exc} -- the "
                              "checkpoint is damaged; use an older copy or restart the run"
                              ) from exc
    found = manifest.get("format") if isinstance(manifest, dict) else None
    if found not in (FORMAT, *OLD_FORMATS):
        raise CheckpointError(f"{path} is not an fpsolver checkpoint manifest "
                              f"(format {found!r}, expected {FORMAT!r}) -- fix: give the "
                              "directory a run wrote with --checkpoint-dir, or restart")
    kinds = {"snapshot": str, "step": int, "time": (int, float), "ranks": int,
             "scenario_toml": str}
    bad = [k for k, t in kinds.items() if isinstance(manifest.get(k), bool)
           or not isinstance(manifest.get(k), t)]
    if bad or not str(manifest["snapshot"]).startswith("step-") or "/" in \
            manifest["snapshot"] or manifest["step"] < 0:
        raise CheckpointError(f"checkpoint manifest {path} is malformed (fields "
                              f"{bad or ['snapshot', 'step']}) -- the checkpoint is damaged; "
                              "use an older copy or restart the run")
    if found in OLD_FORMATS:
        import logging
        logging.getLogger(__name__).warning(
            "checkpoint %s has the old format %s without checksums: its arrays are not "
            "verified", directory, found)
    return manifest


def _flatten(node, prefix="") -> dict:
    out = {}
    if isinstance(node, dict) and not prefix.endswith("petsc_options"):
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else k))
    else:
        out[prefix] = node
    return out


def scenario_differences(saved_toml: str, current_toml: str,
                         allow: tuple[str, ...] = ("t_end",)) -> list[str]:
    """Fields whose values differ between two resolved scenarios, as ``field: a -> b``."""
    a, b = _flatten(tomllib.loads(saved_toml)), _flatten(tomllib.loads(current_toml))
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key in allow or a.get(key) == b.get(key):
            continue
        diffs.append(f"{key}: {a.get(key, '(absent)')!r} in the checkpoint, "
                     f"{b.get(key, '(absent)')!r} now")
    return diffs


def load_checkpoint(directory, *, scenario_toml: str | None = None, comm=None,
                    layout: dict | None = None,
                    allow_changes: tuple[str, ...] = ("t_end",)) -> Checkpoint:
    """Read this rank's part of the current checkpoint in ``directory``; collective.

    Args:
        directory: a checkpoint directory written by :func:`save_checkpoint`.
        scenario_toml: the resolved scenario of the resuming run; compared with the saved
            one (fields in ``allow_changes`` may differ). None skips the check.
        comm: the run's communicator; its size must equal the saved rank count.
        layout: this rank's fingerprint; must equal the saved one when given.
        allow_changes: scenario fields that may differ from the saved scenario.

    Raises:
        CheckpointError: on every rank, naming what does not match and how to fix it.
    """
    directory = Path(directory)
    rank = 0 if comm is None else comm.rank
    size = 1 if comm is None else comm.size

    def check_manifest():
        if rank != 0:
            return None
        manifest = read_manifest(directory)
        if manifest["ranks"] != size:
            raise CheckpointError(
                f"checkpoint {directory} was written by {manifest['ranks']} rank(s), this run "
                f"has {size} -- resume with `mpirun -n {manifest['ranks']} ...`")
        if scenario_toml is not None:
            try:
                diffs = scenario_differences(manifest["scenario_toml"], scenario_toml,
                                             allow_changes)
            except (tomllib.TOMLDecodeError, RecursionError) as exc:
                raise CheckpointError(f"checkpoint {directory}: the scenario in its manifest "
                                      "is damaged -- use an older copy or restart the run"
                                      ) from exc
            if diffs:
                shown = "; ".join(diffs[:5]) + (f"; ... ({len(diffs)} in all)"
                                                 if len(diffs) > 5 else "")
                raise CheckpointError(
                    f"checkpoint {directory} belongs to a different scenario: {shown} -- "
                    "resume with the scenario and --set overrides of the original run "
                    "(its resolved scenario is in manifest.json)")
        return manifest

    manifest = _bcast(comm, run_shared(comm, check_manifest))

    def read_local():
        path = _rank_file(directory / manifest["snapshot"], rank)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise CheckpointError(f"checkpoint file {path} is missing or unreadable: {exc} "
                                  "-- the checkpoint is damaged; use an older copy or "
                                  "restart the run") from exc
        if _META not in arrays:
            raise CheckpointError(f"checkpoint file {path} has no metadata record")
        try:
            info = json.loads(bytes(arrays.pop(_META)).decode())
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise CheckpointError(f"checkpoint file {path} has a damaged metadata record"
                                  ) from exc
        if not isinstance(info, dict):
            raise CheckpointError(f"checkpoint file {path} has a damaged metadata record")
        sums = info.get("sha256")
        if manifest["format"] == FORMAT:
            if not isinstance(sums, dict) or set(sums) != set(arrays):
                raise CheckpointError(f"checkpoint file {path}: its arrays do not match "
                                      "their checksum list -- the checkpoint was altered; "
                                      "use an older copy or restart the run")
            changed = sorted(k for k, v in arrays.items() if array_checksum(v) != sums[k])
            if changed:
                raise CheckpointError(f"checkpoint file {path}: array(s) {changed[:5]} do "
                                      "not match their sha256 checksums -- the checkpoint "
                                      "was altered or damaged; use an older copy or "
                                      "restart the run")
        if info.get("step") != manifest["step"] or info.get("rank") != rank:
            raise CheckpointError(f"checkpoint file {path} is for step {info.get('step')} "
                                  f"rank {info.get('rank')}, the manifest says step "
                                  f"{manifest['step']} rank {rank}")
        if layout is not None and json.loads(json.dumps(layout)) != info.get("layout"):
            raise CheckpointError(
                f"checkpoint {directory}: the data layout of rank {rank} differs "
                f"(saved {info.get('layout')}, now {layout}) -- resume with the same mesh, "
                "degree and number of ranks as the original run")
        return arrays

    arrays = run_shared(comm, read_local)
    _remove_orphans_shared(comm, directory)
    return Checkpoint(step=int(manifest["step"]), time=float(manifest["time"]), arrays=arrays,
                      meta=manifest.get("meta", {}), directory=directory)


def _remove_orphans_shared(comm, directory: Path) -> None:
    def clean():
        if comm is None or comm.rank == 0:
            _remove_orphans(directory)
    _barrier(comm)  # every rank has read its file
    run_shared(comm, clean)
