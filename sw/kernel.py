"""The kernel API: write a tile program as a sequence of operations on tensors, in the spirit of AWS's NKI.

A :class:`Kernel` holds DRAM tensors, SBUF and PSUM tiles, and a list of operations (``dma_copy``,
``matmul``, ``activation``). Each operation runs on one engine; :meth:`Kernel.programs` turns the list into
one program per engine, with semaphore waits and signals found from what the operations read and write:

- every operation signals ``sem[engine] += 1`` when it completes, so ``sem[e]`` counts engine e's completed
  operations (engines complete in order, see ``docs/isa.md``);
- an operation that reads what an earlier operation of another engine wrote (read after write), writes what
  another engine read (write after read) or wrote (write after write) first waits until that engine's count
  covers the earlier operation. One dependency rides on the operation's own wait; each further engine it
  depends on gets a ``SEM_WAIT`` before it. Work on one engine needs no semaphore: it is in order.

Regions are compared as boxes (partitions x bytes in SBUF and PSUM, bytes in DRAM), so a dependency is never
missed; two accesses whose boxes overlap but whose elements do not are ordered anyway.

>>> k = Kernel(partitions=4, sbuf_bytes=1024, queues=2, dram_bytes=1 << 16)
>>> a = k.dram("a", (4, 4), "bf16")
>>> at = k.sbuf((4, 4), "bf16")
>>> k.dma_copy(at, a.T)
>>> ps = k.psum((4, 4))
>>> k.matmul(ps, at, at)
>>> [len(p) for p in k.programs().values()]   # tensor: load, multiply, END; act: END; dma0: copy, END
[3, 1, 2, 1]
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..golden.act import ACT_TYPES, ActFunc, Activate, Space as ActSpace
from ..golden.dma import Endpoint
from ..golden.numerics import DTYPES
from ..golden.tensor_engine import PSUM_BANKS, AccessPattern, LoadStationary, MultiplyMoving
from ..hdl.isa import engine_names
from ..hdl.params import DMA_QUEUES, DRAM_BYTES, PARTITIONS, SBUF_BYTES, SEMAPHORES
from .asm import Copy, End, Instruction, Nop, Signal, Wait

__all__ = ["Kernel", "DramTensor", "SbufTile", "PsumTile", "TENSOR", "ACT"]

TENSOR, ACT = 0, 1
_ITEMSIZE = {name: t.bytes for name, t in ACT_TYPES.items()}  # bf16, fp8s, int8, fp32, int32
_MAX_DIMS = 4


def _itemsize(dtype: str) -> int:
    if dtype not in _ITEMSIZE:
        raise ValueError(f"dtype must be one of {', '.join(_ITEMSIZE)}, not {dtype!r}")
    return _ITEMSIZE[dtype]


def _index(key, shape):
    """Normalise a numpy-style index (ints and slices with positive steps) into (start, step, count) per
    axis and whether the axis is kept."""
    if not isinstance(key, tuple):
        key = (key,)
    if len(key) > len(shape):
        raise ValueError(f"too many indices ({len(key)}) for a tensor of {len(shape)} dimensions")
    key = key + (slice(None),) * (len(shape) - len(key))
    axes = []
    for axis, (item, size) in enumerate(zip(key, shape)):
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            position = int(item) + (size if item < 0 else 0)
            if not 0 <= position < size:
                raise ValueError(f"index {item} is out of range for axis {axis} of size {size}")
            axes.append((position, 1, 1, False))
        elif isinstance(item, slice):
            start, stop, step = item.indices(size)
            if step <= 0:
                raise ValueError(f"slices must step forward; axis {axis} has step {step}")
            count = len(range(start, stop, step))
            if count == 0:
                raise ValueError(f"axis {axis}: the slice {item} selects nothing")
            axes.append((start, step, count, True))
        else:
            raise ValueError(f"indices must be integers or slices, not {item!r}")
    return axes


@dataclasses.dataclass(frozen=True)
class DramTensor:
    """A view of a tensor in DRAM: ``shape``, element ``strides`` and a byte ``address`` of element 0."""

    name: str
    address: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    dtype: str

    @property
    def itemsize(self) -> int:
        return _itemsize(self.dtype)

    @property
    def T(self) -> "DramTensor":
        return dataclasses.replace(self, shape=self.shape[::-1], strides=self.strides[::-1])

    def __getitem__(self, key) -> "DramTensor":
        axes = _index(key, self.shape)
        address = self.address + self.itemsize * sum(start * stride for (start, _, _, _), stride in zip(axes, self.strides))
        kept = [(count, step * stride) for (_, step, count, keep), stride in zip(axes, self.strides) if keep]
        return dataclasses.replace(self, address=address, shape=tuple(c for c, _ in kept),
                                   strides=tuple(s for _, s in kept))

    def box(self) -> tuple[int, int]:
        """The lowest byte and one past the highest byte the view touches."""
        low = sum(min(0, s * (c - 1)) for s, c in zip(self.strides, self.shape))
        high = sum(max(0, s * (c - 1)) for s, c in zip(self.strides, self.shape))
        return self.address + self.itemsize * low, self.address + self.itemsize * (high + 1)

    def endpoint(self) -> Endpoint:
        """This view as one side of a DMA descriptor (``ValueError`` beyond the dimensions a walk has)."""
        dims = [(stride, count) for stride, count in zip(self.strides, self.shape) if count > 1] or [(1, 1)]
        if len(dims) > _MAX_DIMS:
            raise ValueError(f"{self.name}: a DRAM access walks at most {_MAX_DIMS} dimensions, not {len(dims)}")
        return Endpoint.dram(self.address, dims)


@dataclasses.dataclass(frozen=True)
class SbufTile:
    """A view of an SBUF tile: axis 0 is partitions ``partition .. partition + shape[0] - 1``; the other axes
    walk bytes from ``offset`` in every partition with element ``strides``."""

    partition: int
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]   # of the free axes
    dtype: str

    @property
    def itemsize(self) -> int:
        return _itemsize(self.dtype)

    @property
    def partitions(self) -> int:
        return self.shape[0]

    @property
    def free(self) -> int:
        return int(np.prod(self.shape[1:])) if len(self.shape) > 1 else 1

    def __getitem__(self, key) -> "SbufTile":
        axes = _index(key, self.shape)
        (p_start, p_step, p_count, p_keep), free_axes = axes[0], axes[1:]
        if p_step != 1 or not p_keep:
            raise ValueError("the partition axis (axis 0) takes a slice with step 1")
        offset = self.offset + self.itemsize * sum(start * stride for (start, _, _, _), stride in zip(free_axes, self.strides))
        kept = [(count, step * stride) for (_, step, count, keep), stride in zip(free_axes, self.strides) if keep]
        return dataclasses.replace(self, partition=self.partition + p_start, offset=offset,
                                   shape=(p_count,) + tuple(c for c, _ in kept), strides=tuple(s for _, s in kept))

    def dims(self) -> tuple[tuple[int, int], ...]:
        """``(stride, count)`` in elements of each free dimension that has more than one element."""
        dims = tuple((stride, count) for stride, count in zip(self.strides, self.shape[1:]) if count > 1)
        return dims or ((1, 1),)

    def pattern(self) -> AccessPattern:
        """The access pattern each partition of the tile walks (for the tensor and ACT engines)."""
        return AccessPattern(self.offset, self.dims())

    def box(self) -> tuple[int, int]:
        """The lowest byte and one past the highest byte the tile touches in each of its partitions."""
        low = sum(min(0, s * (c - 1)) for s, c in zip(self.strides, self.shape[1:]))
        high = sum(max(0, s * (c - 1)) for s, c in zip(self.strides, self.shape[1:]))
        return self.offset + self.itemsize * low, self.offset + self.itemsize * (high + 1)

    def endpoint(self) -> Endpoint:
        """This tile as one side of a DMA descriptor (``ValueError`` beyond the dimensions a walk has)."""
        dims = self.dims()
        if len(dims) > _MAX_DIMS - 1:
            raise ValueError(f"an SBUF access walks at most {_MAX_DIMS - 1} free dimensions, not {len(dims)}")
        return Endpoint.sbuf(self.partition, self.partitions, self.offset, dims)


@dataclasses.dataclass(frozen=True)
class PsumTile:
    """``shape[0]`` PSUM partitions from 0 (the array's columns) x ``shape[1]`` words of ``bank`` from
    ``offset``; fp32 (int32 for int8 matmuls)."""

    bank: int
    offset: int
    shape: tuple[int, int]

    def __getitem__(self, key) -> "PsumTile":
        axes = _index(key, self.shape)
        (p_start, p_step, p_count, _), (w_start, w_step, w_count, _) = axes
        if p_start != 0 or p_step != 1 or w_step != 1:
            raise ValueError("a PSUM view keeps partitions from 0 and takes words with step 1")
        return PsumTile(self.bank, self.offset + w_start, (p_count, w_count))

    def box(self, partitions: int) -> tuple[int, int]:
        """The bytes of PSUM, seen as one ``128 P``-byte space per partition, that the tile covers."""
        start = 4 * (4 * partitions * self.bank + self.offset)
        return start, start + 4 * self.shape[1]


class Kernel:
    """A tile program under construction (see the module docstring).

    Parameters
    ----------
    partitions, sbuf_bytes, queues, dram_bytes, semaphores : int
        The tile it is for; each checked like the hardware parameter.
    data_address : int
        Where DRAM tensors start (default 0); the programs go after the last tensor
        (:meth:`program_addresses`).
    """

    def __init__(self, *, partitions: int = PARTITIONS.default, sbuf_bytes: int = SBUF_BYTES.default,
                 queues: int = DMA_QUEUES.default, dram_bytes: int = 1 << 24, semaphores: int = SEMAPHORES.default,
                 data_address: int | None = None):
        self.partitions = PARTITIONS.validate(partitions)
        self.sbuf_bytes = SBUF_BYTES.validate(sbuf_bytes)
        self.queues = DMA_QUEUES.validate(queues)
        self.dram_bytes = DRAM_BYTES.validate(dram_bytes)
        self.semaphores = SEMAPHORES.validate(semaphores)
        self.engines = len(engine_names(self.queues))
        if self.semaphores < self.engines:
            raise ValueError(f"semaphores must be at least {self.engines} (one per engine), not {self.semaphores}")
        self.data_address = 0 if data_address is None else data_address
        self._dram_next = self.data_address
        self._sbuf_next = 0
        self._psum_next = [0] * PSUM_BANKS
        self.tensors: dict[str, DramTensor] = {}
        self._ops: list[tuple[int, object, list, list]] = []   # (engine, op, reads, writes)
        self._stationary = None   # (LoadStationary, its SBUF region): what the tensor engine holds
        self._next_queue = 0
        self._programs = None   # programs() of the operations so far, until another is added

    # ---- allocation ------------------------------------------------------------------------------------
    def dram(self, name: str, shape, dtype: str) -> DramTensor:
        """A row-major DRAM tensor, 64-byte aligned after the previous one."""
        shape = tuple(int(s) for s in shape)
        if not shape or any(s < 1 for s in shape):
            raise ValueError(f"{name}: shape must be positive, not {shape}")
        if name in self.tensors:
            raise ValueError(f"a DRAM tensor called {name!r} exists already")
        size = _itemsize(dtype) * int(np.prod(shape))
        address = -(-self._dram_next // 64) * 64
        if address + size > self.dram_bytes:
            raise ValueError(f"{name}: {size} bytes at {address:#x} do not fit in {self.dram_bytes} bytes of DRAM")
        self._dram_next = address + size
        strides = tuple(int(np.prod(shape[i + 1:])) for i in range(len(shape)))
        tensor = DramTensor(name, address, shape, strides, dtype)
        self.tensors[name] = tensor
        return tensor

    def sbuf(self, shape, dtype: str, *, partition: int = 0) -> SbufTile:
        """An SBUF tile: ``shape[0]`` partitions from ``partition``, the rest row-major in each partition,
        at the next free offset (4-byte aligned)."""
        shape = tuple(int(s) for s in shape)
        p = self.partitions
        if len(shape) < 2 or any(s < 1 for s in shape):
            raise ValueError(f"an SBUF tile has a partition axis and at least one free axis, not shape {shape}")
        if not 0 <= partition <= p - shape[0]:
            raise ValueError(f"an SBUF tile of {shape[0]} partitions from {partition} does not fit in P = {p}")
        free = int(np.prod(shape[1:]))
        size = _itemsize(dtype) * free
        offset = -(-self._sbuf_next // 4) * 4
        if offset + size > self.sbuf_bytes:
            raise ValueError(f"an SBUF tile of {size} bytes per partition at offset {offset} does not fit in "
                             f"sbuf_bytes = {self.sbuf_bytes}")
        self._sbuf_next = offset + size
        strides = tuple(int(np.prod(shape[i + 1:])) for i in range(1, len(shape)))
        return SbufTile(partition, offset, shape, strides, dtype)

    def psum(self, shape, *, bank: int | None = None) -> PsumTile:
        """A PSUM tile of ``shape[0]`` (<= P) partitions x ``shape[1]`` (<= 4P) words, in ``bank`` or the first
        bank with room."""
        m, n = (int(s) for s in shape)
        p = self.partitions
        if not 1 <= m <= p or not 1 <= n <= 4 * p:
            raise ValueError(f"a PSUM tile is at most P x 4P = {p} x {4 * p}, not {m} x {n}")
        banks = range(PSUM_BANKS) if bank is None else [bank]
        for b in banks:
            if not 0 <= b < PSUM_BANKS:
                raise ValueError(f"bank must be in 0..{PSUM_BANKS - 1}, not {b}")
            if self._psum_next[b] + n <= 4 * p:
                offset = self._psum_next[b]
                self._psum_next[b] += n
                return PsumTile(b, offset, (m, n))
        raise ValueError(f"no PSUM bank has {n} free words left (each holds 4P = {4 * p})")

    # ---- operations ------------------------------------------------------------------------------------
    def dma_copy(self, dst, src, *, queue: int | None = None) -> None:
        """Copy ``src`` to ``dst`` (DRAM tensors or SBUF tiles of the same element count and dtype) on
        ``queue`` (default: the queues in turn)."""
        for name, side in (("dst", dst), ("src", src)):
            if not isinstance(side, (DramTensor, SbufTile)):
                raise ValueError(f"dma_copy: {name} must be a DRAM tensor or an SBUF tile, not {type(side).__name__}")
        if dst.dtype != src.dtype:
            raise ValueError(f"dma_copy: dtype mismatch, dst is {dst.dtype} and src is {src.dtype}")
        if int(np.prod(dst.shape)) != int(np.prod(src.shape)):
            raise ValueError(f"dma_copy: dst has {int(np.prod(dst.shape))} elements and src "
                             f"{int(np.prod(src.shape))}; they must be equal")
        if queue is None:
            queue, self._next_queue = self._next_queue, (self._next_queue + 1) % self.queues
        if not 0 <= queue < self.queues:
            raise ValueError(f"queue must be in 0..{self.queues - 1}, not {queue}")
        op = Copy(src.endpoint(), dst.endpoint(), dst.itemsize)
        self._add(2 + queue, op, [self._region(src)], [self._region(dst)])

    def matmul(self, psum: PsumTile, stationary: SbufTile, moving: SbufTile, *, accumulate: bool = False) -> None:
        """``psum[M, N] (+)= stationary[K, M].T @ moving[K, N]`` on the tensor engine."""
        k, m = stationary.shape[0], stationary.free
        n = moving.free
        if stationary.dtype != moving.dtype:
            raise ValueError(f"matmul: dtype mismatch, stationary is {stationary.dtype} and moving {moving.dtype}")
        if stationary.dtype not in DTYPES:
            raise ValueError(f"matmul: operands must be one of {', '.join(DTYPES)}, not {stationary.dtype}")
        if (moving.partition, moving.partitions) != (stationary.partition, k):
            raise ValueError("matmul: stationary and moving must be on the same partitions (K on the partition axis)")
        if m > self.partitions:
            raise ValueError(f"matmul: M = {m} is more than P = {self.partitions}")
        if n > 4 * self.partitions:
            raise ValueError(f"matmul: N = {n} is more than 4P = {4 * self.partitions} (one PSUM bank)")
        if psum.shape != (m, n):
            raise ValueError(f"matmul: the PSUM tile is {psum.shape[0]} x {psum.shape[1]}, the product {m} x {n}")
        dtype = stationary.dtype
        load = LoadStationary(stationary.partition, stationary.pattern(), k, m, dtype)
        # The engine keeps the last stationary operand: a matmul with the same one, unchanged in the SBUF since
        # it was loaded, needs no second LoadStationary (one fewer instruction and P fewer SBUF reads).
        if self._stationary is None or self._stationary[0] != load:
            region = self._region(stationary)
            self._add(TENSOR, load, [region], [])
            self._stationary = (load, region)
        multiply = MultiplyMoving(moving.partition, moving.pattern(), k, n, dtype, psum.bank, psum.offset,
                                  bool(accumulate))
        reads = [self._region(moving)] + ([self._region(psum)] if accumulate else [])
        self._add(TENSOR, multiply, reads, [self._region(psum)])

    def activation(self, dst: SbufTile, src, *, func: str = "identity", scale: float | int = 1.0,
                   bias: SbufTile | None = None, accumulate: bool = False) -> None:
        """``dst = cast(func(src * scale + bias))`` on the ACT engine; ``src`` a PSUM tile or an fp32/int32
        SBUF tile on the same partitions; ``bias`` a one-element-per-partition SBUF tile. With
        ``accumulate``, ``dst = func(src * scale + dst)`` (``dst`` fp32 or int32, no bias)."""
        funcs = {"identity": ActFunc.IDENTITY, "relu": ActFunc.RELU}
        if func not in funcs:
            raise ValueError(f"activation: func must be one of {', '.join(funcs)}, not {func!r}")
        if not isinstance(dst, SbufTile):
            raise ValueError("activation: dst must be an SBUF tile")
        if isinstance(src, PsumTile):
            lanes, count, space = (0, src.shape[0]), src.shape[1], ActSpace.PSUM
            source = AccessPattern(src.box(self.partitions)[0], ((1, count),))
        elif isinstance(src, SbufTile):
            if src.dtype not in ("fp32", "int32"):
                raise ValueError(f"activation: an SBUF source must be fp32 or int32, not {src.dtype}")
            lanes, count, space = (src.partition, src.partitions), src.free, ActSpace.SBUF
            source = src.pattern()
        else:
            raise ValueError("activation: src must be a PSUM tile or an SBUF tile")
        if (dst.partition, dst.partitions) != lanes or dst.free != count:
            raise ValueError(f"activation: dst is {dst.partitions} x {dst.free} from partition {dst.partition}, "
                             f"src {lanes[1]} x {count} from partition {lanes[0]}; they must match")
        reads = [self._region(src)]
        if accumulate:
            if dst.dtype not in ("fp32", "int32") or bias is not None:
                raise ValueError(f"activation: accumulate needs an fp32 or int32 dst and no bias, not "
                                 f"{dst.dtype}{' with a bias' if bias is not None else ''}")
            reads.append(self._region(dst))
        if bias is not None:
            if (bias.partition, bias.partitions) != lanes or bias.free != 1:
                raise ValueError("activation: bias must hold one element per partition of dst")
            reads.append(self._region(bias))
        op = Activate(source=source, destination=dst.pattern(), partition=lanes[0], partitions=lanes[1],
                      source_space=int(space), func=int(funcs[func]), dtype=dst.dtype, scale=scale,
                      bias=None if bias is None else bias.offset, accumulate=bool(accumulate))
        op.scale_bits()  # a scale that does not suit the output type is refused here
        self._add(ACT, op, reads, [self._region(dst)])

    # ---- dependencies ----------------------------------------------------------------------------------
    def _region(self, view):
        if isinstance(view, DramTensor):
            return ("dram", (0, 1), view.box())
        if isinstance(view, SbufTile):
            return ("sbuf", (view.partition, view.partition + view.partitions), view.box())
        return ("psum", (0, view.shape[0]), view.box(self.partitions))

    @staticmethod
    def _overlap(a, b) -> bool:
        return (a[0] == b[0] and a[1][0] < b[1][1] and b[1][0] < a[1][1]
                and a[2][0] < b[2][1] and b[2][0] < a[2][1])

    def _add(self, engine: int, op, reads, writes) -> None:
        if self._stationary is not None and any(self._overlap(w, self._stationary[1]) for w in writes):
            self._stationary = None
        self._ops.append((engine, op, reads, writes))
        self._programs = None

    def programs(self) -> dict[int, list[Instruction]]:
        """One program per engine (index as in :func:`~trntile.hdl.isa.engine_names`), each ending in END.

        No more waits than needed: each engine keeps a vector clock of the operations it knows complete (its
        own, those it waited for, and what those knew when they ran), and a dependency it already knows of
        needs no wait."""
        if self._programs is None:
            self._programs = self._build()
        return {engine: list(program) for engine, program in self._programs.items()}

    def _build(self) -> dict[int, list[Instruction]]:
        programs = {engine: [] for engine in range(self.engines)}
        counts = [0] * self.engines
        known = [[0] * self.engines for _ in range(self.engines)]   # known[e][f]: f's ops e knows complete
        clocks = {}                                                   # (engine, count) -> what it knew
        done = []   # (engine, count, reads, writes) of the operations so far
        for engine, op, reads, writes in self._ops:
            needed = {}
            for other, count, their_reads, their_writes in done:
                if other == engine or known[engine][other] >= count:
                    continue
                hazard = (any(self._overlap(r, w) for r in reads + writes for w in their_writes)
                          or any(self._overlap(w, r) for w in writes for r in their_reads))
                if hazard:
                    needed[other] = max(needed.get(other, 0), count)
            waits = []
            while needed:
                # Wait first on the dependency whose completion implies the most of the others.
                def covers(item):
                    clock = clocks[item]
                    return sum(clock[o] >= c for o, c in needed.items())
                other, count = max(sorted(needed.items()), key=covers)
                waits.append(Wait(other, count))
                known[engine] = [max(x, y) for x, y in zip(known[engine], clocks[(other, count)])]
                needed = {o: c for o, c in needed.items() if known[engine][o] < c}
            for wait in waits[:-1]:
                programs[engine].append(Instruction(Nop(), wait=wait))
            counts[engine] += 1
            known[engine][engine] = counts[engine]
            clocks[(engine, counts[engine])] = list(known[engine])
            programs[engine].append(Instruction(op, wait=waits[-1] if waits else None, signal=Signal(engine, 1)))
            done.append((engine, counts[engine], reads, writes))
        for program in programs.values():
            program.append(Instruction(End()))
        return programs

    # ---- placing it in DRAM -----------------------------------------------------------------------------
    def program_addresses(self, programs: dict | None = None) -> dict[int, int]:
        """Where each engine's program goes: one after another from the first 4 KiB boundary after the last
        DRAM tensor, each 64-byte aligned."""
        from ..hdl.isa import INSTRUCTION_BYTES

        programs = self.programs() if programs is None else programs
        address = -(-self._dram_next // 4096) * 4096
        addresses = {}
        for engine, program in programs.items():
            addresses[engine] = address
            address += INSTRUCTION_BYTES * len(program)
        if address > self.dram_bytes:
            raise ValueError(f"the programs end at {address:#x}, beyond the {self.dram_bytes} bytes of DRAM")
        return addresses

    def dram_image(self, values: dict | None = None) -> np.ndarray:
        """The DRAM contents to start from: every engine's program, and each tensor in ``values`` (by name,
        cast to its dtype with round to nearest even)."""
        from ..golden.numerics import cast
        from .asm import encode_program

        image = np.zeros(self.dram_bytes, dtype=np.uint8)
        programs = self.programs()
        for engine, start in self.program_addresses(programs).items():
            raw = np.frombuffer(encode_program(programs[engine]), dtype=np.uint8)
            image[start:start + raw.size] = raw
        for name, array in (values or {}).items():
            tensor = self.tensors[name]
            array = np.asarray(array)
            if array.shape != tensor.shape:
                raise ValueError(f"{name}: values of shape {array.shape}, the tensor is {tensor.shape}")
            typed = cast(array, tensor.dtype) if tensor.dtype in DTYPES else array.astype(ACT_TYPES[tensor.dtype].numpy)
            raw = np.ascontiguousarray(typed).view(np.uint8).reshape(-1)
            image[tensor.address:tensor.address + raw.size] = raw
        return image

    def read(self, dram: np.ndarray, name: str) -> np.ndarray:
        """Tensor ``name`` (row-major, as allocated) out of a DRAM image."""
        tensor = self.tensors[name]
        fmt = DTYPES[tensor.dtype].numpy if tensor.dtype in DTYPES else ACT_TYPES[tensor.dtype].numpy
        size = fmt.itemsize * int(np.prod(tensor.shape))
        return dram[tensor.address:tensor.address + size].copy().view(fmt).reshape(tensor.shape)
