"""The user docs match the code: the generated scenario reference and model.md's numbers."""

import dataclasses
import re
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np

from fpsolver.gaussian import run_gaussian
from fpsolver.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parent.parent


def _keys(cls, prefix=""):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _keys(hints[f.name], key)
        else:
            yield key


def test_scenario_reference_is_up_to_date():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_scenario_reference.py"),
                           "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + " (run scripts/gen_scenario_reference.py)"


def test_scenario_reference_lists_every_key_with_help():
    text = (ROOT / "docs" / "scenario-reference.md").read_text()
    keys = list(_keys(Scenario))
    assert len(keys) > 30
    for key in keys:
        row = re.search(rf"^\| `{re.escape(key)}` \|[^|]+\|[^|]+\| (.+) \|$", text, re.M)
        assert row and row.group(1).strip(), f"{key} missing or without help"


def test_reference_check_detects_a_stale_file(tmp_path):
    stale = tmp_path / "ref.md"
    stale.write_text("old\n")
    script = str(ROOT / "scripts" / "gen_scenario_reference.py")
    assert subprocess.run([sys.executable, script, "--check", "--output", str(stale)],
                          capture_output=True).returncode == 1


def test_model_doc_tanh_table_matches_the_gaussian_limit():
    text = (ROOT / "docs" / "model.md").read_text()
    rows = re.findall(r"^\| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$",
                      text, re.M)
    table = np.array(rows, dtype=float)
    assert table.shape == (5, 5)
    result = run_gaussian(load_scenario("tanh", ["record.every=0.5"]))
    s = result.site_average()
    for t, ke, ki, ve, vi in table:
        k = int(np.argmin(np.abs(s["t"] - t)))
        assert abs(s["t"][k] - t) < 1e-9
        np.testing.assert_allclose([s["K_ee"][k], s["K_ii"][k], s["vbar_e"][k], s["vbar_i"][k]],
                                   [ke, ki, ve, vi], atol=2e-6)
