"""The README's speed table is the one generated from benchmarks/results/*.json (issue 12).

No benchmark runs here: ``benchmarks/readme_table.py`` only reads the stored results.
After a benchmark run, ``python benchmarks/readme_table.py --write`` updates the README.
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import readme_table


def test_readme_speed_table_is_generated_from_the_stored_results():
    assert readme_table.readme_block() == readme_table.generate(), (
        "README.md's speed table differs from benchmarks/results/: run "
        "`python benchmarks/readme_table.py --write`")


def test_modelled_figures_say_so():
    for line in readme_table.generate().splitlines():
        if line.startswith("| `bistable`") and "not measured" not in line:
            assert line.count("modelled") >= 2, line  # the particle time and the ratio


def test_stored_results_carry_their_evidence():
    for path in sorted(readme_table.RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        assert path.stat().st_size < 300_000, path
        assert not data["quick"], path
        for key in ("machine", "load_average", "versions", "date_utc", "command", "figures"):
            assert key in data, (path, key)
        assert {"platform", "cpu", "cores"} <= set(data["machine"]), path
        assert {"before", "after"} <= set(data["load_average"]), path
        for key in ("python", "numpy", "numba", "dolfinx", "petsc4py", "fpsolver_commit"):
            assert key in data["versions"], (path, key)
