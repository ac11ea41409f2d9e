"""Programs for the tile, built with the assembler: used by the golden simulator's tests and the RTL tile's
testbench alike, so both run exactly the same binaries.

A :class:`Layout` places each engine's program and the data in DRAM; :func:`matmul_program` is the directed
end-to-end matmul (DMA in, LoadStationary, MultiplyMoving, Activate, DMA out).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..golden import numerics
from ..golden.act import Activate
from ..golden.dma import Endpoint
from ..golden.tensor_engine import AccessPattern, LoadStationary, MultiplyMoving
from ..hdl.isa import INSTRUCTION_BYTES
from ..sw.asm import Copy, End, Instruction, Signal, Wait, encode_program

__all__ = ["PROGRAM_SPACE", "Layout", "Programs", "matmul_program", "program_bytes"]

PROGRAM_SPACE = 0x1000  # bytes of DRAM for each engine's program


@dataclasses.dataclass(frozen=True)
class Layout:
    """Engine e's program at ``e * PROGRAM_SPACE``; data from ``data`` on."""

    engines: int
    dram_bytes: int

    def program_address(self, engine: int) -> int:
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
                   k: int | None = None, m: int | None = None, n: int | None = None) -> Programs:
    """``C = A @ B`` for bf16 A (M x K) and B (K x N), fp32 C, in one LoadStationary / MultiplyMoving:
    DMA queue 0 brings A.T and B to the SBUF, the tensor engine multiplies into PSUM bank 0, ACT copies the
    fp32 results to the SBUF, DMA queue 1 (or 0 with one queue) writes C to DRAM."""
    p = partitions
    k, m, n = k or p, m or p, n or 2 * p
    layout = Layout(2 + queues, dram_bytes)
    dram = np.zeros(dram_bytes, dtype=np.uint8)
    a = numerics.cast(rng.standard_normal((m, k)), "bf16")
    b = numerics.cast(rng.standard_normal((k, n)), "bf16")
    stationary_at, moving_at, c_at = layout.data, layout.data + 0x1000, layout.data + 0x2000
    dram[stationary_at:stationary_at + 2 * k * m] = np.ascontiguousarray(a.T).view(np.uint8).reshape(-1)
    dram[moving_at:moving_at + 2 * k * n] = np.ascontiguousarray(b).view(np.uint8).reshape(-1)
    s_moving, m_moving = 0, 2 * m                 # SBUF byte offsets of A.T and B (bf16)
    results = (2 * m + 2 * n + 3) // 4 * 4         # and of C (fp32, 4-byte aligned)
    dma_in = [
        Instruction(Copy(Endpoint.dram(stationary_at, [(1, k * m)]), Endpoint.sbuf(0, k, s_moving, [(1, m)]), 2),
                    signal=Signal(0, 1)),
        Instruction(Copy(Endpoint.dram(moving_at, [(1, k * n)]), Endpoint.sbuf(0, k, m_moving, [(1, n)]), 2),
                    signal=Signal(1, 1)),
    ]
    tensor = [
        Instruction(LoadStationary(0, AccessPattern(s_moving, ((1, m),)), k, m, "bf16"), wait=Wait(0, 1)),
        Instruction(MultiplyMoving(0, AccessPattern(m_moving, ((1, n),)), k, n, "bf16", 0, 0, False),
                    wait=Wait(1, 1), signal=Signal(2, 1)),
        Instruction(End()),
    ]
    act = [
        Instruction(Activate(source=AccessPattern(0, ((1, n),)), destination=AccessPattern(results, ((1, n),)),
                             partition=0, partitions=m, dtype="fp32", scale=1.0), wait=Wait(2, 1), signal=Signal(3, 1)),
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
    return len(program) * INSTRUCTION_BYTES

