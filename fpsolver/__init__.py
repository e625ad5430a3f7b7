"""fpsolver: the kinetic (large-network) limit of balanced excitatory-inhibitory networks.

Solvers: the particle simulator of the finite network (:mod:`fpsolver.particles`), the
Gaussian reduction (:mod:`fpsolver.gaussian`), the stability analysis
(:mod:`fpsolver.stability`) and the finite-element kinetic solver
(:mod:`fpsolver.kinetic`). The model is specified in ``docs/model.md``.
"""

import os
from pathlib import Path

# Compiled-code caches live in the user's cache directory, never in the source tree.
_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fpsolver"
os.environ.setdefault("NUMBA_CACHE_DIR", str(_cache / "numba"))

# One BLAS/OpenMP thread per rank and the cores shared between a node's ranks, unless the
# user set the variables (before numpy loads; see fpsolver/threads.py).
from fpsolver.threads import place_threads  # noqa: E402

place_threads()

from fpsolver.errors import (  # noqa: E402
    BalanceError,
    CheckpointError,
    ConvergenceError,
    FpsolverError,
    Interrupted,
    MeshError,
    NumericalError,
    RemoteError,
    ScenarioError,
)
from fpsolver.scenario import Scenario, load_scenario, scenario_names  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "BalanceError",
    "CheckpointError",
    "ConvergenceError",
    "FpsolverError",
    "Interrupted",
    "MeshError",
    "NumericalError",
    "RemoteError",
    "Scenario",
    "ScenarioError",
    "load_scenario",
    "scenario_names",
    "__version__",
]
