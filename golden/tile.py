"""The golden ISA simulator: the tile's engines running their binary programs over numpy DRAM, SBUF, PSUM and
semaphores, with the RTL's semaphore semantics and error codes (cycle counts are not its job).

Semantics (``docs/isa.md`` has the whole story):

- Each engine (tensor, ACT, DMA queue q) runs its program from its start address, one instruction word after
  another. Before an instruction issues, its wait must hold (``sem[i] >= v``).
- An engine's instructions complete in program order, and an instruction's effects (its work, a SEM_SET, its
  signal) happen when it completes. So this model executes each instruction whole, at once; since programs
  that are free of races (every cross-engine dependency ordered by a semaphore, no two engines racing a
  SEM_SET) have one outcome whatever the interleaving, the RTL must reach the same state.
- A problem stops the engine with an :class:`~trntile.hdl.isa.EngineError` and the faulting instruction's
  address; the other engines go on. When no engine can make progress and some still wait on a semaphore,
  those stop with ``DEADLOCK`` (the RTL's watchdog).
- Bus errors: the model is given the DRAM ranges where the memory answers an error (``read_faults`` and
  ``write_faults``); an instruction fetched from one stops the engine with ``FETCH``, a COPY that reads or writes
  one stops it with the DMA's ``READ_RESPONSE`` / ``WRITE_RESPONSE``. What such a COPY leaves in its destination
  is undefined: those DRAM bytes are marked in :attr:`TileModel.dram_undefined` and comparisons skip them.
  In a cluster, ``signal_windows`` are the ranges of other tiles' semaphore windows, where a COPY may write
  exactly one aligned 4-byte word and anything else is a write fault (:mod:`trntile.golden.cluster`).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ..hdl import dma_descriptor
from ..hdl.isa import ENGINE_OPCODES, INSTRUCTION_BYTES, EngineError, EngineState, Opcode, engine_kind, engine_names
from ..hdl.params import DTYPES, SEMAPHORES
from ..sw import asm
from .act import ActModel
from .dma import DmaError, DmaModel, Space
from .tensor_engine import LoadStationary, MultiplyMoving, TensorEngineModel

__all__ = ["EngineStatus", "TileModel"]


@dataclasses.dataclass
class EngineStatus:
    """What the host's status registers show for one engine."""

    state: EngineState = EngineState.IDLE
    error: int = 0
    fault_address: int = 0
    pc: int = 0
    executed: int = 0

    def as_tuple(self) -> tuple[int, int, int]:
        """(state, error code, fault address): what RTL and model must agree on."""
        return int(self.state), int(self.error), int(self.fault_address)


@functools.lru_cache(maxsize=1 << 14)
def _decode(word: bytes) -> asm.Instruction:
    """An instruction word decoded (cached: decoding goes through Amaranth layouts, which is slow, and a
    program's words repeat from run to run)."""
    return asm.decode(word, strict=False)


def _overlaps(low: int, high: int, ranges) -> bool:
    return any(low < end and start < high for start, end in ranges)


class TileModel:
    """One tile: DRAM (``dram_bytes``), SBUF, PSUM, semaphores and the engines' program state."""

    def __init__(self, *, partitions: int, sbuf_bytes: int, dram_bytes: int, queues: int,
                 semaphores: int = SEMAPHORES.default, dtypes: int = DTYPES.default, read_faults=(),
                 write_faults=(), signal_windows=()):
        self.tensor = TensorEngineModel(partitions, sbuf_bytes=sbuf_bytes, dtypes=dtypes)
        self.dma = DmaModel(dram_bytes=dram_bytes, partitions=partitions, sbuf_bytes=sbuf_bytes,
                            semaphores=semaphores)
        self.dma.sbuf = self.tensor.sbuf
        self.act = ActModel(partitions, sbuf_bytes=sbuf_bytes, sbuf=self.tensor.sbuf, psum=self.tensor.psum)
        self.names = engine_names(queues)
        self.status = [EngineStatus() for _ in self.names]
        self.read_faults = [tuple(r) for r in read_faults]
        self.write_faults = [tuple(r) for r in write_faults]
        self.signal_windows = [tuple(r) for r in signal_windows]
        self.dram_undefined = np.zeros(dram_bytes, dtype=bool)

    # -- state -------------------------------------------------------------------------------------
    @property
    def dram(self) -> np.ndarray:
        return self.dma.dram

    @property
    def sbuf(self) -> np.ndarray:
        return self.tensor.sbuf

    @property
    def psum(self) -> np.ndarray:
        return self.tensor.psum

    @property
    def semaphores(self) -> np.ndarray:
        return self.dma.semaphores

    # -- running -----------------------------------------------------------------------------------
    def start(self, programs: dict[int, int]) -> None:
        """Start engine ``index`` at byte address ``programs[index]`` for each entry (64-byte aligned)."""
        for index, address in programs.items():
            if address % INSTRUCTION_BYTES:
                raise ValueError(f"program address of {self.names[index]} must be a multiple of "
                                 f"{INSTRUCTION_BYTES}, not {address:#x}")
            self.status[index] = EngineStatus(EngineState.RUNNING, pc=address)

    def _stop(self, index: int, error: int) -> None:
        status = self.status[index]
        status.state, status.error, status.fault_address = EngineState.ERROR, int(error), status.pc

    def _fetch(self, pc: int) -> asm.Instruction | None:
        if pc + INSTRUCTION_BYTES > self.dram.size or _overlaps(pc, pc + INSTRUCTION_BYTES, self.read_faults):
            return None
        return _decode(bytes(self.dram[pc:pc + INSTRUCTION_BYTES]))

    def _signal(self, signal) -> None:
        if signal and signal.increment:
            index = signal.semaphore
            self.semaphores[index] = (int(self.semaphores[index]) + signal.increment) & 0xFFFF_FFFF

    def _copy(self, index: int, instruction: asm.Instruction) -> int:
        """Run a COPY; its error code (0 when it completed)."""
        op = instruction.op
        if isinstance(op, asm.Raw):
            return EngineError.DMA + dma_descriptor.format_problem(op.payload)[0]
        descriptor = op.descriptor()  # the signal is the sequencer's, applied on completion
        problem = self.dma.problem(descriptor)
        if problem:
            return EngineError.DMA + problem[0]
        size = descriptor.element_bytes
        sbuf_bytes = self.dma.sbuf_bytes
        source = descriptor.source.byte_indices(size, sbuf_bytes)
        destination = descriptor.destination.byte_indices(size, sbuf_bytes)
        read_fault = descriptor.source.space == Space.DRAM and any(
            _overlaps(int(s.min()), int(s.max()) + 1, self.read_faults) for s in source)
        write_fault = descriptor.destination.space == Space.DRAM and any(
            _overlaps(int(d.min()), int(d.max()) + 1, self.write_faults) for d in destination)
        if descriptor.destination.space == Space.DRAM and not write_fault:
            write_fault = self._bad_signal(destination.reshape(-1))
        if read_fault or write_fault:
            if descriptor.destination.space == Space.DRAM:
                self.dram_undefined[destination.reshape(-1)] = True
            return EngineError.DMA + (DmaError.READ_RESPONSE if read_fault else DmaError.WRITE_RESPONSE)
        self.dma.run(descriptor)
        return 0

    def _bad_signal(self, destination: np.ndarray) -> bool:
        """A COPY writing ``destination`` (DRAM-side byte addresses) touches a semaphore window other than by
        writing exactly the four bytes of one aligned word (in the window's semaphores), which answers
        SLVERR."""
        low, high = int(destination.min()), int(destination.max()) + 1
        for start, end in self.signal_windows:
            if ((destination >= start) & (destination < end)).any():
                one_word = (destination.size == 4 and low % 4 == 0 and start <= low and high <= end
                            and (destination == np.arange(low, low + 4)).all())
                return not one_word
        return False

    def _canonical_nans(self, op: MultiplyMoving) -> None:
        """NaN results in PSUM become the RTL's quiet NaN (the numerics allow any NaN; one makes the
        results comparable byte for byte once ACT and DMA have carried them to DRAM)."""
        if op.dtype == "int8" or op.dtype == 3:
            return
        window = self.psum[:, op.psum_bank, op.psum_offset:op.psum_offset + op.n]
        nan = (window & 0x7F80_0000 == 0x7F80_0000) & (window & 0x007F_FFFF != 0)
        window[nan] = 0x7FC0_0000

    def _step(self, index: int) -> bool:
        """Try to run engine ``index``'s next instruction; whether it made progress."""
        status = self.status[index]
        instruction = self._fetch(status.pc)
        if instruction is None:
            self._stop(index, EngineError.FETCH)
            return True
        opcode = instruction.opcode
        if opcode not in ENGINE_OPCODES[engine_kind(index)]:
            self._stop(index, EngineError.OPCODE)
            return True
        wait, signal = instruction.wait, instruction.signal
        semaphores = self.semaphores.size
        used = [wait.semaphore] if wait and wait.value else []
        used += [signal.semaphore] if signal and signal.increment else []
        if opcode == Opcode.SEM_SET:
            used.append(instruction.op.semaphore)
        if any(s >= semaphores for s in used):
            self._stop(index, EngineError.SEMAPHORE)
            return True
        if wait and wait.value and int(self.semaphores[wait.semaphore]) < wait.value:
            return False
        op = instruction.op
        error = 0
        if opcode == Opcode.SEM_SET:
            self.semaphores[op.semaphore] = op.value
        elif opcode in (Opcode.LOAD_STATIONARY, Opcode.MULTIPLY_MOVING):
            problem = self.tensor.problem(op)
            if problem:
                error = EngineError.TENSOR + problem[0]
            elif isinstance(op, LoadStationary):
                self.tensor.load_stationary(op)
            else:
                assert isinstance(op, MultiplyMoving)
                self.tensor.multiply_moving(op)
                self._canonical_nans(op)
        elif opcode == Opcode.ACTIVATE:
            problem = self.act.problem(op)
            if problem:
                error = EngineError.ACT + problem[0]
            else:
                self.act.run(op)
        elif opcode == Opcode.COPY:
            error = self._copy(index, instruction)
        if error:
            self._stop(index, error)
            return True
        self._signal(signal)
        status.executed += 1
        if opcode == Opcode.END:
            status.state = EngineState.DONE
        else:
            status.pc += INSTRUCTION_BYTES
        return True

    def run(self, *, max_instructions: int = 1_000_000, rng=None) -> None:
        """Run every started engine until each is done or stopped. Engines take turns one instruction at a
        time; when none can move, the ones still waiting stop with ``DEADLOCK``.

        With ``rng`` (a ``random.Random``), each round visits the engines in a random order and lets each run a
        random number of instructions, so that a program whose semaphores leave a race shows it by ending
        differently from one schedule to the next."""
        executed = 0
        while True:
            running = [i for i, s in enumerate(self.status) if s.state == EngineState.RUNNING]
            if not running:
                return
            if rng is not None:
                rng.shuffle(running)
            progress = False
            for index in running:
                for _ in range(1 if rng is None else rng.choice([1, 1, 2, 5, 20])):
                    if self.status[index].state != EngineState.RUNNING or not self._step(index):
                        break
                    progress = True
                    executed += 1
            if executed > max_instructions:
                raise RuntimeError(f"more than {max_instructions} instructions: a program that never ends?")
            if not progress:
                for index in running:
                    self._stop(index, EngineError.DEADLOCK)
                return
