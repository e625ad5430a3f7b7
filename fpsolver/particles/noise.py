"""Standard normal increments, reproducible and independent of the thread count.

The n pairs are cut into fixed chunks of ``CHUNK`` pairs; chunk c always draws from its
own generator (SFC64 seeded by the c-th child of ``SeedSequence(seed)``). Threads only
decide *when* a chunk is filled, never *what* it contains, so the same seed gives the
same numbers with any number of threads. numpy releases the GIL while filling, so two
threads fill twice as fast (numpy's "multithreaded generation" recipe).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["NormalStream", "CHUNK"]

CHUNK = 1 << 16  # pairs per generator


class NormalStream:
    """Fills an (n, 2) array with i.i.d. N(0, 1) numbers, chunk by chunk.

    Args:
        n: pairs.
        seed: the scenario seed.
        threads: worker threads (1: no pool).
        stream: which independent stream of this seed (0: the dynamics).
    """

    def __init__(self, n: int, seed: int, threads: int = 1, stream: int = 0):
        chunks = (n + CHUNK - 1) // CHUNK
        root = np.random.SeedSequence([seed, stream])
        self.gens = [np.random.Generator(np.random.SFC64(s)) for s in root.spawn(chunks)]
        self.n = n
        self.out = np.empty((n, 2))
        self.pool = ThreadPoolExecutor(threads) if threads > 1 and chunks > 1 else None

    def _fill(self, c: int) -> None:
        self.gens[c].standard_normal(out=self.out[c * CHUNK:(c + 1) * CHUNK])

    def draw(self) -> np.ndarray:
        """The next (n, 2) block of normals (the same array, overwritten each call)."""
        if self.pool is None:
            for c in range(len(self.gens)):
                self._fill(c)
        else:
            list(self.pool.map(self._fill, range(len(self.gens))))
        return self.out

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None
