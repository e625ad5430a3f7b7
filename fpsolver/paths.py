"""Every file a scenario names, resolved and opened one way.

A scenario names three kinds of input files: ``kernel.file`` (a ``.npy`` matrix),
``space.mesh`` and ``kinetic.domain`` (mesh files). Each is

- resolved relative to the scenario file that names it (a ``--set`` value, or a
  shipped scenario, relative to the current directory): :func:`resolve_scenario_paths`;
- used read-only, and must be a regular file below a size limit (no directories,
  devices or pipes): :func:`check_input_file`;
- loaded without pickle (a ``.npy`` header is checked before any data is read):
  :func:`load_matrix`.

Errors are :class:`ScenarioError` naming the field and the fix.
"""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np

from fpsolver.errors import ScenarioError

__all__ = ["PATH_FIELDS", "resolve_scenario_paths", "check_input_file", "load_matrix",
           "scenario_files", "MAX_INPUT_BYTES"]

PATH_FIELDS = (("kernel", "file"), ("space", "mesh"), ("kinetic", "domain"))
NOT_PATHS = {("kinetic", "domain"): ("box", "disk")}
MAX_INPUT_BYTES = 1 << 30  # 1 GiB: a kernel matrix of 10^4 sites is 0.8 GB


def _is_path_value(section: str, key: str, value) -> bool:
    return isinstance(value, str) and bool(value) and value not in NOT_PATHS.get(
        (section, key), ())


def resolve_scenario_paths(data: dict, base: Path) -> dict:
    """Make the relative paths of a scenario dict absolute against ``base`` (in place)."""
    for section, key in PATH_FIELDS:
        node = data.get(section)
        if not isinstance(node, dict):
            continue
        value = node.get(key)
        if _is_path_value(section, key, value):
            if "\0" in value:
                raise ScenarioError(f"{section}.{key}", "contains a NUL character",
                                    "give a file path")
            path = Path(value).expanduser()
            node[key] = str(path if path.is_absolute() else (base / path).absolute())
    return data


def scenario_files(scenario) -> list[tuple[str, Path]]:
    """``(field, path)`` of every input file the scenario uses."""
    used = {("kernel", "file"): scenario.kernel.family == "matrix",
            ("space", "mesh"): scenario.space.kind == "mesh",
            ("kinetic", "domain"): True}
    out = []
    for section, key in PATH_FIELDS:
        value = getattr(getattr(scenario, section), key)
        if used[(section, key)] and _is_path_value(section, key, value):
            out.append((f"{section}.{key}", Path(value)))
    return out


def check_input_file(path, field: str, max_bytes: int = MAX_INPUT_BYTES) -> Path:
    """``path`` if it is an existing regular file of at most ``max_bytes``.

    Else a :class:`ScenarioError` naming ``field``.
    """
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ScenarioError(field, f"file {path} not found", "give an existing file (a "
                            "relative path is taken from the scenario file's folder)") from None
    except OSError as exc:
        raise ScenarioError(field, f"cannot access {path}: {exc.strerror}",
                            "give a readable file") from exc
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise ScenarioError(field, f"{path} is {kind}", "give the path of a regular file")
    if info.st_size > max_bytes:
        raise ScenarioError(field, f"{path} has {info.st_size / 2**20:.1f} MiB (limit "
                            f"{max_bytes / 2**20:.0f} MiB)", "give a smaller file")
    return path


def load_matrix(path, field: str, shape: tuple[int, int]) -> np.ndarray:
    """A real matrix of ``shape`` from a ``.npy`` file, without pickle.

    The header (shape, dtype) is checked before the data is read.
    """
    path = check_input_file(path, field)
    fix = f"give a {shape[0]}x{shape[1]} float array saved with numpy.save (a .npy file)"
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                found, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                found, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            if tuple(found) != tuple(shape):
                raise ScenarioError(field, f"matrix has shape {tuple(found)}, the space has "
                                    f"{shape[0]} sites", fix)
            if dtype.kind not in "fiu" or dtype.hasobject:
                raise ScenarioError(field, f"matrix has dtype {dtype}, not a real number "
                                    "type", fix)
            fh.seek(0)
            matrix = np.load(fh, allow_pickle=False)
    except ScenarioError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise ScenarioError(field, f"cannot read {path} as a .npy array: {exc}", fix) from exc
    return np.asarray(matrix, dtype=float)
