"""The evidence a benchmark leaves: ``benchmarks/results/<name>.json`` (issue 12).

Every record holds the machine (platform, CPU model, cores), the load average before and
after, the versions (python, numpy, numba, dolfinx, petsc4py, fpsolver's git commit), the
UTC date, the exact command line and the figures. ``--quick`` runs (CI smoke runs) never
overwrite the committed results: their record goes to a temporary file, and the run says
so. The README's speed table is generated from these files (``benchmarks/readme_table.py``).
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BUSY = 2.5  # 1-minute load above which a heavy measurement waits (a 2-core machine)


def load() -> list[float]:
    """The 1, 5 and 15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def settle(limit: float = BUSY, tries: int = 3, wait: float = 60.0) -> list[float]:
    """Return the load average at the start of the measurement, after waiting for calm.

    Waits ``wait`` s at a time, at most ``tries`` times, while the 1-minute load is above
    ``limit``; then goes on anyway.
    """
    for _ in range(tries):
        if os.getloadavg()[0] <= limit:
            break
        print(f"  (load {os.getloadavg()[0]:.2f} > {limit}: waiting {wait:.0f} s)", flush=True)
        time.sleep(wait)
    return load()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    try:
        def run(*a):
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True,
                                  text=True, check=True).stdout.strip()
        commit = run("rev-parse", "HEAD")
        dirty = run("status", "--porcelain", "--untracked-files=no", "--", "fpsolver")
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("numpy", "numba", "scipy"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = None
    try:
        importlib.import_module("dolfinx_solver")  # must precede dolfinx
        out["dolfinx"] = importlib.import_module("dolfinx").__version__
    except ImportError:
        out["dolfinx"] = None
    try:
        import petsc4py
        out["petsc4py"] = petsc4py.__version__
    except ImportError:
        out["petsc4py"] = None
    from importlib import metadata
    for dist in ("fplanck", "brian2"):  # the peers, where installed in this environment
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    out["fpsolver_commit"] = _git_commit()
    return out


def machine() -> dict:
    return {"platform": platform.platform(), "cpu": _cpu_model(), "cores": os.cpu_count()}


class Record:
    """The result record of one benchmark run.

    Start it before measuring, :meth:`write` at the end (figures go into :attr:`figures`).
    """

    def __init__(self, name: str, argv: list[str] | None = None, quick: bool = False):
        self.name, self.quick = name, quick
        self.argv = list(sys.argv[1:] if argv is None else argv)
        self.start = datetime.datetime.now(datetime.UTC)
        self.load_before = load()
        self.figures: dict = {}

    def data(self) -> dict:
        return {"benchmark": self.name,
                "date_utc": self.start.isoformat(timespec="seconds"),
                "command": ["python", f"benchmarks/{Path(sys.argv[0]).name}", *self.argv],
                "quick": self.quick, "machine": machine(), "versions": versions(),
                "load_average": {"before": self.load_before, "after": load()},
                "figures": self.figures}

    def write(self, out: str | Path | None = None) -> Path:
        """Write the record and return its path.

        To ``out`` if given; a quick run to a temporary file (the committed results are
        kept); else to ``benchmarks/results/<name>.json``.
        """
        if out is not None:
            path = Path(out)
        elif self.quick:
            fd, name = tempfile.mkstemp(prefix=f"fpsolver-{self.name}-", suffix=".json")
            os.close(fd)
            path = Path(name)
        else:
            path = RESULTS / f"{self.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.data(), indent=1) + "\n")
        if self.quick and out is None:
            print(f"\nquick run: results NOT stored in {RESULTS.relative_to(ROOT)}/ "
                  f"(record written to {path})")
        else:
            print(f"\nresults written to {path}")
        return path


def read(name: str) -> dict | None:
    """The committed record ``benchmarks/results/<name>.json``, or None."""
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None
