"""Hostile-input campaign (issue 9): run fpsolver on many bad inputs, count the outcomes.

    python tests/programs/hostile_campaign.py [--quick] [--jobs 1]

Each input runs as a subprocess with a timeout, in a scratch folder holding a complete
reference run (``ref/``) and a canary file. An outcome is
- a raw traceback: ``Traceback`` on stderr;
- a hang: still running after the timeout;
- a data loss: the reference run or the canary changed, or a file appeared outside the
  scratch folder;
- an inconsistent folder: an ``--out`` folder that exists after the command but is
  neither a verified run (:func:`fpsolver.rundir.verify_run_folder`) nor free of run
  files (a refused run must leave nothing half-written).
Prints one line per failure and the counts; exit code 1 if any count is nonzero.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

FPSOLVER = [sys.executable, "-m", "fpsolver"]
RUN_FILES = ("manifest.json", "summary.json", "observables.nc", "scenario.toml",
             "stability.json")

FIELDS = ["n", "seed", "t_end", "dt", "name", "populations.e.tau", "populations.e.sigma",
          "populations.i.input", "kernel.ee", "kernel.width", "space.sites", "space.kind",
          "record.every", "record.snapshots", "kinetic.cells", "kinetic.degree",
          "kinetic.half_width", "kinetic.dt", "kinetic.tol", "kinetic.domain", "kernel.file",
          "initial.cov", "gains.family", "kinetic.petsc_options"]
VALUES = ["nan", "inf", "-inf", "0", "-1", "1e300", "1e-300", "18446744073709551616",
          "'x'", "''", "[]", "[[1,2],[3]]", "{a=1}", "true", "'/etc/passwd'", "'/dev/zero'",
          "'../../escape'", '"a\\nb"', "1e12", "100000"]
PETSC = ['{ksp_type="python", ksp_python_type="helpers.Evil"}', '{ksp_view="ascii:CANARY"}',
         '{ksp_monitor="CANARY"}', '{options_file="CANARY"}', '{pc_type="ascii:CANARY"}',
         '{ksp_rtoll=1e-8}', '{mat_view="draw"}', '{log_view=""}', '{"-help"=""}',
         '{ksp_converged_reason=""}', '{snes_monitor=""}', '{viewer_binary_filename="x"}']


def _digest(folder: Path) -> str:
    """Checksum of a run folder's files (figures/ excluded: `plot` adds them)."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.name.startswith(".") and "figures" not in p.parts:
            h.update(str(p.relative_to(folder)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _files(work: Path) -> dict:
    return {work / "scen" / n: data for n, data in [
        ("binary.toml", b"\x00\xff\xfe\x01"), ("latin1.toml", 'name="caf\u00e9"'.encode("latin-1")),
        ("utf16.toml", 'name="x"'.encode("utf-16")),
        ("deep.toml", b"a = " + b"[" * 100000 + b"]" * 100000),
        ("big.toml", b"#" * (3 << 20)), ("empty.toml", b""), ("junk.toml", b"n = [1,"),
        ("petsc.toml", b'[kinetic.petsc_options]\nksp_type = "python"\n'
                       b'ksp_python_type = "helpers.Evil"\n'),
        ("nameescape.toml", b'name = "/../../../ref/checkpoint"\nt_end = 0.05\n'),
    ]}


def inputs(work: Path, quick: bool):
    """(label, argv, out folder or None) of every attack."""
    scen = work / "scen"
    yield "help", ["--help"], None
    for path in sorted(scen.iterdir()):
        yield f"file {path.name}", ["show", str(path)], None
        yield f"gaussian {path.name}", ["gaussian", str(path), "--out", "o1"], work / "o1"
    for arg in [str(scen), "/dev/zero", "/dev/null", "/nonexistent.toml", "tanh/", "./tanh",
                "ref", "."]:
        yield f"scenario arg {arg}", ["show", arg], None
    for opt in PETSC:
        yield f"petsc {opt}", ["kinetic", "tanh", "--set", f"kinetic.petsc_options={opt}",
                               "--quiet"], None
    values = VALUES[:6] if quick else VALUES
    for field, value in itertools.product(FIELDS, values):
        yield f"--set {field}={value}", ["show", "tanh", "--set", f"{field}={value}"], None
    for field in (["populations.e.sigma=1e300", "n=1000000000000", "dt=1e-10",
                   "kinetic.cells=4096", "kinetic.half_width=1e-300", "t_end=1e300",
                   "seed=-5", "record.every=1e-300"]):
        yield f"particles {field}", ["particles", "tanh", "--set", field, "--quiet"], None
        yield f"kinetic {field}", ["kinetic", "tanh", "--set", field, "--quiet"], None
    yield "stability nan", ["stability", "tanh", "--time", "nan"], None
    yield "stability -1", ["stability", "tanh", "--time", "-1"], None
    # output folders
    (work / "afile").write_text("x")
    yield "out is a file", ["gaussian", "tanh", "--set", "t_end=0.05", "--out", "afile"], None
    yield "out below a file", ["gaussian", "tanh", "--out", "afile/sub"], None
    yield "out into ref", ["gaussian", "tanh", "--set", "t_end=0.05", "--out", "ref"], None
    yield "stability into ref", ["stability", "tanh", "--out", "ref"], None
    yield "particles into ref", ["particles", "tanh", "--set", "n=100", "--set",
                                 "t_end=0.05", "--quiet", "--out", "ref"], None
    yield "plot ref", ["plot", "ref"], None
    yield "plot scen", ["plot", str(scen)], None
    yield "plot truncated", ["plot", "trunc"], None
    yield "plot nothing", ["plot", "nothing"], None
    yield "resume garbage", ["kinetic", "tanh", "--resume", str(scen), "--quiet"], None
    yield "resume manifest", ["kinetic", "tanh", "--resume", "badck", "--quiet"], None
    yield "name escape", ["kinetic", str(scen / "nameescape.toml"), "--quiet"], None
    yield "checkpoint-every -1", ["kinetic", "tanh", "--checkpoint-every", "-1"], None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer --set values")
    p.add_argument("--timeout", type=float, default=120)
    args = p.parse_args(argv)
    counts = dict(inputs=0, tracebacks=0, hangs=0, losses=0, inconsistent=0, refused=0, ok=0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "scen").mkdir()
        for path, data in _files(work).items():
            path.write_bytes(data)
        (work / "scen" / "helpers.py").write_text("open('PWNED', 'w').write('x')\n")
        subprocess.run(FPSOLVER + ["gaussian", "tanh", "--set", "t_end=0.05", "--out", "ref"],
                       cwd=work, check=True, capture_output=True)
        subprocess.run(FPSOLVER + ["gaussian", "tanh", "--set", "t_end=0.05", "--out",
                                   "trunc"], cwd=work, check=True, capture_output=True)
        nc = work / "trunc" / "observables.nc"
        nc.write_bytes(nc.read_bytes()[:200])
        (work / "badck").mkdir()
        (work / "badck" / "manifest.json").write_text('{"format": "fpsolver-checkpoint-2"}')
        (work / "CANARY").write_text("canary")
        ref = _digest(work / "ref")
        outside = set(os.listdir(tempfile.gettempdir()))
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        for label, argv_, out in inputs(work, args.quick):
            counts["inputs"] += 1
            try:
                proc = subprocess.run(FPSOLVER + argv_, cwd=work, capture_output=True,
                                      text=True, timeout=args.timeout, env=env)
            except subprocess.TimeoutExpired:
                counts["hangs"] += 1
                print(f"HANG       {label}")
                continue
            problems = []
            if "Traceback" in proc.stderr:
                counts["tracebacks"] += 1
                problems.append("traceback: " + proc.stderr.strip().splitlines()[-1][:150])
            if (_digest(work / "ref") != ref or (work / "CANARY").read_text() != "canary"
                    or (work / "PWNED").exists() or (work / "scen" / "PWNED").exists()):
                counts["losses"] += 1
                problems.append("data loss (ref, canary or code run)")
                ref = _digest(work / "ref")
            if out is not None and out.exists() and _inconsistent(out):
                counts["inconsistent"] += 1
                problems.append(f"inconsistent folder {out.name}")
            if out is not None and out.exists():
                import shutil
                shutil.rmtree(out)
            counts["refused" if proc.returncode else "ok"] += 1
            for problem in problems:
                print(f"FAIL       {label}: {problem}")
        new = set(os.listdir(tempfile.gettempdir())) - outside
        stray = [n for n in new if "pwn" in n.lower() or "canary" in n.lower()]
        if stray:
            counts["losses"] += len(stray)
            print(f"FAIL       files written outside: {stray}")
    print(json.dumps(counts))
    bad = counts["tracebacks"] + counts["hangs"] + counts["losses"] + counts["inconsistent"]
    return 1 if bad else 0


def _inconsistent(out: Path) -> bool:
    from fpsolver.rundir import RunFolderError, verify_run_folder

    present = [n for n in RUN_FILES if (out / n).exists()]
    if not present:
        return False
    try:
        verify_run_folder(out)
    except RunFolderError:
        return True
    return False


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
