"""The Brian2 benchmark builds its standalone project in a temporary folder (issue 12)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import particles as bench  # noqa: E402


@pytest.mark.slow
def test_brian_standalone_leaves_nothing_behind(tmp_path):
    py = bench.brian_python()
    if py is None:
        pytest.skip("Brian2 is not installed (make bench-brian creates .venv-brian)")
    before = set(ROOT.iterdir())
    proc = subprocess.run([py, str(ROOT / "benchmarks" / "particles.py"), "--brian",
                           "cpp_standalone", "--n", "2000", "--t-end", "0.002", "--v0", "0.07",
                           "0.2"], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '"target": "cpp_standalone"' in proc.stdout
    assert list(tmp_path.iterdir()) == []  # no output/ in the working directory
    assert set(ROOT.iterdir()) == before
