"""Each formula once, in a module named after it (issue 12).

Errors, time grid, reduced Jacobian, balance current and finite-n offset.
"""

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import fpsolver
from fpsolver import errors

PACKAGE = Path(fpsolver.__file__).parent


def _modules():
    for info in pkgutil.walk_packages(fpsolver.__path__, "fpsolver."):
        if info.name != "fpsolver.__main__":
            yield importlib.import_module(info.name)


def _sources():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), path.read_text()


def test_every_exception_class_lives_in_errors():
    strays = [f"{mod.__name__}.{name}" for mod in _modules()
              for name, obj in vars(mod).items()
              if inspect.isclass(obj) and issubclass(obj, BaseException)
              and obj.__module__.startswith("fpsolver") and obj.__module__ != "fpsolver.errors"]
    assert not strays, strays


def test_old_exception_imports_still_work():
    from fpsolver.runtime import CheckpointError, Interrupted, NumericalError, RemoteError
    from fpsolver.runtime.checkpoint import CheckpointError as C
    from fpsolver.runtime.health import NumericalError as N
    from fpsolver.runtime.parallel import RemoteError as R
    from fpsolver.runtime.signals import Interrupted as Int

    assert (CheckpointError, Interrupted, NumericalError, RemoteError) == (
        errors.CheckpointError, errors.Interrupted, errors.NumericalError, errors.RemoteError)
    assert (C, N, R, Int) == (CheckpointError, NumericalError, RemoteError, Interrupted)
    assert all(issubclass(getattr(errors, name), errors.FpsolverError)
               for name in errors.__all__)


def _defined_in(pattern: str) -> list[str]:
    regex = re.compile(pattern, re.M)
    return [rel for rel, text in _sources() if regex.search(text)]


def test_formulas_defined_once():
    assert _defined_in(r"^def record_times\b") == ["timegrid.py"]
    # U^T DPhi U: balance.py only (stability and finite_n call reduced_jacobian)
    assert _defined_in(r"U\.T @ .*jacobian\(") == ["balance.py"]
    # d vbar/dt on a grid and the 2c offset solve: finite_n.py only
    assert _defined_in(r"np\.gradient\(") == ["finite_n.py"]
    assert _defined_in(r"U\.T @ lam|/ np\.sqrt\((scenario\.)?n\)") == ["finite_n.py"]
