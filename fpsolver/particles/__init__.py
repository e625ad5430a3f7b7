"""The particle simulator of the finite balanced E-I network (MODEL §1).

Public API: :func:`run_particles`. Modules, one job each:

- :mod:`.run`: the driver (time loop, records, info);
- :mod:`.steppers`: one linearly implicit Euler-Maruyama step (numba and numpy paths);
- :mod:`.kernels`: the compiled per-pair passes;
- :mod:`.coupling`: the low-rank balanced input and its small implicit solve;
- :mod:`.positions`: positions, bins and the initial state;
- :mod:`.noise`: reproducible, thread-count-independent normals, drawn in the kernels;
- :mod:`.records`: per-bin moments, Fourier mode 1, snapshots.
"""

import os

# numba's OpenMP layer (GNU libgomp) spins 300000 rounds at every barrier by default. On a
# machine shared with other work that spinning steals the time of the thread being waited
# for: 2 threads ran up to 4x slower per step than 1. A short spin keeps the speed on an
# idle machine (measured within noise) and degrades gently under load. Effective only if
# libgomp is not loaded yet; an explicit setting wins.
os.environ.setdefault("GOMP_SPINCOUNT", "20000")

from fpsolver.particles.run import run_particles  # noqa: E402

__all__ = ["run_particles"]
