"""Kernels for a cluster of tiles (:mod:`trntile.hdl.cluster`): a data-parallel GEMM.

:func:`parallel_gemm` splits ``C = A @ B`` by columns: tile t computes ``C[:, columns[t]] = A @ B[:, columns[t]]``
with the single-tile GEMM kernel (:func:`trntile.sw.gemm.gemm_kernel`) on its own slice of the shared DRAM
(``region`` bytes from ``t x region``, ``region`` = ``dram_bytes / T`` rounded down to a power of two), holding its own copy of A.T, its columns of B and
of C, and its programs. The tiles never wait for each other, so the cluster's time is the slowest tile's.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..hdl.cluster import CLUSTER_DRAM_BYTES, TILES
from ..hdl.isa import INSTRUCTION_BYTES
from .gemm import gemm_kernel
from .kernel import Kernel

__all__ = ["ParallelGemm", "parallel_gemm"]


@dataclasses.dataclass
class ParallelGemm:
    """One GEMM split over the tiles of a cluster (see :func:`parallel_gemm`)."""

    kernels: list[Kernel]               #: tile t's kernel
    columns: list[tuple[int, int]]      #: tile t computes C[:, start:stop]
    dram_bytes: int
    region: int                         #: tile t's slice of DRAM starts at t x region

    def image(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The shared DRAM to start from: each tile's programs, its A.T and its columns of B."""
        image = np.zeros(self.dram_bytes, dtype=np.uint8)
        region = self.region
        for t, (kernel, (start, stop)) in enumerate(zip(self.kernels, self.columns)):
            own = kernel.dram_image({"at": np.asarray(a).T, "b": np.asarray(b)[:, start:stop]})
            image[t * region:(t + 1) * region] = own[t * region:(t + 1) * region]
        return image

    @property
    def starts(self) -> list[dict[int, int]]:
        """Each tile's engines' program addresses."""
        return [kernel.program_addresses() for kernel in self.kernels]

    def read(self, dram: np.ndarray) -> np.ndarray:
        """C out of a DRAM image: each tile's columns from its own region."""
        return np.concatenate([kernel.read(dram, "c") for kernel in self.kernels], axis=1)


def parallel_gemm(m: int, n: int, k: int, dtype: str, *, tiles: int, partitions: int, queues: int,
                  sbuf_bytes: int, dram_bytes: int) -> ParallelGemm:
    """``C[m, n] = A[m, k] @ B[k, n]`` on ``tiles`` tiles, N split as evenly as can be (the first tiles take
    one column more); every tile needs at least one column. ``ValueError`` naming the limit otherwise, or
    when a tile's share does not fit its slice of DRAM."""
    TILES.validate(tiles)
    CLUSTER_DRAM_BYTES.validate(dram_bytes)
    if not isinstance(n, int) or n < tiles:
        raise ValueError(f"n must be at least the number of tiles ({tiles}) to give each a column, not {n!r}")
    region = dram_bytes >> (tiles - 1).bit_length()   # a power of two: T slices of it fit in DRAM
    base, extra = divmod(n, tiles)
    columns, start = [], 0
    for t in range(tiles):
        stop = start + base + (t < extra)
        columns.append((start, stop))
        start = stop
    kernels = [gemm_kernel(m, stop - start, k, dtype, partitions=partitions, queues=queues, sbuf_bytes=sbuf_bytes,
                           dram_bytes=dram_bytes, data_address=t * region)
               for t, (start, stop) in enumerate(columns)]
    for t, kernel in enumerate(kernels):
        programs = kernel.programs()
        end = max(address + INSTRUCTION_BYTES * len(programs[engine])
                  for engine, address in kernel.program_addresses(programs).items())
        if end > (t + 1) * region:
            raise ValueError(f"tile {t}'s share of the GEMM needs {end - t * region} bytes of DRAM, more than "
                             f"its slice of {region} bytes (dram_bytes / T, rounded down to a power of two)")
    return ParallelGemm(kernels, columns, dram_bytes, region)
