"""Every command the README shows is run: here (shortened) or by `.ci/run`.

The README's command lines are read from its indented code blocks. `fpsolver` lines run
in order in one folder (later lines read earlier outputs), with `--set` overrides that
only shorten them (fewer pairs, steps, cells, sites); `make` lines must appear in
`.ci/run`. Lines that need tools absent here are mapped to the closest run: `srun` to
`mpirun -n 2` on the same torus file, `docker` to the Dockerfile's install steps in a
fresh venv (tests/test_docker.py, slow) plus the container's command run here. A new
README command without a mapping fails the test, so the README cannot rot silently.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PROGRAMS = ("fpsolver", "mpirun", "srun", "make", "docker")

# overrides appended to shorten a run (a later --set wins); keyed by (command, scenario)
SHORT = {
    "particles": ["--set", "n=2000", "--set", "t_end=0.1"],
    "kinetic": ["--set", "t_end=0.04", "--set", "kinetic.dt=0.01",
                "--quiet"],
    "kinetic ring-bump": ["--set", "space.sites=8"],
    "kinetic my-torus.toml": ["--set", "space.sites=2"],
}

TORUS = """name = "my-torus"
t_end = 1.0
n = 10000
[populations.e]
input = 0.2
[space]
kind = "torus"
sites = 4
[kernel]
family = "gaussian"
width = 0.2
[dynamics]
family = "double_well"
width = [1.2, 0.8]
[gains]
family = "tanh"
"""


def readme_commands() -> list[str]:
    """Indented code lines of README.md that start with one of :data:`PROGRAMS`."""
    lines = []
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("    ") and line.split() and line.split()[0] in PROGRAMS:
            lines.append(line.split("#")[0].strip())
    return lines


def readme_python_blocks() -> list[str]:
    """The ```python blocks of README.md."""
    return re.findall(r"^```python\n(.*?)^```$", (ROOT / "README.md").read_text(), re.M | re.S)


def _shortened(words: list[str]) -> list[str]:
    cmd, name = words[1], words[2] if len(words) > 2 else ""
    return words + SHORT.get(cmd, []) + SHORT.get(f"{cmd} {name}", [])


def _run(words: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, SCRATCH=str(cwd / "scratch"), PATH=f"{BIN}:{os.environ['PATH']}")
    proc = subprocess.run(words, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{shlex.join(words)}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_readme_has_the_commands_this_test_knows():
    commands = readme_commands()
    assert "make demo" in commands and "make test" in commands
    assert any(c.startswith("mpirun -n 2 fpsolver kinetic") for c in commands)
    assert len(commands) >= 20


def test_every_make_line_is_in_ci():
    ci = (ROOT / ".ci" / "run").read_text()
    for command in readme_commands():
        if command.startswith("make"):
            line = rf"^\s*(run_marked |timeout .* )?{re.escape(command)}\b"
            assert re.search(line, ci, re.M), command


def test_every_fpsolver_line_runs(tmp_path):
    """All `fpsolver`, `mpirun`, `srun` and the containers' `fpsolver` lines, in order."""
    (tmp_path / "my-torus.toml").write_text(TORUS)
    (tmp_path / "out").mkdir()
    ran = []
    for command in readme_commands():
        words = shlex.split(command.replace("$SCRATCH", "scratch").replace('"$PWD/out:/out"',
                                                                          "out"))
        if words[0] == "make":
            continue
        if words[0] == "docker":
            if words[1] != "run":
                continue  # `docker build`: tests/test_docker.py runs its install steps
            # the container's command (after the image name), with /out mapped to out/
            args = words[words.index("fpsolver", 2) + 1:]
            entry = words[words.index("--entrypoint") + 1] if "--entrypoint" in words \
                else "fpsolver"
            words = [w.replace("/out", "out") for w in [entry, *args]]
        if words[0] == "srun":
            words = ["mpirun", *words[1:]]
        if words[0] == "mpirun":
            words = ["mpirun", "-n", "2", *words[3:]]  # 2 cores here
        k = words.index("fpsolver")
        run = words[:k] + _shortened(words[k:])
        run[k] = str(BIN / "fpsolver")
        if run[0] == "mpirun":
            run[0] = str(BIN / "mpirun")
        _run(run, tmp_path)
        ran.append(command)
    expected = [c for c in readme_commands() if not c.startswith(("make", "docker build"))]
    assert ran == expected
    assert (tmp_path / "out" / "bistable" / "observables.nc").exists()
    assert (tmp_path / "out" / "rb" / "summary.json").exists()
    assert (tmp_path / "scratch" / "torus" / "summary.json").exists()
    # the Python examples, in the same folder (they open the outputs made above)
    blocks = readme_python_blocks()
    assert len(blocks) >= 2
    for code in blocks:
        _run([sys.executable, "-c", "import matplotlib; matplotlib.use('Agg')\n" + code],
             tmp_path)


def test_readme_error_example_is_what_the_cli_prints(tmp_path):
    text = (ROOT / "README.md").read_text()
    shown = re.search(r"^    (fpsolver: error: scenario field .*)$", text, re.M).group(1)
    proc = subprocess.run([str(BIN / "fpsolver"), "show", "tanh", "--set",
                           "populations.e.tau=-1"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert shown in proc.stderr
