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
field by field; ``t_end`` may change to extend a run) and optionally a per-rank layout
fingerprint (e.g. owned dofs), and raises :class:`CheckpointError` on every rank alike.
"""

from __future__ import annotations

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
           "read_manifest", "scenario_differences"]

FORMAT = "fpsolver-checkpoint-1"
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
        step: steps completed; time: the time reached.
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
        info = json.dumps({"step": int(step), "rank": rank, "layout": layout or {}})
        payload = {k: np.asarray(v) for k, v in arrays.items()}
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
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint manifest {path} is unreadable: {exc}") from exc
    found = manifest.get("format") if isinstance(manifest, dict) else None
    if found != FORMAT:
        raise CheckpointError(f"{path} is not an fpsolver checkpoint manifest "
                              f"(format {found!r}, expected {FORMAT!r})")
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
            diffs = scenario_differences(manifest["scenario_toml"], scenario_toml,
                                         allow_changes)
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
        info = json.loads(bytes(arrays.pop(_META)).decode())
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
    return Checkpoint(step=int(manifest["step"]), time=float(manifest["time"]), arrays=arrays,
                      meta=manifest.get("meta", {}), directory=directory)
