"""A cluster of T tiles sharing one DRAM, as a numpy model (the RTL is :mod:`trntile.hdl.cluster`).

Each tile is a :class:`~trntile.golden.tile.TileModel` whose DMA and instruction fetches use the shared DRAM
array. The model runs the tiles one after another, each until it stops, which gives the RTL's result when
the tiles' programs do not depend on each other (each writes DRAM the others do not read), as in the
data-parallel GEMM of :mod:`trntile.sw.cluster`. Accesses to the SBUF windows of other tiles (addresses from
:data:`~trntile.hdl.cluster.SBUF_WINDOWS`) are not modelled yet: the model's DMA refuses them as beyond DRAM.
"""

from __future__ import annotations

import numpy as np

from .tile import TileModel

__all__ = ["ClusterModel"]


class ClusterModel:
    """T :class:`TileModel` on one DRAM of ``dram_bytes``.

    Parameters
    ----------
    tiles : int
        T.
    dram_bytes : int
        The shared DRAM.
    **tile_params
        Every tile's ``partitions``, ``sbuf_bytes``, ``queues``, ``semaphores`` and ``dtypes``.
    """

    def __init__(self, *, tiles: int, dram_bytes: int, **tile_params):
        self.dram = np.zeros(dram_bytes, dtype=np.uint8)
        self.tiles = [TileModel(dram_bytes=dram_bytes, **tile_params) for _ in range(tiles)]
        for tile in self.tiles:
            tile.dma.dram = self.dram   # one DRAM for all

    def run(self, starts: list[dict[int, int]]) -> None:
        """Start tile t's engines at ``starts[t]`` (engine index to program address; an empty dict leaves the
        tile idle) and run each tile in turn until it stops."""
        if len(starts) != len(self.tiles):
            raise ValueError(f"starts must give one dict per tile ({len(self.tiles)}), not {len(starts)}")
        for tile, programs in zip(self.tiles, starts):
            if programs:
                tile.start(programs)
                tile.run()
