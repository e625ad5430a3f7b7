"""Test program: write large outputs over and over with write_outputs, until killed.

Version k of every file has vbar == k everywhere and summary["iteration"] == k; prints
``wrote k`` after each complete version.
"""

import sys

import numpy as np

from fpsolver.output import RunResult, write_outputs
from fpsolver.scenario import load_scenario
from fpsolver.space import make_sites

out = sys.argv[1]
scenario = load_scenario("ring-bump", ["space.sites=400", "n=400"])
sites = make_sites(scenario.space)
T = 2000  # vbar + cov: 2000 x 400 x 6 doubles = 38 MB per version
t = np.linspace(0, 1, T)
for k in range(1, 10**6):
    result = RunResult(kind="test", t=t, vbar=np.full((T, sites.count, 2), float(k)),
                       cov=np.full((T, sites.count, 2, 2), float(k)), sites=sites,
                       info={"iteration": k})
    write_outputs(out, scenario, result)
    print(f"wrote {k}", flush=True)
