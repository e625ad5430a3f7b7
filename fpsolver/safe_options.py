"""The PETSc options a scenario may set: an allow-list, so a scenario stays data.

PETSc options can load Python classes (``ksp_type = "python"``), read option files and
write files anywhere (``*_view``, ``*_monitor``, ``ascii:/path``). A shared scenario must
not be able to do that, so ``kinetic.petsc_options`` accepts only the solver choices and
tolerances below; anything else is refused naming the key.

- :func:`check_petsc_options` raises :class:`ScenarioError` for a key or value outside
  the list (with the closest allowed key as a hint);
- :func:`unused_petsc_options` names the allowed options that the chosen solver ignores
  (e.g. GAMG settings with ``pc_type = "lu"``), for a warning before the run.
"""

from __future__ import annotations

import difflib
import re

from fpsolver.errors import ScenarioError

__all__ = ["check_petsc_options", "unused_petsc_options", "KSP_TYPES", "PC_TYPES"]

KSP_TYPES = ("preonly", "gmres", "fgmres", "lgmres", "bcgs", "bicg", "cg", "minres",
             "richardson", "tfqmr", "gcr")
PC_TYPES = ("lu", "cholesky", "ilu", "icc", "jacobi", "bjacobi", "sor", "asm", "gamg",
            "hypre", "none")
FACTOR_SOLVERS = ("petsc", "mumps", "superlu", "superlu_dist", "umfpack", "klu")
ORDERINGS = ("natural", "nd", "1wd", "rcm", "qmd", "amd", "metis")
GAMG_TYPES = ("agg", "classical", "geo")

_NUMBER = (int, float)
# key -> allowed values: a tuple of words, or a (type, low, high) range
_ALLOWED: dict[str, tuple] = {
    "ksp_type": KSP_TYPES,
    "pc_type": PC_TYPES,
    "pc_factor_mat_solver_type": FACTOR_SOLVERS,
    "pc_factor_mat_ordering_type": ORDERINGS,
    "pc_factor_shift_type": ("none", "nonzero", "positive_definite", "inblocks"),
    "pc_factor_levels": (int, 0, 20),
    "ksp_rtol": (float, 0.0, 1.0),
    "ksp_atol": (float, 0.0, 1e10),
    "ksp_divtol": (float, 1.0, 1e300),
    "ksp_max_it": (int, 1, 10**7),
    "ksp_gmres_restart": (int, 1, 10**5),
    "ksp_initial_guess_nonzero": ("true", "false", "0", "1"),
    "ksp_norm_type": ("none", "preconditioned", "unpreconditioned", "natural"),
    "ksp_pc_side": ("left", "right", "symmetric"),
    "pc_gamg_type": GAMG_TYPES,
    "pc_gamg_threshold": (float, -1.0, 1.0),
    "pc_gamg_agg_nsmooths": (int, 0, 10),
    "pc_gamg_square_graph": (int, 0, 10),
    "pc_gamg_sym_graph": ("true", "false", "0", "1"),
    "mg_levels_ksp_type": KSP_TYPES,
    "mg_levels_pc_type": PC_TYPES,
    "mg_levels_ksp_max_it": (int, 1, 100),
    "pc_hypre_type": ("boomeramg", "euclid", "pilut", "parasails"),
    "pc_asm_overlap": (int, 0, 10),
    "sub_pc_type": PC_TYPES,
    "sub_ksp_type": KSP_TYPES,
    "pc_sor_omega": (float, 0.0, 2.0),
}
_MUMPS = re.compile(r"^mat_mumps_(icntl_\d{1,2}|cntl_\d)$")
_MUMPS_RANGE = (float, -1e300, 1e300)
# ICNTL(1..4) choose MUMPS's output streams / verbosity; they stay at the defaults
_MUMPS_OUTPUT = ("mat_mumps_icntl_1", "mat_mumps_icntl_2", "mat_mumps_icntl_3",
                 "mat_mumps_icntl_4")
FIX = ("allowed keys: " + ", ".join(sorted(_ALLOWED)) + ", mat_mumps_icntl_N, mat_mumps_cntl_N"
       " (viewers, monitors, python types and option files are never allowed)")


def _rule(key: str):
    if key in _ALLOWED:
        return _ALLOWED[key]
    if _MUMPS.match(key) and key not in _MUMPS_OUTPUT:
        return _MUMPS_RANGE
    return None


def _refuse(key: str, problem: str, fix: str = FIX):
    raise ScenarioError(f"kinetic.petsc_options.{key}", problem, fix)


def check_petsc_options(options: dict) -> None:
    """Raise :class:`ScenarioError` unless every key and value is on the allow-list."""
    for raw_key, value in options.items():
        key = str(raw_key)
        if key.startswith("-"):
            _refuse(key, "option names are given without the leading '-'",
                    f"write {key.lstrip('-')} = ...")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            _refuse(key, f"PETSc option values are strings or numbers, got {value!r}",
                    'e.g. petsc_options = { ksp_type = "gmres" }')
        rule = _rule(key)
        if rule is None:
            why = ("writes files or runs code" if re.search(
                r"view|monitor|python|options_file|draw|log|history|dump|save|test", key)
                else "is not a solver choice fpsolver allows")
            close = difflib.get_close_matches(key, list(_ALLOWED), n=1, cutoff=0.8)
            hint = f"did you mean '{close[0]}'? " if close and "allows" in why else ""
            _refuse(key, f"option '{key}' {why}", hint + FIX)
        if isinstance(value, str) and (":" in value or "/" in value or "\\" in value):
            _refuse(key, f"value {value!r} looks like a path or a viewer", "give a plain "
                    "solver name or number")
        if isinstance(rule[0], str):
            if str(value).lower() not in rule:
                close = difflib.get_close_matches(str(value), rule, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                _refuse(key, f"value {value!r} is not allowed", f"{hint}use one of {list(rule)}")
            continue
        kind, low, high = rule
        number = value
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                _refuse(key, f"expected a number, got {value!r}", f"give a number in "
                        f"[{low:g}, {high:g}]")
        if not (low <= number <= high) or (kind is int and float(number) != int(number)):
            _refuse(key, f"{value!r} is outside [{low:g}, {high:g}]"
                    + (" or not a whole number" if kind is int else ""),
                    f"give a {'whole ' if kind is int else ''}number in [{low:g}, {high:g}]")


def unused_petsc_options(options: dict, defaults: dict | None = None) -> list[str]:
    """The allowed options that the solver they configure will not read.

    E.g. ``ksp_rtol`` with ``ksp_type = "preonly"`` or ``pc_gamg_*`` without
    ``pc_type = "gamg"``.
    """
    merged = {"ksp_type": "preonly", "pc_type": "lu", **(defaults or {}), **options}
    ksp, pc = str(merged["ksp_type"]), str(merged["pc_type"])
    unused = []
    for key in options:
        if key.startswith("pc_gamg_") or key.startswith("mg_levels_"):
            used = pc == "gamg"
        elif key.startswith("pc_hypre_"):
            used = pc == "hypre"
        elif key.startswith("pc_factor_") or key.startswith("mat_mumps_"):
            used = pc in ("lu", "cholesky", "ilu", "icc")
            if key.startswith("mat_mumps_"):
                used = pc in ("lu", "cholesky") and merged.get(
                    "pc_factor_mat_solver_type", "mumps") == "mumps"
        elif key.startswith("pc_asm_") or key.startswith("sub_"):
            used = pc in ("asm", "bjacobi")
        elif key.startswith("pc_sor_"):
            used = pc == "sor"
        elif key.startswith("ksp_") and key != "ksp_type":
            used = ksp != "preonly"
            if key == "ksp_gmres_restart":
                used = ksp in ("gmres", "fgmres", "lgmres")
        else:
            used = True
        if not used:
            unused.append(key)
    return unused
