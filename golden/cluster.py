"""A cluster of T tiles sharing one DRAM, as a numpy model (the RTL is :mod:`trntile.hdl.cluster`).

Each tile is a :class:`~trntile.golden.tile.TileModel` whose DMA and instruction fetches see the cluster's
address space (:class:`ClusterMemory`): the shared DRAM from 0 and every tile's window from
:data:`~trntile.hdl.cluster.TILE_WINDOWS`, its SBUF and then its semaphore window; an address in none answers
an error, as the crossbar's DECERR does (the tile models' ``read_faults`` and ``write_faults``). A COPY that
writes into a semaphore window must write exactly one aligned 4-byte word of a semaphore that exists, which
adds the word to it; any other COPY that touches a semaphore window stops with ``WRITE_RESPONSE`` (or
``READ_RESPONSE`` for a read), as the window's SLVERR does. The model runs the started engines of every
tile in turns, one instruction each, as :meth:`TileModel.run` does one tile's, so that a tile may wait for what
another does; when none can move, those still waiting stop with ``DEADLOCK``. A program the host starts on a
tile after another has finished sees what the first wrote.
"""

from __future__ import annotations

import numpy as np

from ..hdl.cluster import TILE_WINDOWS, tile_window_bytes
from ..hdl.isa import EngineError, EngineState
from ..hdl.params import SEMAPHORES
from .tile import TileModel

__all__ = ["ClusterModel", "ClusterMemory"]

_SPACE = 1 << 32   # every tile's address space


class ClusterMemory:
    """The 32-bit address space every tile of a cluster sees, for the golden DMA and instruction fetch: byte
    ``a`` is ``dram[a]`` below ``dram.size``; tile j's window starts at ``TILE_WINDOWS + j x window``, with byte
    ``o`` of its SBUF (``sbufs[j]`` seen flat, partition-major) at ``+ o`` and its semaphore window at
    ``+ sbufs[j].size``, where writing the four bytes of word i adds their little-endian value to
    ``semaphores[j][i]``. Indexed with an array of addresses or a slice, like the numpy array it stands in for;
    addresses in none of these are never accessed (the tiles' fault ranges stop the access first)."""

    def __init__(self, dram: np.ndarray, sbufs: list[np.ndarray], window: int,
                 semaphores: list[np.ndarray] | None = None):
        self.dram, self.sbufs, self.window = dram, sbufs, window
        self.semaphores = semaphores or [np.zeros(0, dtype=np.uint32) for _ in sbufs]
        self.size = _SPACE

    def _route(self, addresses: np.ndarray):
        """Yield ``(mask, memory, offsets)`` for each memory the addresses fall in."""
        addresses = np.asarray(addresses, dtype=np.int64)
        in_dram = addresses < self.dram.size
        yield in_dram, self.dram, addresses[in_dram]
        windows = addresses - TILE_WINDOWS
        for j, sbuf in enumerate(self.sbufs):
            mine = (windows >= j * self.window) & (windows < j * self.window + sbuf.size)
            yield mine, sbuf.reshape(-1), windows[mine] - j * self.window

    def _signals(self, addresses: np.ndarray, values: np.ndarray) -> None:
        """Add the words written into semaphore windows to their semaphores."""
        windows = addresses - TILE_WINDOWS
        for j, (sbuf, semaphores) in enumerate(zip(self.sbufs, self.semaphores)):
            start = j * self.window + sbuf.size
            mine = (windows >= start) & (windows < start + 4 * semaphores.size)
            if not mine.any():
                continue
            offsets, data = windows[mine] - start, values[mine].astype(np.uint64)
            for word in np.unique(offsets // 4):
                in_word = offsets // 4 == word
                value = int(sum(int(v) << (8 * int(o % 4)) for o, v in zip(offsets[in_word], data[in_word])))
                semaphores[word] = (int(semaphores[word]) + value) & 0xFFFF_FFFF

    @staticmethod
    def _addresses(key) -> np.ndarray:
        if isinstance(key, slice):
            return np.arange(key.start, key.stop, dtype=np.int64)
        return np.asarray(key, dtype=np.int64).reshape(-1)

    def __getitem__(self, key) -> np.ndarray:
        addresses = self._addresses(key)
        out = np.zeros(addresses.size, dtype=np.uint8)
        for mask, memory, offsets in self._route(addresses):
            out[mask] = memory[offsets]
        return out

    def __setitem__(self, key, values) -> None:
        addresses = self._addresses(key)
        values = np.broadcast_to(np.asarray(values, dtype=np.uint8), addresses.shape)
        for mask, memory, offsets in self._route(addresses):
            memory[offsets] = values[mask]
        self._signals(addresses, values)


class _DramFlags:
    """``dram_undefined`` of a tile in a cluster: flags for the shared DRAM; writes elsewhere are ignored."""

    def __init__(self, flags: np.ndarray):
        self.flags = flags

    def __setitem__(self, key, value) -> None:
        addresses = np.asarray(key, dtype=np.int64).reshape(-1)
        self.flags[addresses[addresses < self.flags.size]] = value


class ClusterModel:
    """T :class:`TileModel` on one DRAM of ``dram_bytes``, each reaching every tile's SBUF and semaphores.

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
        self.dram_undefined = np.zeros(dram_bytes, dtype=bool)
        window = tile_window_bytes(tile_params["partitions"], tile_params["sbuf_bytes"])
        sbuf_size = window // 2
        unmapped = [(dram_bytes, TILE_WINDOWS), (TILE_WINDOWS + tiles * window, _SPACE)]
        signal_windows = []  # (start, end) of each tile's semaphores: there, only a one-word write is good
        for j in range(tiles):
            start = TILE_WINDOWS + j * window + sbuf_size
            count = tile_params.get("semaphores", SEMAPHORES.default)
            signal_windows.append((start, start + 4 * count))
            unmapped.append((start + 4 * count, start + sbuf_size))
        reads_unmapped = unmapped + signal_windows
        self.tiles = [TileModel(dram_bytes=dram_bytes, read_faults=reads_unmapped, write_faults=unmapped,
                                signal_windows=signal_windows, **tile_params)
                      for _ in range(tiles)]
        self.memory = ClusterMemory(self.dram, [tile.sbuf for tile in self.tiles], window,
                                    [tile.semaphores for tile in self.tiles])
        for tile in self.tiles:
            tile.dma.dram = self.memory
            tile.dram_undefined = _DramFlags(self.dram_undefined)

    def run(self, starts: list[dict[int, int]], *, max_instructions: int = 1_000_000, rng=None) -> None:
        """Start tile t's engines at ``starts[t]`` (engine index to program address; an empty dict leaves the
        tile idle) and run every started engine of every tile, one instruction at a time in turn, until each
        is done or stopped; when none can move, the ones still waiting stop with ``DEADLOCK``.

        With ``rng`` (a ``random.Random``), each round visits the engines in a random order and lets each run a
        random number of instructions, so that kernels whose semaphores leave a race show it by ending
        differently from one schedule to the next."""
        if len(starts) != len(self.tiles):
            raise ValueError(f"starts must give one dict per tile ({len(self.tiles)}), not {len(starts)}")
        for tile, programs in zip(self.tiles, starts):
            if programs:
                tile.start(programs)
        executed = 0
        while True:
            running = [(tile, index) for tile in self.tiles for index, status in enumerate(tile.status)
                       if status.state == EngineState.RUNNING]
            if not running:
                return
            if rng is not None:
                rng.shuffle(running)
            progress = False
            for tile, index in running:
                for _ in range(1 if rng is None else rng.choice([1, 1, 2, 5, 20])):
                    if tile.status[index].state != EngineState.RUNNING or not tile._step(index):
                        break
                    progress = True
                    executed += 1
            if executed > max_instructions:
                raise RuntimeError(f"more than {max_instructions} instructions: a program that never ends?")
            if not progress:
                for tile, index in running:
                    tile._stop(index, EngineError.DEADLOCK)
                return
