"""Programs for the tile, built with the assembler: used by the golden simulator's tests and the RTL tile's
testbench alike, so both run exactly the same binaries.

A :class:`Layout` places each engine's program and the data in DRAM; :func:`matmul_program` is the directed
end-to-end matmul (DMA in, LoadStationary, MultiplyMoving, Activate, DMA out) and
:func:`random_programs` the constrained-random mixes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..golden import numerics
from ..golden.act import Activate
from ..golden.dma import Endpoint
from ..golden.tensor_engine import AccessPattern, LoadStationary, MultiplyMoving
from ..hdl.isa import INSTRUCTION_BYTES
from ..sw.asm import Copy, End, Instruction, Nop, SemSet, Signal, Wait, encode_program

__all__ = ["PROGRAM_SPACE", "Layout", "Programs", "matmul_program", "random_programs", "program_bytes"]

PROGRAM_SPACE = 0x1000  # bytes of DRAM for each engine's program


@dataclasses.dataclass(frozen=True)
class Layout:
    """Engine e's program at ``e * PROGRAM_SPACE``; data from ``data`` on."""

    engines: int
    dram_bytes: int

    def program_address(self, engine: int) -> int:
        """Where engine ``engine``'s program starts in DRAM (each engine has its own space)."""
        return engine * PROGRAM_SPACE

    @property
    def data(self) -> int:
        return self.engines * PROGRAM_SPACE


@dataclasses.dataclass
class Programs:
    """Programs per engine index, the DRAM image to start from, and what the test should look at."""

    programs: dict[int, list[Instruction]]
    dram: np.ndarray
    layout: Layout
    result: tuple[int, int] | None = None  # (address, bytes) of the interesting output, if any

    def image(self) -> np.ndarray:
        """The DRAM contents with every program in place."""
        dram = self.dram.copy()
        for engine, program in self.programs.items():
            raw = np.frombuffer(encode_program(program), dtype=np.uint8)
            start = self.layout.program_address(engine)
            dram[start:start + raw.size] = raw
        return dram

    @property
    def starts(self) -> dict[int, int]:
        return {engine: self.layout.program_address(engine) for engine in self.programs}


def matmul_program(rng: np.random.Generator, *, partitions: int, queues: int, dram_bytes: int,
                   k: int | None = None, m: int | None = None, n: int | None = None, dtype: str = "bf16") -> Programs:
    """``C = A @ B`` for A (M x K) and B (K x N) in one LoadStationary / MultiplyMoving: bf16 operands with
    fp32 C, or (``dtype="int8"``, for a tile built without the float formats) int8 operands with int32 C.
    DMA queue 0 brings A.T and B to the SBUF, the tensor engine multiplies into PSUM bank 0, ACT copies the
    results to the SBUF, DMA queue 1 (or 0 with one queue) writes C to DRAM."""
    if dtype not in ("bf16", "int8"):
        raise ValueError(f"dtype must be bf16 or int8, not {dtype!r}")
    p = partitions
    k, m, n = k or p, m or p, n or 2 * p
    layout = Layout(2 + queues, dram_bytes)
    dram = np.zeros(dram_bytes, dtype=np.uint8)
    if dtype == "bf16":
        a = numerics.cast(rng.standard_normal((m, k)), "bf16")
        b = numerics.cast(rng.standard_normal((k, n)), "bf16")
        size, out, scale = 2, "fp32", 1.0
    else:
        a = rng.integers(-128, 128, (m, k)).astype(np.int8)
        b = rng.integers(-128, 128, (k, n)).astype(np.int8)
        size, out, scale = 1, "int32", 1
    stationary_at, moving_at, c_at = layout.data, layout.data + 0x1000, layout.data + 0x2000
    dram[stationary_at:stationary_at + size * k * m] = np.ascontiguousarray(a.T).view(np.uint8).reshape(-1)
    dram[moving_at:moving_at + size * k * n] = np.ascontiguousarray(b).view(np.uint8).reshape(-1)
    s_moving, m_moving = 0, size * m              # SBUF byte offsets of A.T and B
    results = (size * (m + n) + 3) // 4 * 4        # and of C (4-byte elements, aligned)
    dma_in = [
        Instruction(Copy(Endpoint.dram(stationary_at, [(1, k * m)]), Endpoint.sbuf(0, k, s_moving, [(1, m)]), size),
                    signal=Signal(0, 1)),
        Instruction(Copy(Endpoint.dram(moving_at, [(1, k * n)]), Endpoint.sbuf(0, k, m_moving, [(1, n)]), size),
                    signal=Signal(1, 1)),
    ]
    tensor = [
        Instruction(LoadStationary(0, AccessPattern(s_moving, ((1, m),)), k, m, dtype), wait=Wait(0, 1)),
        Instruction(MultiplyMoving(0, AccessPattern(m_moving, ((1, n),)), k, n, dtype, 0, 0, False),
                    wait=Wait(1, 1), signal=Signal(2, 1)),
        Instruction(End()),
    ]
    act = [
        Instruction(Activate(source=AccessPattern(0, ((1, n),)), destination=AccessPattern(results, ((1, n),)),
                             partition=0, partitions=m, dtype=out, scale=scale), wait=Wait(2, 1), signal=Signal(3, 1)),
        Instruction(End()),
    ]
    dma_out = [
        Instruction(Copy(Endpoint.sbuf(0, m, results, [(1, n)]), Endpoint.dram(c_at, [(1, m * n)]), 4),
                    wait=Wait(3, 1), signal=Signal(4, 1)),
        Instruction(End(), signal=Signal(5, 1)),
    ]
    programs = {0: tensor, 1: act}
    if queues == 1:
        programs[2] = dma_in + dma_out
    else:
        programs[2] = dma_in + [Instruction(End())]
        programs[3] = dma_out
    return Programs(programs, dram, layout, result=(c_at, 4 * m * n))


def program_bytes(program) -> int:
    """The bytes ``program`` (a list of instructions) takes in DRAM."""
    return len(program) * INSTRUCTION_BYTES



# ---- constrained-random programs ---------------------------------------------------------------------------

def _dims(rng, count: int) -> tuple[tuple[int, int], ...]:
    """A walk of ``count`` elements: one dense row, or two dimensions with a gap or a reversal."""
    divisors = [d for d in range(2, count) if count % d == 0]
    if not divisors or rng.random() < 0.4:
        return ((rng.choice([1, 1, 1, -1]), count),)
    outer = rng.choice(divisors)
    inner = count // outer
    stride = inner + rng.choice([0, 0, 1, 3])
    return ((stride if rng.random() < 0.8 else -stride, outer), (1, inner))


def _place(rng, dims, element_bytes: int, low: int, high: int) -> int | None:
    """An address for walk ``dims`` so that it stays in bytes ``low .. high - 1``, aligned to its element."""
    first = sum(min(0, s * (c - 1)) for s, c in dims)
    last = sum(max(0, s * (c - 1)) for s, c in dims)
    lowest = -(-low // element_bytes) - first  # in elements
    highest = high // element_bytes - 1 - last
    if lowest > highest:
        return None
    return element_bytes * rng.randint(lowest, highest)


class _Planner:
    """Builds the programs: a global sequence of operations, each on one engine; a consumer waits on the
    producer's count of completed operations (every engine operation signals ``sem[engine] += 1``)."""

    BLOCKS = 8

    def __init__(self, rng, *, partitions, queues, dram_bytes, sbuf_bytes, semaphores):
        self.rng, self.p, self.queues, self.sbuf_bytes = rng, partitions, queues, sbuf_bytes
        self.layout = Layout(2 + queues, dram_bytes)
        self.engines = 2 + queues
        self.semaphores = semaphores
        self.programs = {e: [] for e in range(self.engines)}
        self.counts = [0] * self.engines             # engine operations so far (their signals)
        self.last_writer: dict = {}                  # resource -> (engine, count)
        self.readers: dict = {}                      # resource -> [(engine, count)] since the last write
        self.dram_block = max(256, (dram_bytes - self.layout.data) // 64 // 256 * 256)
        self.dram_blocks = min(16, (dram_bytes - self.layout.data) // self.dram_block)
        self.sbuf_block = sbuf_bytes // self.BLOCKS
        self.psum_ready = np.zeros((8, partitions, 4 * partitions), dtype=bool)  # written by an overwrite
        self.stationary = None   # (k, dtype) latched by the last LoadStationary
        self.noise = list(range(self.engines, min(semaphores, self.engines + 4)))

    # resources: ("dram", block), ("sbuf", block), ("psum", bank)
    def emit(self, engine: int, op, reads, writes) -> None:
        waits = {}
        for resource in list(reads) + list(writes):
            writer = self.last_writer.get(resource)
            if writer and writer[0] != engine:
                waits[writer[0]] = max(waits.get(writer[0], 0), writer[1])
        for resource in writes:
            for reader in self.readers.get(resource, []):
                if reader[0] != engine:
                    waits[reader[0]] = max(waits.get(reader[0], 0), reader[1])
        waits = sorted(waits.items())
        program = self.programs[engine]
        for other, count in waits[:-1]:   # one wait per instruction: the others go on SEM_WAITs before it
            program.append(Instruction(Nop(), wait=Wait(other, count)))
        wait = Wait(*waits[-1]) if waits else None
        self.counts[engine] += 1
        program.append(Instruction(op, wait=wait, signal=Signal(engine, 1)))
        mark = (engine, self.counts[engine])
        for resource in reads:
            self.readers.setdefault(resource, []).append(mark)
        for resource in writes:
            self.last_writer[resource] = mark
            self.readers[resource] = []

    def extra(self) -> None:
        """Semaphore traffic that does not order anything: NOPs that wait on an engine's own past, SEM_SET on
        a private semaphore, increments of shared semaphores (adds commute, so their totals are fixed)."""
        rng = self.rng
        engine = rng.randrange(self.engines)
        program = self.programs[engine]
        choice = rng.random()
        if choice < 0.4 and self.noise:
            program.append(Instruction(Nop(), signal=Signal(rng.choice(self.noise), rng.randint(1, 5))))
        elif choice < 0.7:
            private = self.semaphores - 1 - engine
            if private >= self.engines + len(self.noise):
                program.append(Instruction(SemSet(private, rng.getrandbits(32))))
        else:
            other = rng.randrange(self.engines)   # a count already reached in the global order: no cycle
            count = rng.randint(0, self.counts[other])
            program.append(Instruction(Nop(), wait=Wait(other, count) if count else None))

    def _dram_span(self, block: int) -> tuple[int, int]:
        low = self.layout.data + block * self.dram_block
        return low, low + self.dram_block

    def copy(self) -> bool:
        rng, p = self.rng, self.p
        queue = rng.randrange(self.queues)
        size = rng.choice([1, 2, 4])
        kinds = ["dram>sbuf", "sbuf>dram", "dram>dram", "sbuf>sbuf"]
        kind = rng.choices(kinds, weights=[4, 3, 1, 1])[0]
        partitions = rng.randint(1, p)
        first = rng.randint(0, p - partitions)
        inner = rng.randint(1, self.sbuf_block // size // 2)
        elements = partitions * inner if "sbuf" in kind else rng.randint(1, self.dram_block // size // 2)
        if kind == "dram>dram":
            inner = elements
        sides, reads, writes = [], [], []
        blocks = {"sbuf": rng.sample(range(self.BLOCKS), 2), "dram": rng.sample(range(self.dram_blocks), 2)}
        for side, space in enumerate(kind.split(">")):
            block = blocks[space][side]
            if space == "sbuf":
                dims = _dims(rng, inner)
                low = block * self.sbuf_block
                address = _place(rng, dims, size, low, low + self.sbuf_block)
                endpoint = None if address is None else Endpoint.sbuf(first, partitions, address, dims)
            else:
                dims = _dims(rng, elements)
                low, high = self._dram_span(block)
                address = _place(rng, dims, size, low, high)
                endpoint = None if address is None else Endpoint.dram(address, dims)
            if endpoint is None:
                return False
            sides.append(endpoint)
            (reads if side == 0 else writes).append((space, block))
        self.emit(2 + queue, Copy(sides[0], sides[1], size), reads, writes)
        return True

    def matmul(self) -> bool:
        rng, p = self.rng, self.p
        if self.stationary is None or rng.random() < 0.4:
            dtype = rng.choice(["int8", "int8", "bf16", "fp8_e4m3"])
            size = 2 if dtype == "bf16" else 1
            k = rng.randint(1, p)
            partition = rng.randint(0, p - k)
            m = rng.randint(1, p)
            block = rng.randrange(self.BLOCKS)
            dims = _dims(rng, m)
            address = _place(rng, dims, size, block * self.sbuf_block, (block + 1) * self.sbuf_block)
            if address is None:
                return False
            self.emit(0, LoadStationary(partition, AccessPattern(address, dims), k, m, dtype), [("sbuf", block)], [])
            self.stationary = (k, dtype, partition, m)
        k, dtype, partition, m = self.stationary
        size = 2 if dtype == "bf16" else 1
        n = rng.randint(1, 4 * p)
        bank = rng.randrange(8)
        offset = rng.randint(0, 4 * p - n)
        accumulate = bool(self.psum_ready[bank, :m, offset:offset + n].all()) and rng.random() < 0.5
        block = rng.randrange(self.BLOCKS)
        dims = _dims(rng, n)
        address = _place(rng, dims, size, block * self.sbuf_block, (block + 1) * self.sbuf_block)
        if address is None:
            return False
        op = MultiplyMoving(partition, AccessPattern(address, dims), k, n, dtype, bank, offset, accumulate)
        self.emit(0, op, [("sbuf", block)] + ([("psum", bank)] if accumulate else []), [("psum", bank)])
        self.psum_ready[bank, :m, offset:offset + n] = True
        return True

    def activate(self) -> bool:
        rng, p = self.rng, self.p
        fmt = rng.choice(["fp32", "bf16", "fp8_e5m2", "int32", "int8"])
        size = {"fp32": 4, "bf16": 2, "fp8_e5m2": 1, "int32": 4, "int8": 1}[fmt]
        count = rng.randint(1, min(4 * p, self.sbuf_block // 8))
        from_psum = rng.random() < 0.7
        reads = []
        if from_psum:
            ready = [(b, q) for b in range(8) for q in range(p) if self.psum_ready[b, q, :count].all()]
            if not ready:
                return False
            bank, last = rng.choice(ready)
            partitions = rng.randint(1, last + 1)
            first = rng.randint(0, last + 1 - partitions)
            if not self.psum_ready[bank, first:first + partitions, :count].all():
                return False
            source = AccessPattern(4 * (4 * p * bank), ((1, count),))
            reads.append(("psum", bank))
        else:
            partitions = rng.randint(1, p)
            first = rng.randint(0, p - partitions)
            block = rng.randrange(self.BLOCKS)
            dims = _dims(rng, count)
            address = _place(rng, dims, 4, block * self.sbuf_block, (block + 1) * self.sbuf_block)
            if address is None:
                return False
            source = AccessPattern(address, dims)
            reads.append(("sbuf", block))
        out_block = rng.choice([b for b in range(self.BLOCKS) if ("sbuf", b) not in reads])
        dims = _dims(rng, count)
        address = _place(rng, dims, size, out_block * self.sbuf_block, (out_block + 1) * self.sbuf_block)
        if address is None:
            return False
        bias = None
        if rng.random() < 0.5:
            bias_block = rng.choice([b for b in range(self.BLOCKS) if b != out_block])
            bias = rng.randrange(bias_block * self.sbuf_block, (bias_block + 1) * self.sbuf_block, 4)
            reads.append(("sbuf", bias_block))
        scale = rng.choice([1.0, 0.5, -2.0, 3.25]) if fmt in ("fp32", "bf16", "fp8_e5m2") else rng.randint(-4, 4)
        op = Activate(source=source, destination=AccessPattern(address, dims), partition=first, partitions=partitions,
                      source_space=0 if from_psum else 1, func=rng.randrange(2), dtype=fmt, scale=scale, bias=bias)
        self.emit(1, op, reads, [("sbuf", out_block)])
        return True

    def finish(self) -> dict:
        for engine, program in self.programs.items():
            signal = Signal(self.rng.choice(self.noise), 1) if self.noise and self.rng.random() < 0.5 else None
            program.append(Instruction(End(), signal=signal))
        return self.programs


def random_programs(rng, *, partitions: int, queues: int, dram_bytes: int, sbuf_bytes: int, semaphores: int,
                    operations: int = 24) -> Programs:
    """Random mixes of every instruction on every engine, free of races so that one outcome is right: each
    engine operation signals ``sem[engine] += 1``; an operation that reads or writes what an operation of
    another engine wrote or read earlier (in the global order the generator works in) first waits until that
    engine's count covers it, with a SEM_WAIT before it for each further engine it depends on. Between them go
    NOPs waiting on counts already reached, SEM_SETs of private semaphores and increments of shared ones.

    The DRAM data area starts random; the SBUF is expected to start at zero; PSUM words are read (by ACT, or
    accumulated into) only after an overwriting MULTIPLY_MOVING wrote them."""
    planner = _Planner(rng, partitions=partitions, queues=queues, dram_bytes=dram_bytes, sbuf_bytes=sbuf_bytes,
                       semaphores=semaphores)
    if semaphores < planner.engines:
        raise ValueError(f"semaphores must be at least {planner.engines} (one per engine) for random programs")
    done = 0
    while done < operations:
        kind = rng.choices(["copy", "matmul", "activate", "extra"], weights=[4, 3, 3, 2])[0]
        if kind == "extra":
            planner.extra()
            continue
        if getattr(planner, kind)():
            done += 1
    dram = np.frombuffer(rng.randbytes(dram_bytes), dtype=np.uint8).copy()
    dram[:planner.layout.data] = 0
    return Programs(planner.finish(), dram, planner.layout)
