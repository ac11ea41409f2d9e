"""Kernels for a cluster of tiles (:mod:`trntile.hdl.cluster`): a data-parallel GEMM and a ring all-reduce.

:func:`parallel_gemm` splits ``C = A @ B`` by columns: tile t computes ``C[:, columns[t]] = A @ B[:, columns[t]]``
with the single-tile GEMM kernel (:func:`trntile.sw.gemm.gemm_kernel`) on its own slice of the shared DRAM
(``region`` bytes from ``t x region``, ``region`` = ``dram_bytes / T`` rounded down to a power of two), holding its own copy of A.T, its columns of B and
of C, and its programs. The tiles never wait for each other, so the cluster's time is the slowest tile's.

:func:`all_reduce` sums a ``[P, n]`` fp32 or int32 tensor held at the same SBUF offset of every tile, leaving
the sum in every tile, with no host in between: a ring reduce-scatter then a ring all-gather (each of T - 1
steps) over T chunks of the free dimension. Tile t sends to tile t + 1 (mod T) only, by DMA into its SBUF
window, and signals it through its semaphore window; the receiving tile's ACT engine adds what arrived into
its own copy with an accumulate ACTIVATE (:mod:`trntile.golden.act`). Chunk c is summed in ring order
starting at tile c, ``x[c] + x[c+1] + ... + x[c-1]`` (fp32, rounded after each addition; int32 saturating
after each, as ACT's int32 output does).

Semaphores the all-reduce uses on every tile (it needs ``semaphores`` >= 5):

- ``SENT`` (0): my DMA queue's data copies completed (local);
- ``RECEIVED`` (1): chunks my predecessor has put in my SBUF (its increments);
- ``ADDED`` (2): my ACT engine's accumulates done (local);
- ``READY`` (3): my successor has finished its reduce-scatter, so I may overwrite its chunks (its increment);
- ``LOADED`` (4): my optional load from DRAM done (local).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..golden.act import Activate, Space as ActSpace
from ..golden.dma import Endpoint
from ..golden.tensor_engine import AccessPattern
from ..hdl.cluster import CLUSTER_DRAM_BYTES, TILES, sbuf_window_address, semaphore_address
from ..hdl.isa import INSTRUCTION_BYTES
from ..hdl.params import PARTITIONS, SBUF_BYTES
from .asm import Copy, End, Instruction, Nop, Signal, Wait, encode_program
from .gemm import gemm_kernel
from .kernel import Kernel

__all__ = ["ParallelGemm", "parallel_gemm", "AllReduce", "all_reduce", "ring_sum"]


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


#: The semaphores :func:`all_reduce` uses on every tile (module docstring).
SENT, RECEIVED, ADDED, READY, LOADED = range(5)
_ACT, _QUEUE0 = 1, 2


@dataclasses.dataclass
class AllReduce:
    """A ring all-reduce over the tiles of a cluster (see :func:`all_reduce`)."""

    tiles: int
    partitions: int
    elements: int                       #: per partition
    dtype: str                          #: "fp32" or "int32"
    offset: int                         #: SBUF byte offset of the tensor on every tile
    staging: int                        #: SBUF byte offset of the T - 1 chunk-sized landing slots
    chunks: list[tuple[int, int]]       #: chunk c is elements [start, stop) of every partition
    programs: list[dict[int, list[Instruction]]]   #: tile t's programs by engine index (1 ACT, 2 queue 0)
    addresses: list[dict[int, int]]     #: where they go in DRAM
    one: list[int]                      #: tile t's DRAM word holding 1, the increment its signals write
    dram_bytes: int

    @property
    def starts(self) -> list[dict[int, int]]:
        """Each tile's engines' program addresses."""
        return [dict(addresses) for addresses in self.addresses]

    @property
    def bytes(self) -> int:
        """Bytes of the tensor on one tile (``P x elements x 4``)."""
        return self.partitions * self.elements * 4

    def image(self, dram: np.ndarray | None = None) -> np.ndarray:
        """``dram`` (or zeros) with every tile's programs and its word of 1 written in."""
        image = np.zeros(self.dram_bytes, dtype=np.uint8) if dram is None else dram
        for t in range(self.tiles):
            image[self.one[t]:self.one[t] + 4] = [1, 0, 0, 0]
            for engine, address in self.addresses[t].items():
                raw = np.frombuffer(encode_program(self.programs[t][engine]), dtype=np.uint8)
                image[address:address + raw.size] = raw
        return image


def ring_sum(tensors: list[np.ndarray], chunks: list[tuple[int, int]]) -> np.ndarray:
    """What :func:`all_reduce` leaves in every tile for tile t's tensor ``tensors[t]`` (``[P, n]``, fp32 or
    int32): chunk c summed in ring order from tile c, rounded (fp32) or saturated (int32) after each add."""
    tiles = len(tensors)
    out = np.array(tensors[0], copy=True)
    for c, (start, stop) in enumerate(chunks):
        total = tensors[c % tiles][:, start:stop].copy()
        for k in range(1, tiles):
            addend = tensors[(c + k) % tiles][:, start:stop]
            if total.dtype == np.float32:
                with np.errstate(all="ignore"):
                    total = np.add(addend, total, dtype=np.float32)
            else:
                wide = addend.astype(np.int64) + total.astype(np.int64)
                total = np.clip(wide, -(1 << 31), (1 << 31) - 1).astype(np.int32)
        out[:, start:stop] = total
    return out


def all_reduce(elements: int, dtype: str, *, tiles: int, partitions: int, sbuf_bytes: int, dram_bytes: int,
               queues: int = 1, pieces: int | None = None, offset: int = 0, load: list[int] | None = None,
               store: list[int] | None = None) -> AllReduce:
    """Sum the ``[partitions, elements]`` ``dtype`` tensor at SBUF byte ``offset`` of every tile into every
    tile (module docstring). The landing slots follow the tensor in SBUF. Each chunk moves in ``pieces``
    parts (default: 4, or fewer for chunks that short), so that a tile adds one part while the next arrives.
    DMA queue 0 moves the data; with ``queues`` >= 2, queue 1 writes the signals, so that the data queue
    does not wait for them. With ``load``, tile t first copies its tensor from DRAM address ``load[t]``
    (row-major, ``P x elements``); with ``store``, it copies the sum to ``store[t]`` at the end. Each tile's
    programs and its word of 1 go at the start of its slice of DRAM (``dram_bytes / T`` rounded down to a
    power of two). ``ValueError`` naming the limit when something does not fit."""
    TILES.validate(tiles)
    PARTITIONS.validate(partitions)
    SBUF_BYTES.validate(sbuf_bytes)
    CLUSTER_DRAM_BYTES.validate(dram_bytes)
    if dtype not in ("fp32", "int32"):
        raise ValueError(f"dtype must be fp32 or int32 (the ACT engine adds those), not {dtype!r}")
    if isinstance(elements, bool) or not isinstance(elements, int) or elements < tiles:
        raise ValueError(f"elements must be an integer of at least the number of tiles ({tiles}), not {elements!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0 or offset % 4:
        raise ValueError(f"offset must be a non-negative multiple of 4, not {offset!r}")
    if isinstance(queues, bool) or not isinstance(queues, int) or queues < 1:
        raise ValueError(f"queues must be a positive integer, not {queues!r}")
    base, extra = divmod(elements, tiles)
    pieces = min(4, base) if pieces is None else pieces
    if isinstance(pieces, bool) or not isinstance(pieces, int) or not 1 <= pieces <= base:
        raise ValueError(f"pieces must be an integer in 1..{base} (the shortest chunk), not {pieces!r}")
    for name, addresses in (("load", load), ("store", store)):
        if addresses is not None and len(addresses) != tiles:
            raise ValueError(f"{name} must give one DRAM address per tile ({tiles}), not {len(addresses)}")
    chunks, start = [], 0
    for c in range(tiles):
        stop = start + base + (c < extra)
        chunks.append((start, stop))
        start = stop
    slot = 4 * (base + (extra > 0))
    staging = offset + 4 * elements
    end = staging + (tiles - 1) * slot
    if end > sbuf_bytes:
        raise ValueError(f"the tensor and its {tiles - 1} landing slots need {end} bytes of each SBUF "
                         f"partition from offset {offset}, more than sbuf_bytes ({sbuf_bytes})")
    region = dram_bytes >> (tiles - 1).bit_length()
    p, k = partitions, pieces
    row = sbuf_bytes // 4        # one partition further in a window, in 4-byte elements

    def parts(c: int) -> list[tuple[int, int]]:   # chunk c's pieces, as element ranges
        start, stop = chunks[c]
        step, more = divmod(stop - start, k)
        bounds = [start + q * step + min(q, more) for q in range(k + 1)]
        return list(zip(bounds, bounds[1:]))

    def at(start: int, stop: int, byte: int, tile: int | None = None) -> Endpoint:
        """Elements start..stop of every partition at SBUF byte ``byte``: mine, or through ``tile``'s window."""
        if tile is None:
            return Endpoint.sbuf(0, p, byte, [(1, stop - start)])
        return Endpoint.dram(sbuf_window_address(tile, p, sbuf_bytes) + byte, [(row, p), (1, stop - start)])

    data_engine, signal_engine = _QUEUE0, (_QUEUE0 + 1 if queues >= 2 else _QUEUE0)
    programs, addresses, ones = [], [], []
    for t in range(tiles):
        successor, predecessor = (t + 1) % tiles, (t - 1) % tiles
        one = Endpoint.dram(t * region, [(1, 1)])
        data, act = [], []
        signals = data if signal_engine == data_engine else []   # one queue: each signal after its copy
        sent = 0

        def signal(tile: int, semaphore: int, wait: Wait | None) -> None:
            target = Endpoint.dram(semaphore_address(tile, semaphore, p, sbuf_bytes), [(1, 1)])
            signals.append(Instruction(Copy(one, target, 4), wait=wait))

        def send(start: int, stop: int, mine: int, theirs: int, wait: Wait | None) -> None:
            nonlocal sent
            data.append(Instruction(Copy(at(start, stop, mine), at(start, stop, theirs, successor), 4), wait=wait,
                                    signal=Signal(SENT, 1)))
            sent += 1
            signal(successor, RECEIVED, Wait(SENT, sent))

        if load is not None:
            data.append(Instruction(Copy(Endpoint.dram(load[t], [(1, p * elements)]),
                                         Endpoint.sbuf(0, p, offset, [(1, elements)]), 4),
                                    signal=Signal(LOADED, 1)))
            act.append(Instruction(Nop(), wait=Wait(LOADED, 1)))
        for s in range(tiles - 1):   # reduce-scatter: chunk t - s, summed over s + 1 tiles, to the successor
            c, received = (t - s) % tiles, (t - 1 - s) % tiles
            for q, (start, stop) in enumerate(parts(c)):
                first = chunks[c][0]
                send(start, stop, offset + 4 * start, staging + s * slot + 4 * (start - first),
                     Wait(ADDED, (s - 1) * k + q + 1) if s else None)
            for q, (start, stop) in enumerate(parts(received)):   # what the predecessor sends me at step s
                first = chunks[received][0]
                act.append(Instruction(Activate(
                    source=AccessPattern(staging + s * slot + 4 * (start - first), ((1, stop - start),)),
                    destination=AccessPattern(offset + 4 * start, ((1, stop - start),)), partition=0,
                    partitions=p, source_space=ActSpace.SBUF, dtype=dtype, scale=1.0 if dtype == "fp32" else 1,
                    accumulate=True), wait=Wait(RECEIVED, s * k + q + 1), signal=Signal(ADDED, 1)))
        if tiles > 1:   # my chunks are no longer read or added to: my predecessor may overwrite them
            signal(predecessor, READY, Wait(ADDED, (tiles - 1) * k))
        if tiles > 1:   # the successor's chunks are mine to overwrite
            data.append(Instruction(Nop(), wait=Wait(READY, 1)))
        for s in range(tiles - 1):   # all-gather: the whole chunk t + 1 - s, to the successor's own copy
            c = (t + 1 - s) % tiles
            for q, (start, stop) in enumerate(parts(c)):
                # step 0: my own last add made it final; later: my predecessor sent it
                wait = Wait(ADDED, (tiles - 2) * k + q + 1) if s == 0 else Wait(RECEIVED, (tiles - 2 + s) * k + q + 1)
                send(start, stop, offset + 4 * start, offset + 4 * start, wait)
        if store is not None:
            data.append(Instruction(Copy(Endpoint.sbuf(0, p, offset, [(1, elements)]),
                                         Endpoint.dram(store[t], [(1, p * elements)]), 4),
                                    wait=Wait(RECEIVED, 2 * (tiles - 1) * k) if tiles > 1 else None))
        programs_t = {_ACT: act + [Instruction(End())], data_engine: data + [Instruction(End())]}
        if signal_engine != data_engine:
            programs_t[signal_engine] = signals + [Instruction(End())]
        address, placed = t * region + INSTRUCTION_BYTES, {}
        for engine, program in programs_t.items():
            placed[engine] = address
            address += INSTRUCTION_BYTES * len(program)
        if address > (t + 1) * region:
            raise ValueError(f"tile {t}'s all-reduce programs do not fit its slice of DRAM ({region} bytes)")
        programs.append(programs_t)
        addresses.append(placed)
        ones.append(t * region)
    return AllReduce(tiles, partitions, elements, dtype, offset, staging, chunks, programs, addresses, ones,
                     dram_bytes)
