"""The particle simulator of the finite balanced E-I network (MODEL §1).

Public API: :func:`run_particles`. Modules, one job each:

- :mod:`.run`: the driver (time loop, records, info);
- :mod:`.steppers`: one linearly implicit Euler-Maruyama step (numba and numpy paths);
- :mod:`.kernels`: the compiled per-pair passes;
- :mod:`.coupling`: the low-rank balanced input and its small implicit solve;
- :mod:`.positions`: positions, bins and the initial state;
- :mod:`.noise`: reproducible, thread-count-independent normals;
- :mod:`.records`: per-bin moments, Fourier mode 1, snapshots.
"""

from fpsolver.particles.run import run_particles

__all__ = ["run_particles"]
