"""The tile's instruction set: one binary definition for the RTL decoders, the assembler, the golden
simulator and the tests (``docs/isa.md`` explains it; its tables are generated from this module).

Every engine (tensor, ACT, each DMA queue) runs its own program: a sequence of :data:`INSTRUCTION_BYTES`
byte instruction words in DRAM, little-endian, bit 0 first, starting at a 64-byte aligned address. A word
is a 64-bit :data:`header_layout` and a 448-bit payload whose layout depends on the opcode.

The header carries what every instruction can do:

- **wait**: before the instruction issues, the engine waits until ``sem[wait_semaphore] >= wait_value``
  (unsigned, 32 bits). ``wait_value`` 0 never waits.
- **signal**: when the instruction completes (the engine's work is done: weights latched, PSUM written,
  SBUF written, the DMA's last write acknowledged), ``sem[signal_semaphore] += signal_increment`` (modulo
  2**32). ``signal_increment`` 0 signals nothing.

Opcodes (:class:`Opcode`); the common ones run on every engine, the others only on theirs
(:data:`ENGINE_OPCODES`); any other opcode stops the engine with :attr:`EngineError.OPCODE`:

``NOP``, ``SEM_WAIT``
    Do nothing (``SEM_WAIT`` is the name for a NOP that is there for its wait).
``SEM_SET``
    ``sem[semaphore] = value`` when it completes, in order: after every earlier instruction of the engine.
    A later instruction of the same engine that waits is held until the set has happened.
``END``
    End of program: the engine is done once everything it issued has completed.
``LOAD_STATIONARY``, ``MULTIPLY_MOVING``
    Tensor engine commands (:data:`tensor_payload_layout`; meaning in :mod:`trntile.golden.tensor_engine`).
``ACTIVATE``
    ACT engine (:data:`activate_payload_layout`; meaning in :mod:`trntile.golden.act`).
``COPY``
    A DMA descriptor for the engine's queue (:data:`copy_payload_layout`: the descriptor's endpoints and
    element size; its completion semaphore and increment are the header's signal).
"""

from __future__ import annotations

import enum

from amaranth.lib import data

from .access_pattern import ADDRESS_BITS, pattern_layout
from .dma_descriptor import endpoint_layout

__all__ = ["INSTRUCTION_BYTES", "INSTRUCTION_BITS", "HEADER_BITS", "PAYLOAD_BITS", "Opcode", "EngineKind",
           "ENGINE_OPCODES", "EngineError", "EngineState", "header_layout", "tensor_payload_layout",
           "activate_payload_layout", "copy_payload_layout", "sem_set_payload_layout", "instruction_layout",
           "PAYLOAD_LAYOUTS", "engine_names"]

INSTRUCTION_BYTES = 64
INSTRUCTION_BITS = 8 * INSTRUCTION_BYTES
HEADER_BITS = 64
PAYLOAD_BITS = INSTRUCTION_BITS - HEADER_BITS


class Opcode(enum.IntEnum):
    """The opcode, the first field of every instruction's :data:`header_layout`; which engines run each is in
    :data:`ENGINE_OPCODES`."""

    NOP = 0
    END = 1
    SEM_WAIT = 2
    SEM_SET = 3
    LOAD_STATIONARY = 4
    MULTIPLY_MOVING = 5
    ACTIVATE = 6
    COPY = 7


class EngineKind(enum.IntEnum):
    """What an engine's sequencer drives: the tensor engine, the ACT engine, or a DMA queue."""

    TENSOR = 0
    ACT = 1
    DMA = 2


_COMMON = frozenset({Opcode.NOP, Opcode.END, Opcode.SEM_WAIT, Opcode.SEM_SET})

#: The opcodes each kind of engine runs.
ENGINE_OPCODES = {
    EngineKind.TENSOR: _COMMON | {Opcode.LOAD_STATIONARY, Opcode.MULTIPLY_MOVING},
    EngineKind.ACT: _COMMON | {Opcode.ACTIVATE},
    EngineKind.DMA: _COMMON | {Opcode.COPY},
}


class EngineState(enum.IntEnum):
    """An engine's state in the ``status`` registers."""

    IDLE = 0      #: not started since reset
    RUNNING = 1   #: started, not finished
    DONE = 2      #: reached END and everything it issued has completed
    ERROR = 3     #: stopped by an error (``error`` and ``fault_address`` say which and where)


class EngineError(enum.IntEnum):
    """Why an engine stopped: 8 bits, the high nibble names the unit that found the problem.

    ``0x1N`` is :class:`~trntile.golden.tensor_engine.TensorError` N, ``0x2N`` is
    :class:`~trntile.golden.act.ActError` N and ``0x3N`` is :class:`~trntile.golden.dma.DmaError` N; the
    others are the sequencer's own, below.
    """

    NONE = 0
    OPCODE = 0x01      #: an opcode this engine does not run
    SEMAPHORE = 0x02   #: a wait, signal or SEM_SET names a semaphore beyond the file (only when it is used)
    FETCH = 0x03       #: the instruction could not be read (an AXI error response)
    DEADLOCK = 0x04    #: the watchdog found every engine idle while this one waited on a semaphore
    TENSOR = 0x10      #: base of the tensor engine's codes
    ACT = 0x20         #: base of the ACT engine's codes
    DMA = 0x30         #: base of the DMA engine's codes


#: The 64 header bits of every instruction.
header_layout = data.StructLayout({
    "opcode": 8,
    "wait_semaphore": 8,
    "signal_semaphore": 8,
    "signal_increment": 8,
    "wait_value": 32,
})

#: LOAD_STATIONARY and MULTIPLY_MOVING: the fields of the tensor engine's command.
tensor_payload_layout = data.StructLayout({
    "dtype": 3, "partition": 8, "k": 8, "m": 8, "n": 10, "psum_bank": 4, "psum_offset": 10, "accumulate": 1,
    "pattern": pattern_layout,
})

#: ACTIVATE: ``out = cast(f(in * scale + bias[p]))`` over partitions ``partition .. partition + partitions - 1``.
activate_payload_layout = data.StructLayout({
    "func": 4,                 # 0 identity, 1 relu
    "dtype": 3,                # output type: 0 bf16, 1 fp8 E4M3, 2 fp8 E5M2, 3 int8, 4 fp32, 5 int32
    "partition": 8,
    "partitions": 8,
    "source_space": 1,         # 0 PSUM, 1 SBUF
    "source": pattern_layout,  # 4-byte elements (fp32, or int32 for integer outputs)
    "destination": pattern_layout,
    "scale": 32,               # fp32 bits (float outputs) or an int32 (integer outputs)
    "bias_enable": 1,
    "bias_address": ADDRESS_BITS,  # SBUF byte offset of each partition's 4-byte bias
    "accumulate": 1,           # add the destination's element instead of a bias (fp32 / int32 outputs)
})

#: COPY: a DMA descriptor without its semaphore fields (the header's signal takes their place).
copy_payload_layout = data.StructLayout({
    "source": endpoint_layout,
    "destination": endpoint_layout,
    "element_size": 2,
})

#: SEM_SET: ``sem[semaphore] = value``.
sem_set_payload_layout = data.StructLayout({"semaphore": 8, "value": 32})

#: Payload layout of each opcode that has one.
PAYLOAD_LAYOUTS = {
    Opcode.LOAD_STATIONARY: tensor_payload_layout,
    Opcode.MULTIPLY_MOVING: tensor_payload_layout,
    Opcode.ACTIVATE: activate_payload_layout,
    Opcode.COPY: copy_payload_layout,
    Opcode.SEM_SET: sem_set_payload_layout,
}

for _opcode, _layout in PAYLOAD_LAYOUTS.items():
    assert _layout.size <= PAYLOAD_BITS, (_opcode, _layout.size)

instruction_layout = data.StructLayout({"header": header_layout, "payload": PAYLOAD_BITS})
assert instruction_layout.size == INSTRUCTION_BITS


def engine_names(queues: int) -> list[str]:
    """The tile's engines in index order: ``tensor``, ``act``, ``dma0`` .. ``dma{queues-1}``."""
    return ["tensor", "act"] + [f"dma{q}" for q in range(queues)]


def engine_kind(index: int) -> EngineKind:
    """The kind of engine ``index`` (see :func:`engine_names`)."""
    return EngineKind(min(index, int(EngineKind.DMA)))
